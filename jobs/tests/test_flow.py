"""Flow control at the database: the slot filling (fast and general paths) on real PostgreSQL, each
case by submitting, finishing jobs by hand and reading which rows were dispatched (no worker)."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from functions.services.deploy import VersionSpec, function_create, function_update
from functions.services.flow import FlowSettings
from functions.services.invoke import function_invoke
from functions.tests.support import call
from jobs import waiting
from jobs.models import Job, Status
from jobs.services.dispatch import tenant_fill_slots
from jobs.services.submit import JobSpec, job_submit
from lambdasite.redis_client import get_queue

pytestmark = [pytest.mark.django_db(transaction=True)]

CODE = "def main(*args):\n    return 1\n"


def cap(persona, n: int) -> None:
    persona.tenant.quota.max_concurrency = n
    persona.tenant.quota.submissions_per_minute = 100_000
    persona.tenant.quota.deploys_per_minute = 1000
    persona.tenant.quota.save()


def make_function(persona, name: str = "f", **flow):
    function, _ = function_create(
        tenant=persona.tenant,
        user=None,
        name=name,
        runtime="python",
        spec=VersionSpec(code=CODE),
        flow=FlowSettings().changed(**flow),
    )
    return function


def invoke(persona, name: str = "f", *args, priority: int | None = None) -> Job:
    return function_invoke(
        tenant=persona.tenant, api_key=None, name=name, args=list(args), priority=priority
    )[0]


def inline(persona, priority: int = 5) -> Job:
    spec = JobSpec(runtime="python", code=CODE, priority=priority)
    return job_submit(tenant=persona.tenant, api_key=None, spec=spec)[0]


def dispatched(persona) -> set:
    return set(
        Job.objects.filter(tenant=persona.tenant, status=Status.DISPATCHED).values_list("id", flat=True)
    )


def finish(*jobs) -> None:
    now = timezone.now()
    ids = [job.id if hasattr(job, "id") else job for job in jobs]
    Job.objects.filter(pk__in=ids).update(status=Status.SUCCEEDED, started_at=now, finished_at=now)
    for tenant_id in set(Job.objects.filter(pk__in=ids).values_list("tenant_id", flat=True)):
        tenant_fill_slots(tenant_id=tenant_id)


def reload(job) -> Job:
    return Job.objects.select_related("tenant__quota").get(pk=job.id)


# priority


def test_a_tenant_without_limits_dispatches_by_priority_then_age(alice):
    cap(alice, 1)
    blocker = inline(alice)
    low, high, mid_old, mid_new, lowest = (
        inline(alice, 1),
        inline(alice, 9),
        inline(alice),
        inline(alice),
        inline(alice, 0),
    )
    assert dispatched(alice) == {blocker.id}
    order = []
    current = blocker
    for _ in range(5):
        finish(current)
        (current_id,) = dispatched(alice)
        order.append(current_id)
        current = current_id
    assert order == [high.id, mid_old.id, mid_new.id, low.id, lowest.id]


def test_the_fast_path_stays_three_statements(alice):
    """A tenant without function limits: pre-check, lock (with its limits probe), fill."""
    cap(alice, 1)
    for _ in range(3):
        inline(alice)
    with CaptureQueriesContext(connection) as queries:
        tenant_fill_slots(tenant_id=alice.tenant.id)  # jobs waiting, no slot free
    statements = [
        q["sql"] for q in queries.captured_queries if q["sql"].lstrip().startswith(("SELECT", "UPDATE"))
    ]
    assert len(statements) == 3, statements


def test_priority_orders_a_general_path_tenant_too(alice):
    cap(alice, 1)
    make_function(alice, max_concurrency=10)
    blocker = invoke(alice)
    low, high = invoke(alice, priority=2), invoke(alice, priority=8)
    plain_mid = inline(alice, 5)
    finish(blocker)
    assert dispatched(alice) == {high.id}
    finish(high)
    assert dispatched(alice) == {plain_mid.id}
    finish(plain_mid)
    assert dispatched(alice) == {low.id}


# max_concurrency


def test_max_concurrency_one_never_dispatches_two(alice):
    cap(alice, 10)
    make_function(alice, max_concurrency=1)
    jobs = [invoke(alice) for _ in range(5)]
    others = [inline(alice) for _ in range(3)]
    seen = []
    for _ in range(5):
        of_function = dispatched(alice) & {j.id for j in jobs}
        assert len(of_function) == 1  # and inline jobs are not held back by it
        assert {o.id for o in others} <= dispatched(alice) | set(
            Job.objects.filter(status=Status.SUCCEEDED).values_list("id", flat=True)
        )
        seen.append(next(iter(of_function)))
        finish(seen[-1])
    assert seen == [j.id for j in jobs]  # in order


def test_a_new_ceiling_applies_at_the_next_fill(alice):
    cap(alice, 10)
    function = make_function(alice)
    jobs = [invoke(alice) for _ in range(3)]
    assert len(dispatched(alice)) == 3
    function_update(function=function, max_concurrency=1)
    more = [invoke(alice) for _ in range(2)]
    assert not {m.id for m in more} & dispatched(alice)  # 3 in flight, ceiling 1
    finish(jobs[0], jobs[1])
    assert not {m.id for m in more} & dispatched(alice)  # still 1/1
    finish(jobs[2])
    assert len({m.id for m in more} & dispatched(alice)) == 1


# reserved_concurrency


def test_reserved_concurrency_holds_against_a_flood_of_another_function(alice):
    cap(alice, 4)
    make_function(alice, "critical", reserved_concurrency=2)
    make_function(alice, "bulk")
    flood = [invoke(alice, "bulk") for _ in range(30)]
    assert len(dispatched(alice)) == 2  # the other two slots are critical's, idle or not
    critical = [invoke(alice, "critical") for _ in range(3)]
    assert {c.id for c in critical[:2]} <= dispatched(alice)  # at once, however long the flood
    assert critical[2].id not in dispatched(alice)  # 4/4
    assert waiting.waiting_reason(reload(critical[2])) == "tenant concurrency 4/4"
    finish(*(dispatched(alice) & {f.id for f in flood}))
    # the two unreserved slots go to the oldest waiting (the flood's); critical keeps its two
    assert len(dispatched(alice) & {f.id for f in flood}) == 2
    assert {c.id for c in critical[:2]} <= dispatched(alice)
    assert waiting.waiting_reason(reload(flood[-1])) == "tenant concurrency 4/4"


def test_reserved_slots_stay_free_for_their_function(alice):
    cap(alice, 3)
    make_function(alice, "critical", reserved_concurrency=1)
    flood = [inline(alice) for _ in range(10)]
    assert len(dispatched(alice)) == 2
    reason = waiting.waiting_reason(reload(flood[-1]))
    assert reason == (
        "function reserved: the tenant's unreserved concurrency 2/2 in use"
        " (1 of its 3 reserved for other functions)"
    )
    job = invoke(alice, "critical")
    assert job.id in dispatched(alice)


# keys


def test_one_keys_flood_does_not_starve_another_key(alice):
    cap(alice, 3)
    make_function(alice, "sync", concurrency_key="$[0].store_id", concurrency_per_key=1)
    flood = [invoke(alice, "sync", {"store_id": 1}, n) for n in range(200)]
    assert flood[0].concurrency_key == "1"
    assert dispatched(alice) == {flood[0].id}  # one per key
    other = invoke(alice, "sync", {"store_id": 2})
    assert other.id in dispatched(alice)  # at once: its key is idle
    assert waiting.waiting_reason(reload(flood[1])) == "key store_id=1: 1/1 in use"
    finish(flood[0])
    assert flood[1].id in dispatched(alice)


def test_keys_take_turns_when_the_tenant_cap_is_the_limit(alice):
    """A key may hold several slots; the key with fewer in flight gets the next one."""
    cap(alice, 4)
    make_function(alice, "sync", concurrency_key="$[0]", concurrency_per_key=10)
    flood = [invoke(alice, "sync", "a", n) for n in range(200)]
    assert dispatched(alice) == {f.id for f in flood[:4]}
    b = invoke(alice, "sync", "b")
    assert b.id not in dispatched(alice)
    assert waiting.waiting_reason(reload(b)) == "tenant concurrency 4/4"
    finish(flood[0])  # one slot turns over: b's, not the flood's fifth
    assert b.id in dispatched(alice)
    assert flood[4].id not in dispatched(alice)


def test_jobs_whose_args_lack_the_key_share_the_empty_key(alice):
    cap(alice, 5)
    make_function(alice, "sync", concurrency_key="$[0].store_id")
    a, b = invoke(alice, "sync", {}), invoke(alice, "sync", "not an object")
    assert a.concurrency_key == b.concurrency_key == ""
    assert len(dispatched(alice)) == 1


def test_a_changed_key_rekeys_the_waiting_jobs(alice):
    cap(alice, 5)
    function = make_function(alice, "sync", concurrency_key="$[0].store_id")
    jobs = [invoke(alice, "sync", {"store_id": 1, "region": r}) for r in ("eu", "us", "eu", "eu")]
    assert len(dispatched(alice)) == 1  # one store
    function_update(function=function, concurrency_key="$[0].region")  # fills after its commit
    assert [reload(j).concurrency_key for j in jobs[1:]] == ["us", "eu", "eu"]
    assert dispatched(alice) == {j.id for j in jobs[:3]}  # us and eu were free; the second eu waits
    function_update(function=function, concurrency_key="")
    assert reload(jobs[3]).concurrency_key is None
    assert len(dispatched(alice)) == 4  # no key: no lane


# waiting reasons


def test_the_waiting_reason_of_each_cause(alice):
    cap(alice, 1)
    first, second = inline(alice), inline(alice)
    assert waiting.waiting_reason(reload(first)) == "no free worker"
    assert waiting.waiting_reason(reload(second)) == "tenant concurrency 1/1"
    Job.objects.filter(pk=second.pk).update(status=Status.RETRYING, next_attempt_at=timezone.now())
    assert waiting.waiting_reason(reload(second)).startswith("retry backoff until ")
    Job.objects.filter(pk=second.pk).update(status=Status.SCHEDULED)
    assert waiting.waiting_reason(reload(second)).startswith("scheduled for ")
    Job.objects.filter(pk=second.pk).update(status=Status.QUEUED, next_attempt_at=None)
    assert waiting.waiting_reason(reload(second)) == "version building"
    alice.tenant.is_suspended = True
    alice.tenant.save()
    assert waiting.waiting_reason(reload(second)) == "tenant suspended"
    alice.tenant.is_suspended = False
    alice.tenant.save()
    Job.objects.filter(pk=first.pk).update(status=Status.RUNNING, started_at=timezone.now())
    assert waiting.waiting_reason(reload(first)) is None
    Job.objects.filter(pk=first.pk).update(status=Status.SUCCEEDED, finished_at=timezone.now())
    Job.objects.filter(pk=second.pk).update(next_attempt_at=timezone.now())
    assert waiting.waiting_reason(reload(second)) == "waiting for dispatch"


def test_the_waiting_reason_of_a_function_ceiling(alice):
    cap(alice, 10)
    make_function(alice, max_concurrency=2)
    jobs = [invoke(alice) for _ in range(3)]
    assert waiting.waiting_reason(reload(jobs[2])) == "function max_concurrency 2/2"


def test_the_api_says_why_and_shows_priority_and_key(alice):
    cap(alice, 10)
    make_function(alice, "sync", concurrency_key="$[0].store_id")
    first = call(alice, "POST", "/api/v1/functions/sync/invoke", {"args": [{"store_id": 42}], "priority": 7})
    assert first.status_code == 202
    assert first.json()["priority"] == 7 and first.json()["concurrency_key"] == "42"
    second = call(alice, "POST", "/api/v1/functions/sync/invoke", {"args": [{"store_id": 42}]})
    body = call(alice, "GET", f"/api/v1/jobs/{second.json()['id']}").json()
    assert body["priority"] == 5
    assert body["waiting_reason"] == "key store_id=42: 1/1 in use"
    done = call(alice, "GET", f"/api/v1/jobs/{first.json()['id']}").json()
    assert done["waiting_reason"] == "no free worker"
    inline_job = alice.post_job({"runtime": "python", "code": CODE, "priority": 0}).json()
    assert inline_job["priority"] == 0 and inline_job["concurrency_key"] is None


# validation


@pytest.mark.parametrize(
    "body, field",
    [
        ({"concurrency_key": "$..store_id"}, "concurrency_key"),
        ({"concurrency_key": "$.store_id"}, "concurrency_key"),
        ({"concurrency_key": 5}, "concurrency_key"),
        ({"concurrency_per_key": 2}, "concurrency_per_key"),  # without a key
        ({"concurrency_key": "$[0]", "concurrency_per_key": 0}, "concurrency_per_key"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_concurrency": "5"}, "max_concurrency"),
        ({"max_concurrency": 2, "reserved_concurrency": 3}, "reserved_concurrency"),
        ({"reserved_concurrency": -1}, "reserved_concurrency"),
        ({"reserved_concurrency": 10}, "reserved_concurrency"),  # the whole cap: no room left
        ({"reserved_concurrency": True}, "reserved_concurrency"),
    ],
)
def test_bad_flow_settings_are_400_json(alice, body, field):
    cap(alice, 10)
    created = call(
        alice, "POST", "/api/v1/functions", {"name": "f", "runtime": "python", "code": CODE, **body}
    )
    assert created.status_code == 400, created.content
    error = created.json()["error"]
    assert error["code"] == "validation_error" and field in error["details"]["fields"]
    assert (
        call(alice, "POST", "/api/v1/functions", {"name": "f", "runtime": "python", "code": CODE}).status_code
        == 201
    )
    patched = call(alice, "PATCH", "/api/v1/functions/f", body)
    assert patched.status_code == 400 and field in patched.json()["error"]["details"]["fields"]


def test_reservations_together_leave_room(alice):
    cap(alice, 10)

    def create(name: str, reserved: int):
        body = {"name": name, "runtime": "python", "code": CODE, "reserved_concurrency": reserved}
        return call(alice, "POST", "/api/v1/functions", body)

    assert create("a", 6).status_code == 201
    refused = create("b", 4)
    assert refused.status_code == 400
    assert refused.json()["error"]["details"]["reserved_by_others"] == 6
    assert create("b", 3).status_code == 201
    assert call(alice, "PATCH", "/api/v1/functions/a", {"reserved_concurrency": 7}).status_code == 400
    assert call(alice, "PATCH", "/api/v1/functions/a", {"reserved_concurrency": None}).status_code == 200


def test_flow_settings_round_trip_through_the_api(alice):
    cap(alice, 10)
    created = call(alice, "POST", "/api/v1/functions", {
        "name": "sync", "runtime": "python", "code": CODE, "max_concurrency": 5, "reserved_concurrency": 2,
        "concurrency_key": "$[0].store_id",
    })  # fmt: skip
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["max_concurrency"], body["reserved_concurrency"]) == (5, 2)
    assert (body["concurrency_key"], body["concurrency_per_key"]) == ("$[0].store_id", 1)
    patched = call(alice, "PATCH", "/api/v1/functions/sync", {"max_concurrency": None, "concurrency_key": ""})
    assert patched.status_code == 200
    body = call(alice, "GET", "/api/v1/functions/sync").json()
    assert body["max_concurrency"] is None and body["reserved_concurrency"] == 2
    assert body["concurrency_key"] is None and body["concurrency_per_key"] is None


@pytest.mark.parametrize("priority", [-1, 10, "5", 2.5, True, None])
def test_a_bad_priority_is_400_json(alice, priority):
    cap(alice, 10)
    make_function(alice)
    refused = alice.post_job({"runtime": "python", "code": CODE, "priority": priority})
    assert refused.status_code == 400 and "priority" in refused.json()["error"]["details"]["fields"]
    refused = call(alice, "POST", "/api/v1/functions/f/invoke", {"priority": priority})
    assert refused.status_code == 400 and "priority" in refused.json()["error"]["details"]["fields"]


def test_a_batch_item_takes_a_priority(alice):
    cap(alice, 1)
    make_function(alice)
    body = {"jobs": [{"runtime": "python", "code": CODE}, {"function": "f", "priority": 9},
                     {"runtime": "python", "code": CODE, "priority": 1}]}  # fmt: skip
    answer = call(alice, "POST", "/api/v1/jobs/batch", body)
    assert answer.status_code == 202, answer.content
    assert [j["priority"] for j in answer.json()["jobs"]] == [5, 9, 1]


# isolation


def test_another_tenants_limits_do_not_touch_this_tenant(alice, bob):
    cap(alice, 10)
    cap(bob, 3)
    make_function(alice, "f", max_concurrency=1, reserved_concurrency=1)
    make_function(bob, "f")
    [invoke(alice) for _ in range(5)]
    bobs = [invoke(bob) for _ in range(5)]
    assert dispatched(bob) == {j.id for j in bobs[:3]}
    assert len(dispatched(alice)) == 1
    # bob's waiting job is held by bob's cap, not by alice's function
    assert waiting.waiting_reason(reload(bobs[4])) == "tenant concurrency 3/3"
    # and an id of the other tenant's job is not found
    assert (
        call(bob, "GET", f"/api/v1/jobs/{Job.objects.filter(tenant=alice.tenant).first().id}").status_code
        == 404
    )


def test_the_queue_receives_what_the_general_path_dispatched(alice):
    cap(alice, 10)
    make_function(alice, max_concurrency=2)
    jobs = [invoke(alice) for _ in range(4)]
    queued = get_queue().job_ids
    assert sorted(q.rsplit("-", 1)[0] for q in queued) == sorted(str(j.id) for j in jobs[:2])


def test_flow_gauges_name_the_busiest_functions_and_keys(alice, settings):
    from jobs.metrics import _flow_gauges

    settings.FLOW_METRICS_TOP = 1
    cap(alice, 10)
    make_function(alice, "sync", concurrency_key="$[0]")
    make_function(alice, "quiet")
    [invoke(alice, "sync", "a") for _ in range(3)]
    invoke(alice, "sync", "b")
    invoke(alice, "quiet")
    functions, keys = list(_flow_gauges())
    assert {(s.labels["function"], s.labels["state"]): s.value for s in functions.samples} == {
        ("sync", "in_flight"): 2,
        ("sync", "waiting"): 2,
    }
    assert {(s.labels["key"], s.labels["state"]): s.value for s in keys.samples} == {
        ("a", "in_flight"): 1,
        ("a", "waiting"): 2,
    }
    json.dumps([s.labels for s in keys.samples])  # labels are plain text
