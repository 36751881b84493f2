"""Many jobs at once per worker (issue 25), against real processes: `manage.py worker` and the
reconciler as subprocesses on the test database and Redis (the chaos tests' stack), jobs in Docker.

What is proved: jobs of one worker overlap (their attempts' run intervals say so); a worker
SIGKILLed with 20 in flight loses none; the tenant's cap stays exact with a worker that could run
far more; the memory budget is never over-admitted; SIGTERM lets every job in flight finish."""

from __future__ import annotations

import signal
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection

from jobs.models import Attempt, Job

from .test_chaos import assert_exactly_one_success_each, terminal_count, wait_until
from .test_chaos import stack as stack  # noqa: F401 - the chaos tests' fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]


def sleeping(seconds: float, **extra) -> dict:
    code = f"import time\ndef main(i):\n    time.sleep({seconds})\n    return i\n"
    return {"runtime": "python", "code": code, **extra}


def submit(persona, body: dict, n: int) -> list[str]:
    """``n`` jobs in batches of 100 (one request each): a flood arrives faster than one by one."""
    ids: list[str] = []
    while len(ids) < n:
        jobs = [{**body, "args": [len(ids) + i]} for i in range(min(100, n - len(ids)))]
        response = persona.client.post("/api/v1/jobs/batch", {"jobs": jobs}, format="json")
        assert response.status_code == 202, response.content
        ids += response.json()["ids"]
    return ids


def raise_cap(persona, cap: int) -> None:
    quota = persona.tenant.quota
    quota.max_concurrency, quota.submissions_per_minute = cap, 100_000
    quota.save()


def run_intervals(ids) -> list[tuple]:
    """Each succeeded attempt's run (its user code's time, cell start excluded): (start, end, worker).
    (On a loaded machine an attempt may be lost and run again — at least once, fenced — so a job may
    have another attempt beside its one success.)"""
    rows = Attempt.objects.filter(job_id__in=ids, status="succeeded", duration_ms__isnull=False)
    return [
        (a.finished_at - timedelta(milliseconds=a.duration_ms), a.finished_at, a.worker)
        for a in rows.only("finished_at", "duration_ms", "worker")
    ]


def most_at_once(intervals) -> int:
    edges = sorted([(start, 1) for start, _, _ in intervals] + [(end, -1) for _, end, _ in intervals])
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak


def test_fifty_sleeping_jobs_overlap_with_two_worker_processes(alice, stack):
    raise_cap(alice, 100)
    stack.env["WORKERS_PER_HOST"] = "2"
    # each takes at most 30 (its budget would let one take all 50 while the other still starts)
    stack.env["WORKER_MAX_INFLIGHT"] = "30"
    stack.start("reconciler", "scheduler")
    stack.start("worker-a", "worker")
    stack.start("worker-b", "worker")
    ids = submit(alice, sleeping(2), 50)
    assert wait_until(lambda: terminal_count(ids) == 50, timeout=120), (
        f"{terminal_count(ids)}/50 terminal\n{stack.report()}"
    )
    assert_exactly_one_success_each(ids)
    intervals = run_intervals(ids)
    others = list(
        Attempt.objects.filter(job_id__in=ids).exclude(status="succeeded").values("status", "error")
    )
    assert len(intervals) == 50 and len(others) <= 2, others  # a lost attempt or two at most
    # one at a time per process would be 2 at most (cold cells start a few at a time: not all 50)
    assert most_at_once(intervals) >= 10, most_at_once(intervals)
    assert len({worker for _, _, worker in intervals}) == 2  # both processes ran jobs


def test_a_worker_sigkilled_with_twenty_jobs_in_flight_loses_none(alice, stack, docker_client):
    raise_cap(alice, 100)
    stack.start("reconciler", "scheduler")
    victim = stack.start("worker-a", "worker")
    ids = submit(alice, sleeping(4), 20)
    assert wait_until(lambda: Job.objects.filter(pk__in=ids, status="running").count() == 20, timeout=90), (
        stack.report()
    )
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    stack.start("worker-b", "worker")  # the survivor: sweeps the victim's cells, runs the jobs again
    assert wait_until(lambda: terminal_count(ids) == 20, timeout=90), (
        f"{terminal_count(ids)}/20 terminal\n{stack.report()}"
    )
    assert_exactly_one_success_each(ids)
    assert sorted(Job.objects.get(pk=i).result for i in ids) == list(range(20))
    assert Attempt.objects.filter(job_id__in=ids, status="lost").count() == 20  # all 20 were in flight
    assert wait_until(
        lambda: (
            not docker_client.containers.list(all=True, filters={"label": f"lambdasite.pid={victim.pid}"})
        ),
        timeout=20,
    )


def test_the_tenant_cap_stays_exact_under_a_flood_with_many_in_flight(alice, stack):
    cap = 12
    raise_cap(alice, cap)
    stack.start("reconciler", "scheduler")
    stack.start("worker", "worker")  # room for hundreds: only the cap may hold the tenant back
    samples: list[tuple[int, int]] = []
    stop = threading.Event()

    def sample() -> None:
        from django.db import connection as own

        try:
            while not stop.is_set():
                with own.cursor() as cursor:
                    cursor.execute(
                        "SELECT count(*) FILTER (WHERE status = 'running'),"
                        " count(*) FILTER (WHERE status IN ('dispatched', 'running'))"
                        " FROM jobs_job WHERE tenant_id = %s",
                        [alice.tenant.pk],
                    )
                    samples.append(cursor.fetchone())
                time.sleep(0.02)
        finally:
            own.close()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        ids = submit(alice, sleeping(0.3), 200)
        assert wait_until(lambda: terminal_count(ids) == 200, timeout=150), (
            f"{terminal_count(ids)}/200 terminal\n{stack.report()}"
        )
    finally:
        stop.set()
        sampler.join(timeout=5)
    assert_exactly_one_success_each(ids)
    assert max(held for _, held in samples) <= cap, max(samples)
    assert max(running for running, _ in samples) >= cap - 2  # many at once, and never one more
    assert most_at_once(run_intervals(ids)) <= cap


def test_jobs_with_large_memory_limits_are_not_over_admitted(alice, stack):
    raise_cap(alice, 100)
    stack.env["HOST_MEMORY_BUDGET_MB"] = "1000"  # two 400 MB jobs fit, a third does not
    stack.start("reconciler", "scheduler")
    stack.start("worker", "worker")
    big = submit(alice, sleeping(1.5, memory_mb=400), 6)
    assert wait_until(lambda: terminal_count(big) == 6, timeout=90), stack.report()
    assert_exactly_one_success_each(big)
    assert most_at_once(run_intervals(big)) == 2
    # the same worker runs small jobs many at once: the bound is memory, not a count
    small = submit(alice, sleeping(3, memory_mb=64), 12)
    assert wait_until(lambda: terminal_count(small) == 12, timeout=90), stack.report()
    assert most_at_once(run_intervals(small)) >= 8


def test_sigterm_lets_every_job_in_flight_finish(alice, stack):
    raise_cap(alice, 100)
    worker = stack.start("worker", "worker")
    ids = submit(alice, sleeping(3), 6)
    assert wait_until(lambda: Job.objects.filter(pk__in=ids, status="running").count() == 6, timeout=60)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=40) == 0, stack.report()
    assert_exactly_one_success_each(ids)
    with connection.cursor() as cursor:  # nothing was handed back or lost: one attempt each
        cursor.execute("SELECT count(*) FROM jobs_attempt WHERE job_id = ANY(%s::uuid[])", [ids])
        assert cursor.fetchone()[0] == 6
