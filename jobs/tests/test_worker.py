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


def record(what: str) -> None:
    """A task for the queue tests: notes that it ran (in Redis, where the test can read it)."""
    from lambdasite.redis_client import get_redis

    get_redis().rpush("test:ran", what)


def test_a_popped_job_leaves_rqs_pop_list_whether_it_runs_or_goes_back(redis_conn):
    """A worker of one queue pops by moving the id into RQ's intermediate list, which RQ's own
    execution empties and this worker's did not: every job's id stayed for good, and RQ's maintenance
    walked the whole list every 10 minutes (a given-back job would be failed as "stuck" there)."""
    from lambdasite.redis_client import get_queue

    queue = get_queue()
    first, second = queue.enqueue(record, "first"), queue.enqueue(record, "second")
    worker = SandboxWorker([queue], connection=redis_conn)
    job, popped_from = Queue.dequeue_any([queue], timeout=1, connection=redis_conn)
    assert job.id == first.id and redis_conn.lrange(queue.intermediate_queue_key, 0, -1) == [job.id.encode()]
    worker._give_back(job, popped_from)
    assert queue.get_job_ids() == [first.id, second.id]
    assert redis_conn.llen(queue.intermediate_queue_key) == 0
    SandboxWorker([queue], connection=redis_conn).work(burst=True, with_scheduler=False)
    assert redis_conn.lrange("test:ran", 0, -1) == [b"first", b"second"]
    assert redis_conn.llen(queue.intermediate_queue_key) == 0


def test_job_workers_never_take_a_build_and_build_workers_take_only_builds(redis_conn):
    """Every worker used to take the builds queue first: a deploy per worker stopped every tenant's
    jobs. A job worker now leaves builds alone (a job never waits behind one), a build worker jobs."""
    from jobs.worker import worker_queues
    from lambdasite.redis_client import get_queue

    get_queue(build_queue_name()).enqueue(record, "build")
    get_queue().enqueue(record, "warm-up or job")
    assert [q.name for q in worker_queues(builds=False)] == [settings.RQ_QUEUE]
    assert [q.name for q in worker_queues(builds=True)] == [build_queue_name()]
    SandboxWorker(worker_queues(builds=False), connection=redis_conn).work(burst=True, with_scheduler=False)
    assert redis_conn.lrange("test:ran", 0, -1) == [b"warm-up or job"]
    assert get_queue(build_queue_name()).count == 1  # still waiting for a build worker
    SandboxWorker(worker_queues(builds=True), connection=redis_conn).work(burst=True, with_scheduler=False)
    assert redis_conn.lrange("test:ran", 0, -1) == [b"warm-up or job", b"build"]


def test_a_heartbeat_registers_the_worker_again_after_redis_lost_its_data(redis_conn):
    """After a FLUSHALL the heartbeat refreshed a registration that no longer existed: RQ's count (and
    django-rq's admin, and the provisioned cells' share) said 0 workers while they ran jobs."""
    from rq import Worker

    from lambdasite.redis_client import get_queue

    worker = SandboxWorker([get_queue()], connection=redis_conn, name="reregistered")
    worker.register_birth()
    redis_conn.flushdb()
    worker.heartbeat()  # the first one is due at once (never beaten yet)
    assert Worker.count(connection=redis_conn) == 1 and Worker.count(queue=get_queue()) == 1
    registration = redis_conn.hgetall(worker.key)
    assert registration[b"queues"] == settings.RQ_QUEUE.encode() and b"birth" in registration
    assert 0 < redis_conn.ttl(worker.key) <= worker.worker_ttl + 60
    worker._beat_at = 0.0
    worker.heartbeat()  # registered: a plain heartbeat again
    assert Worker.count(connection=redis_conn) == 1
    worker.register_death()


