"""The lean RQ worker: pops, runs and forgets. PostgreSQL is the ledger and Redis only the
transport, so none of RQ's per-job bookkeeping may be left behind, and a job costs the worker a
handful of Redis round trips (RQ's default bookkeeping cost 27)."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings
from rq import Queue
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry

from jobs.models import Attempt, Job
from jobs.tests.support import FAIL, QUICK
from jobs.worker import SandboxWorker
from lambdasite.redis_client import build_queue_name, redis_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]


class CountingConnection(redis.Connection):
    """Counts round trips: one packed send is one trip (a pipeline's commands go in one)."""

    sent = 0

    def send_packed_command(self, command, check_health=True):
        CountingConnection.sent += 1
        return super().send_packed_command(command, check_health)


def _drain(conn) -> None:
    queues = [Queue(build_queue_name(), connection=conn), Queue(settings.RQ_QUEUE, connection=conn)]
    SandboxWorker(queues, connection=conn).work(burst=True, with_scheduler=False, logging_level="WARNING")


def test_a_job_costs_the_worker_a_few_round_trips_and_leaves_no_bookkeeping(alice, sandbox_pool, redis_conn):
    conn = redis.Redis(
        connection_pool=redis.ConnectionPool.from_url(redis_url(), connection_class=CountingConnection)
    )
    CountingConnection.sent = 0
    _drain(conn)  # nothing waits yet: what a worker's start and end cost (registration, cleanup)
    fixed, CountingConnection.sent = CountingConnection.sent, 0
    alice.tenant.quota.max_concurrency = 20
    alice.tenant.quota.save()
    ids = [alice.post_job({**QUICK, "args": [i, 1]}).json()["id"] for i in range(20)]
    assert Job.objects.filter(pk__in=ids, status="dispatched").count() == 20
    _drain(conn)
    per_job = (CountingConnection.sent - fixed) / 20  # burst mode: an LPOP per queue (a BLPOP when idle)
    assert [Job.objects.get(pk=i).result for i in ids] == [i + 1 for i in range(20)]
    assert per_job <= 5, f"{per_job:.1f} round trips per job"
    assert redis_conn.keys("rq:job:*") == []  # each job's hash is deleted once it ran
    assert redis_conn.keys("rq:results:*") == [] and redis_conn.keys("rq:executions:*") == []
    for registry in (StartedJobRegistry, FinishedJobRegistry, FailedJobRegistry):
        assert registry(settings.RQ_QUEUE, connection=redis_conn).count == 0


def test_a_failing_job_leaves_no_rq_failure_behind_its_retries_live_in_postgresql(
    alice, sandbox_pool, redis_conn
):
    job_id = alice.post_job({**FAIL, "max_retries": 0}).json()["id"]
    _drain(redis.Redis.from_url(redis_url()))
    assert Job.objects.get(pk=job_id).status in ("failed", "dead")
    assert Attempt.objects.filter(job_id=job_id).count() == 1
    assert FailedJobRegistry(settings.RQ_QUEUE, connection=redis_conn).count == 0
    assert redis_conn.keys("rq:job:*") == []


def test_a_task_that_raises_does_not_stop_the_worker(alice, sandbox_pool, redis_conn, monkeypatch):
    """A database error escaping the task leaves the job to its lease; the worker takes the next one."""
    from jobs import tasks

    calls = []
    real = tasks.job_execute

    def flaky(*, job_id):
        calls.append(job_id)
        if len(calls) == 1:
            raise RuntimeError("as if the database went away")
        return real(job_id=job_id)

    monkeypatch.setattr(tasks, "job_execute", flaky)
    ids = [alice.post_job({**QUICK, "args": [i, 1]}).json()["id"] for i in range(2)]
    _drain(redis.Redis.from_url(redis_url()))
    statuses = sorted(Job.objects.get(pk=i).status for i in ids)
    assert len(calls) == 2 and statuses == ["dispatched", "succeeded"]  # the first waits for its lease


def test_an_idle_worker_keeps_listening_and_takes_a_job_at_once(alice, redis_conn):
    """redis-py's socket timeout (5 s) used to end an idle worker's 405 s BLPOP with an error, and RQ
    then backed off up to a minute between pops. A real worker process, idle past that, must show no
    Redis error and take a new job as soon as it is queued."""
    import time

    from jobs.tests.test_chaos import Stack, wait_until

    stack = Stack(settings.REDIS_URL)
    try:
        stack.start("idle-worker", "worker")
        time.sleep(12)  # past two of redis-py's 5 s socket timeouts, and RQ's first backoffs
        job_id = alice.post_job(QUICK).json()["id"]
        queued = time.monotonic()
        assert wait_until(lambda: Job.objects.get(pk=job_id).status == "succeeded", 30), stack.report()
        assert time.monotonic() - queued < 10, "the idle worker was not listening"
        log = stack.logs["idle-worker"].read_text(errors="replace")
        assert "could not connect to Redis" not in log, log[-2000:]
    finally:
        stack.stop()
