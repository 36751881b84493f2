"""Placement (jobs.placement) at the database: every bad input is a 400 naming its field, a pool
outside the tenant's allowed_pools is a 403, the job's own placement wins over its function's, the
fill dispatches only to pools with a live worker (to that pool's queue, one tenant cap over all
pools), and a job that waits again goes back to its home pool."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from jobs import pools
from jobs.models import Job, Status
from jobs.placement import Placement, parse_placement
from jobs.services import reconcile
from jobs.services.lifecycle import job_expire_lease
from jobs.services.submit import JobSpec, request_hash
from jobs.tests.support import QUICK
from lambdasite.redis_client import get_queue

pytestmark = pytest.mark.django_db(transaction=True)

FN = {"name": "add", "runtime": "python", "code": "def main(a, b):\n    return a + b\n"}


def live(*names: str, worker: str = "w") -> None:
    """A worker serving these pools beats (as a job worker's heartbeat thread does)."""
    pools.beat(worker=f"{worker}-{'-'.join(names)}", pools=list(names), ttl_s=60)
    pools.forget_live()


def in_queue(pool: str) -> list[str]:
    return [rq_id.rsplit("-", 1)[0] for rq_id in pools.queue(pool).get_job_ids()]


def detail(persona, job: dict) -> dict:
    return persona.client.get(f"/api/v1/jobs/{job['id']}").json()


def post(persona, path: str, body: dict, method: str = "post"):
    return getattr(persona.client, method)(path, data=json.dumps(body), content_type="application/json")


# -- validation ---------------------------------------------------------------


BAD = [
    ({"pool": "EU"}, "pool"),
    ({"pool": 5}, "pool"),
    ({"pool": ""}, "pool"),
    ({"pool": "eu", "placement": {"pool": "eu"}}, "placement"),
    ({"placement": "eu"}, "placement"),
    ({"placement": {"pool": "eu", "region": "x"}}, "placement"),
    ({"placement": {"pool": "Bad Name"}}, "placement"),
    ({"placement": {"pool": "eu", "overflow": "burst", "after_wait_s": 2}}, "placement"),
    ({"placement": {"pool": "eu", "overflow": ["a", "b", "c", "d", "e"], "after_wait_s": 2}}, "placement"),
    ({"placement": {"pool": "eu", "overflow": ["burst", "burst"], "after_wait_s": 2}}, "placement"),
    ({"placement": {"pool": "eu", "overflow": ["eu"], "after_wait_s": 2}}, "placement"),
    ({"placement": {"pool": "eu", "overflow": ["BURST"], "after_wait_s": 2}}, "placement"),
    ({"placement": {"pool": "eu", "overflow": ["burst"]}}, "placement"),
    ({"placement": {"pool": "eu", "after_wait_s": 2}}, "placement"),
    ({"placement": {"pool": "eu", "overflow": [], "after_wait_s": 2}}, "placement"),
    ({"placement": {"pool": "eu", "overflow": ["burst"], "after_wait_s": 0}}, "placement"),
    ({"placement": {"pool": "eu", "overflow": ["burst"], "after_wait_s": -1}}, "placement"),
    ({"placement": {"pool": "eu", "overflow": ["burst"], "after_wait_s": 3601}}, "placement"),
    ({"placement": {"pool": "eu", "overflow": ["burst"], "after_wait_s": "2"}}, "placement"),
    ({"placement": {"pool": "eu", "overflow": ["burst"], "after_wait_s": True}}, "placement"),
]


@pytest.mark.parametrize("body, field", BAD)
def test_it_refuses_each_bad_placement_with_a_400_naming_the_field(alice, body, field):
    response = alice.post_job({**QUICK, **body})
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"]["fields"] and error["message"].startswith(field)
    assert not Job.objects.exists()


def test_it_refuses_bad_placements_on_invoke_batch_and_functions(alice):
    assert post(alice, "/api/v1/functions", FN).status_code == 201
    bad = {"placement": {"pool": "eu", "overflow": ["eu"], "after_wait_s": 1}}
    for path, body, method in [
        ("/api/v1/functions/add/invoke", {"args": [1, 2], **bad}, "post"),
        ("/api/v1/functions/add/invoke", {"pool": "eu", "placement": {"pool": "eu"}}, "post"),
        ("/api/v1/jobs/batch", {"jobs": [QUICK, {**QUICK, "pool": "Nope"}]}, "post"),
        ("/api/v1/jobs/batch", {"jobs": [{"function": "add", "args": [1, 2], **bad}]}, "post"),
        ("/api/v1/functions", {**FN, "name": "two", **bad}, "post"),
        ("/api/v1/functions/add", {"placement": {"pool": "eu", "after_wait_s": 1}}, "patch"),
    ]:
        response = post(alice, path, body, method)
        assert response.status_code == 400, (path, response.content)
        assert response.json()["error"]["code"] == "validation_error"
    assert not Job.objects.exists()


def test_parse_normalises_what_it_accepts():
    assert parse_placement({}) is None
    assert parse_placement({"pool": "eu"}) == Placement("eu")
    assert parse_placement({"placement": {"pool": "eu"}}) == Placement("eu")
    assert parse_placement({"placement": {"overflow": ["burst"], "after_wait_s": 2}}) == Placement(
        "default", ("burst",), 2.0
    )


# -- allowed_pools ------------------------------------------------------------


def test_a_pool_outside_allowed_pools_is_403_for_every_way_in(alice, bob):
    quota = alice.tenant.quota
    quota.allowed_pools = ["default", "eu"]
    quota.save()
    refused = alice.post_job({**QUICK, "placement": {"pool": "eu", "overflow": ["burst"], "after_wait_s": 1}})
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "pool_not_allowed"
    assert "'burst'" in error["message"] and "default, eu" in error["message"]
    assert error["details"] == {"field": "pool", "pool": "burst", "allowed": ["default", "eu"]}
    assert alice.post_job({**QUICK, "pool": "eu"}).status_code == 202
    assert post(alice, "/api/v1/functions", {**FN, "pool": "asia"}).status_code == 403
    assert post(alice, "/api/v1/functions", {**FN, "pool": "eu"}).status_code == 201
    assert post(alice, "/api/v1/functions/add", {"pool": "us"}, "patch").status_code == 403
    # the quota changes after the function was placed: its invocations are refused from then on
    quota.allowed_pools = ["default"]
    quota.save()
    invoked = post(alice, "/api/v1/functions/add/invoke", {"args": [1, 2]})
    assert invoked.status_code == 403 and invoked.json()["error"]["details"]["pool"] == "eu"
    batch = post(alice, "/api/v1/jobs/batch", {"jobs": [QUICK, {"function": "add", "args": [1, 2]}]})
    assert batch.status_code == 403
    # another tenant's quota is its own
    assert bob.post_job({**QUICK, "pool": "eu"}).status_code == 202
    assert Job.objects.filter(tenant=alice.tenant).count() == 1


# -- resolution and the API's fields --------------------------------------------


def test_a_jobs_own_placement_wins_over_its_functions_and_the_default(alice):
    placed = {"pool": "eu", "overflow": ["burst"], "after_wait_s": 2}
    created = post(alice, "/api/v1/functions", {**FN, "placement": placed})
    assert created.json()["placement"] == {"pool": "eu", "overflow": ["burst"], "after_wait_s": 2.0}
    by_function = post(alice, "/api/v1/functions/add/invoke", {"args": [1, 2]}).json()
    assert (by_function["pool"], by_function["placement"]) == ("eu", created.json()["placement"])
    own = post(alice, "/api/v1/functions/add/invoke", {"args": [1, 2], "pool": "asia"}).json()
    assert own["placement"] == {"pool": "asia", "overflow": [], "after_wait_s": None}
    inline = alice.post_job(QUICK).json()
    assert inline["placement"] == {"pool": "default", "overflow": [], "after_wait_s": None}
    assert (inline["pool"], inline["placed_by"]) == ("default", "")  # the 202: not dispatched yet
    assert detail(alice, inline)["placed_by"] == "home"  # dispatched at once
    # PATCH moves the function's later jobs, not the ones it made
    patched = post(alice, "/api/v1/functions/add", {"pool": "default"}, "patch").json()
    assert patched["placement"] == {"pool": "default", "overflow": [], "after_wait_s": None}
    later = post(alice, "/api/v1/functions/add/invoke", {"args": [1, 2]}).json()
    assert later["pool"] == "default"
    assert Job.objects.get(pk=by_function["id"]).overflow == ["burst"]


def test_the_default_placement_keeps_the_request_hash():
    spec = JobSpec(runtime="python", code="def main():\n    return 1\n")
    from_function = dataclasses.replace(spec, function_placement=Placement("eu"))
    assert request_hash(spec) == request_hash(from_function)  # derived: never part of the request
    assert request_hash(spec) != request_hash(dataclasses.replace(spec, placement=Placement("eu")))


# -- the fill -------------------------------------------------------------------


def test_the_fill_takes_only_pools_with_a_live_worker_to_their_own_queue(alice):
    live("eu")
    eu = alice.post_job({**QUICK, "pool": "eu"}).json()
    asia = detail(alice, alice.post_job({**QUICK, "pool": "asia"}).json())
    home = alice.post_job(QUICK).json()
    assert (detail(alice, eu)["status"], detail(alice, eu)["placed_by"]) == ("dispatched", "home")
    assert in_queue("eu") == [eu["id"]] and in_queue("default") == [home["id"]]
    assert asia["status"] == "queued" and asia["placed_by"] == ""  # behind it, the others still went
    assert asia["waiting_reason"] == "no live worker in pool asia"
    reconcile.reconcile()
    assert Job.objects.get(pk=asia["id"]).status == "queued"
    live("asia")
    reconcile.reconcile()
    assert Job.objects.get(pk=asia["id"]).status == "dispatched" and in_queue("asia") == [asia["id"]]
    assert get_queue().count == 1  # (the default pool's queue is the jobs queue)


def test_a_dead_pool_is_skipped_on_the_general_path_too(alice):
    post(alice, "/api/v1/functions", {**FN, "max_concurrency": 5})  # a limited function: flow.fill_limited
    stranded = post(alice, "/api/v1/functions/add/invoke", {"args": [1, 2], "pool": "asia"}).json()
    went = post(alice, "/api/v1/functions/add/invoke", {"args": [1, 2]}).json()
    assert detail(alice, stranded)["status"] == "queued" and detail(alice, went)["status"] == "dispatched"
    live("asia")
    reconcile.reconcile()
    assert in_queue("asia") == [stranded["id"]]


def test_the_tenant_cap_counts_every_pool(alice):
    live("eu")
    quota = alice.tenant.quota
    quota.max_concurrency = 3
    quota.save()
    for pool in ["eu", "default", "eu", "default", "eu"]:
        alice.post_job({**QUICK, "pool": pool})
    in_flight = Job.objects.filter(status=Status.DISPATCHED)
    assert in_flight.count() == 3 and len(in_queue("eu")) + len(in_queue("default")) == 3


def test_redis_away_dispatches_to_every_pool_rather_than_strand_a_job(alice, monkeypatch):
    def unreadable(**kwargs):
        raise ConnectionError("redis is away")

    monkeypatch.setattr(pools, "live_workers", unreadable)
    pools.forget_live()
    assert pools.dispatchable() is None
    job = alice.post_job({**QUICK, "pool": "nowhere"}).json()
    assert Job.objects.get(pk=job["id"]).status == "dispatched" and in_queue("nowhere") == [job["id"]]


# -- back home ---------------------------------------------------------------------


def _overflowed_and_running(job_id, now) -> None:
    get_queue().empty()  # a worker popped it
    Job.objects.filter(pk=job_id).update(
        status=Status.RUNNING, pool="burst", placed_by="overflow after 2.0 s wait", attempts=1,
        lease_expires_at=now - timedelta(seconds=1), worker="w1", started_at=now - timedelta(seconds=30),
    )  # fmt: skip


def test_a_job_that_waits_again_goes_back_to_its_home_pool(alice):
    quota = alice.tenant.quota
    quota.max_concurrency = 1
    quota.save()
    placed = {"pool": "default", "overflow": ["burst"], "after_wait_s": 2}
    job_id = alice.post_job({**QUICK, "placement": placed}).json()["id"]
    now = timezone.now()
    _overflowed_and_running(job_id, now)
    assert job_expire_lease(job_id=job_id, now=now)  # its worker died: retried on the system budget
    job = Job.objects.get(pk=job_id)
    assert job.status == Status.DISPATCHED  # back in line at once (a lost worker), and its slot is free
    assert (job.pool, job.home_pool, job.placed_by) == ("default", "default", "home")
    assert in_queue("default") == [job_id] and in_queue("burst") == []


def test_a_lost_overflowed_dispatch_waits_at_home_again(alice):
    placed = {"pool": "default", "overflow": ["burst"], "after_wait_s": 2}
    job_id = alice.post_job({**QUICK, "placement": placed}).json()["id"]
    get_queue().empty()  # Redis lost it after the overflow pass moved it
    Job.objects.filter(pk=job_id).update(pool="burst", placed_by="overflow after 2.0 s wait")
    later = timezone.now() + timedelta(seconds=settings.REDISPATCH_AFTER_S + 1)
    assert reconcile.reconcile(now=later)["redispatched"] == 1
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.pool, job.placed_by) == (Status.QUEUED, "default", "")
    reconcile.reconcile(now=later)  # the next tick's fill
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.pool, job.placed_by) == (Status.DISPATCHED, "default", "home")
    assert in_queue("default") == [job_id] and in_queue("burst") == []


def test_the_lost_check_reads_every_pools_queue(alice):
    live("eu")
    job_id = alice.post_job({**QUICK, "pool": "eu"}).json()["id"]
    later = timezone.now() + timedelta(seconds=settings.REDISPATCH_AFTER_S + 1)
    assert reconcile.reconcile(now=later)["redispatched"] == 0  # still waiting in jobs.eu: not lost
    assert in_queue("eu") == [job_id]