def test_the_fleet_counts_real_workers_through_a_redis_flush_and_a_sigkill(redis_conn):
    """Two job workers and a build worker as processes. After Redis loses its data they are counted
    again at their next beat (not 0 forever), web stays ready throughout, and a SIGKILLed worker
    leaves the count once its heartbeat expires (not 3 for 2 live ones)."""
    import subprocess
    import sys

    from rest_framework.test import APIClient
    from rq import Worker

    from jobs import metrics
    from jobs.tests.test_chaos import ROOT, Stack, wait_until

    stack = Stack(settings.REDIS_URL)
    stack.env["WORKER_HEARTBEAT_S"] = "0.2"  # a killed worker is forgotten after 0.6 s

    def start(name: str, *args: str) -> subprocess.Popen:
        stack.logs[name] = ROOT / "var" / f"fleet-{name}.log"
        stack.procs[name] = subprocess.Popen(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=stack.env,
            stdout=subprocess.DEVNULL, stderr=open(stack.logs[name], "w"),
        )  # fmt: skip
        return stack.procs[name]

    def fleet() -> dict:
        checks = APIClient().get("/healthz/fleet").json()["checks"]
        return {
            "jobs": checks["workers"].get("detail", {}).get("count", 0),
            "builds": checks["build_workers"].get("detail", {}).get("count", 0),
        }

    try:
        start("jobs-1", "worker")
        victim = start("jobs-2", "worker")
        start("builds-1", "worker", "--builds")
        assert wait_until(lambda: fleet() == {"jobs": 2, "builds": 1}, 60, 0.1), (fleet(), stack.report())
        # the beat starts before RQ's loop registers: flushed before a worker's birth, its registration
        # would come back at that birth and prove nothing. Flushed just after it, as here, is where a
        # heartbeat in RQ's suspension check used to hide the loss for good (see the test above).
        assert wait_until(lambda: Worker.count(connection=redis_conn) == 3, 30, 0.01), stack.report()

        redis_conn.flushdb()  # as FLUSHALL, on the suite's own database
        assert APIClient().get("/readyz").status_code == 200  # web's readiness never depended on them
        assert wait_until(lambda: fleet() == {"jobs": 2, "builds": 1}, 5, 0.05), (fleet(), stack.report())

        # RQ's own registration too, at the worker loop's next heartbeat (every 5 s)
        assert wait_until(lambda: Worker.count(connection=redis_conn) == 3, 15, 0.2), stack.report()

        victim.kill()  # SIGKILL: no goodbye
        victim.wait(timeout=10)
        assert wait_until(lambda: fleet() == {"jobs": 1, "builds": 1}, 5, 0.05), (fleet(), stack.report())
        assert metrics.workers_alive()["jobs"] == 1
    finally:
        stack.stop()


def test_a_registration_made_partial_is_written_again_at_the_next_heartbeat(redis_conn):
    """RQ checks for suspension with a heartbeat in the same pipeline. After a FLUSHALL that heartbeat
    recreated the worker's hash with ``last_heartbeat`` alone, so every later heartbeat found the key
    and never registered again: RQ's count left the worker out for good, without a word in its log
    (the fleet test's flake: the flush landed between a worker's birth and its first loop turn). A
    heartbeat now checks what RQ counts: the whole hash and the worker's place in the set."""
    from rq import Worker

    from lambdasite.redis_client import get_queue

    worker = SandboxWorker([get_queue()], connection=redis_conn, name="partial")
    worker.register_birth()
    redis_conn.flushdb()
    worker.check_for_suspension(burst=False)  # due at once, as on the loop's first turn
    worker.heartbeat()  # due at once (never beaten yet)
    assert Worker.count(connection=redis_conn) == 1 and Worker.count(queue=get_queue()) == 1
    assert b"birth" in redis_conn.hgetall(worker.key)

    redis_conn.srem("rq:workers", worker.key)  # RQ's cleaner, racing a registration, drops the member
    worker._beat_at = 0.0
    worker.heartbeat()
    assert Worker.count(connection=redis_conn) == 1
    worker.register_death()
