"""Placement against real processes (issue 28): `manage.py worker --pools …` and the reconciler as
subprocesses on the test database and Redis (the chaos tests' stack), jobs in Docker.

What is proved: a job for pool eu runs only on the eu worker; with no live eu worker it waits with
the reason, then runs when one starts; with its home pool saturated it overflows after its wait and
says so; the tenant cap holds across two pools under a flood; the only eu worker SIGKILLed mid-job
leaves the job to the next eu worker started."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from django.db import connection

from jobs import pools
from jobs.models import Attempt, Job

from .test_chaos import assert_exactly_one_success_each, terminal_count, wait_until
from .test_chaos import stack as stack  # noqa: F401 - the chaos tests' fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]

QUICK = {"runtime": "python", "code": "def main(i):\n    return i * 2\n"}


def sleeping(seconds: float) -> dict:
    return {
        "runtime": "python",
        "code": f"import time\ndef main(i):\n    time.sleep({seconds})\n    return i\n",
    }


def submit(persona, body: dict, n: int = 1) -> list[str]:
    jobs = [{**body, "args": [i]} for i in range(n)]
    response = persona.client.post("/api/v1/jobs/batch", {"jobs": jobs}, format="json")
    assert response.status_code == 202, response.content
    return response.json()["ids"]


def start_worker(stack, name: str, pools_served: str, **env: str):
    stack.env.update({"WORKER_HEARTBEAT_S": "0.5", "WORKERS_PER_HOST": "2", **env})
    proc = stack.start(name, "worker", "--pools", pools_served)
    assert wait_until(lambda: _serves(proc.pid, pools_served), timeout=60), stack.report()
    return proc


def _serves(pid: int, pools_served: str) -> bool:
    live = pools.live_workers()
    return all(any(w.endswith(f"-{pid}") for w in live.get(p, [])) for p in pools_served.split(","))


def workers_of(ids) -> set[str]:
    """The pids of the workers whose attempts succeeded for these jobs."""
    rows = Attempt.objects.filter(job_id__in=ids, status="succeeded").values_list("worker", flat=True)
    return {worker.rsplit(":", 1)[1] for worker in rows}


def raise_cap(persona, cap: int) -> None:
    quota = persona.tenant.quota
    quota.max_concurrency, quota.submissions_per_minute = cap, 100_000
    quota.save()


def test_a_job_for_eu_runs_only_on_the_eu_worker(alice, stack):
    stack.start("reconciler", "scheduler")
    home = start_worker(stack, "worker-default", "default")
    eu = start_worker(stack, "worker-eu", "eu")
    eu_ids = submit(alice, {**QUICK, "pool": "eu"}, 8)
    home_ids = submit(alice, QUICK, 8)
    assert wait_until(lambda: terminal_count(eu_ids + home_ids) == 16, timeout=120), stack.report()
    assert_exactly_one_success_each(eu_ids + home_ids)
    assert workers_of(eu_ids) == {str(eu.pid)} and workers_of(home_ids) == {str(home.pid)}
    assert set(Job.objects.filter(pk__in=eu_ids).values_list("pool", "placed_by")) == {("eu", "home")}


def test_without_a_live_eu_worker_the_job_waits_and_runs_when_one_starts(alice, stack):
    stack.start("reconciler", "scheduler")
    start_worker(stack, "worker-default", "default")
    [job_id] = submit(alice, {**QUICK, "pool": "eu"})
    time.sleep(2)  # several reconciler passes: it stays where it is
    body = alice.client.get(f"/api/v1/jobs/{job_id}").json()
    assert (body["status"], body["waiting_reason"]) == ("queued", "no live worker in pool eu")
    eu = start_worker(stack, "worker-eu", "eu")
    assert wait_until(lambda: terminal_count([job_id]) == 1, timeout=60), stack.report()
    assert_exactly_one_success_each([job_id])
    assert workers_of([job_id]) == {str(eu.pid)}


def test_a_saturated_home_pool_overflows_after_the_wait(alice, stack):
    """home's only worker runs one job at a time and is busy: the next job, placed with overflow to
    burst after 1.5 s, runs on the burst worker once it has waited that long, and says so."""
    raise_cap(alice, 10)
    stack.start("reconciler", "scheduler")
    start_worker(stack, "worker-home", "home", WORKER_MAX_INFLIGHT="1")
    burst = start_worker(stack, "worker-burst", "burst", WORKER_MAX_INFLIGHT="4")
    [blocker] = submit(alice, {**sleeping(8), "pool": "home"})
    assert wait_until(lambda: Job.objects.filter(pk=blocker, status="running").exists(), timeout=60)
    placed = {"pool": "home", "overflow": ["burst"], "after_wait_s": 1.5}
    [job_id] = submit(alice, {**QUICK, "placement": placed})
    assert wait_until(lambda: terminal_count([job_id]) == 1, timeout=30), stack.report()
    job = Job.objects.get(pk=job_id)
    assert job.status == "succeeded" and workers_of([job_id]) == {str(burst.pid)}
    assert (job.pool, job.home_pool) == ("burst", "home")
    waited = float(job.placed_by.removeprefix("overflow after ").removesuffix(" s wait"))
    assert 1.5 <= waited < 5 and job.queue_wait_ms >= 1500  # not before its wait
    assert Job.objects.get(pk=blocker).status == "running"  # home was busy all along


def test_the_tenant_cap_holds_across_two_pools_under_a_flood(alice, stack):
    raise_cap(alice, 4)
    stack.start("reconciler", "scheduler")
    start_worker(stack, "worker-default", "default")
    start_worker(stack, "worker-eu", "eu")
    stop, peak = threading.Event(), [0]

    def sample() -> None:
        try:
            while not stop.is_set():
                in_flight = Job.objects.filter(
                    tenant=alice.tenant, status__in=["dispatched", "running"]
                ).count()
                peak[0] = max(peak[0], in_flight)
                time.sleep(0.02)
        finally:
            connection.close()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        ids = submit(alice, {**sleeping(0.3), "pool": "eu"}, 30) + submit(alice, sleeping(0.3), 30)
        assert wait_until(lambda: terminal_count(ids) == 60, timeout=180), stack.report()
    finally:
        stop.set()
        sampler.join(timeout=10)
    assert_exactly_one_success_each(ids)
    assert peak[0] == 4  # reached, never passed
    assert set(Job.objects.filter(pk__in=ids).values_list("pool", flat=True)) == {"eu", "default"}


def test_the_only_eu_worker_killed_mid_job_leaves_it_to_the_next_eu_worker(alice, stack):
    stack.start("reconciler", "scheduler")
    first = start_worker(stack, "worker-eu-1", "eu")
    [job_id] = submit(alice, {**sleeping(4), "pool": "eu"})
    assert wait_until(lambda: Job.objects.filter(pk=job_id, status="running").exists(), timeout=60)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    # its lease expires (LEASE_S=3): the job waits again, at home in eu, where no worker is left
    waiting = wait_until(
        lambda: (
            (body := alice.client.get(f"/api/v1/jobs/{job_id}").json())["waiting_reason"]
            == "no live worker in pool eu"
            and body
        ),
        timeout=30,
    )
    assert waiting and waiting["pool"] == "eu", stack.report()
    second = start_worker(stack, "worker-eu-2", "eu")
    assert wait_until(lambda: terminal_count([job_id]) == 1, timeout=60), stack.report()
    assert_exactly_one_success_each([job_id])
    assert workers_of([job_id]) == {str(second.pid)}
    assert Attempt.objects.filter(job_id=job_id, status="lost").count() == 1
