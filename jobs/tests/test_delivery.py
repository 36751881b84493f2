"""Delivery against real PostgreSQL, Redis and Docker: retries, dead letters, cancel, delete,
idempotency, synchronous invoke, batches and a crash between commit and enqueue."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from jobs import services
from jobs.models import Attempt, Job, LogLine
from lambdasite.redis_client import get_queue

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]

FAIL = {"runtime": "python", "code": "def main():\n    raise RuntimeError('always')\n"}
QUICK = {"runtime": "python", "code": "def main(a, b):\n    return a + b\n", "args": [2, 3]}
SLEEPY = {
    "runtime": "python",
    "code": "import time\ndef main(s):\n    print('sleeping', flush=True)\n    time.sleep(s)\n    return 'woke'\n",
    "args": [30],
    "timeout_ms": 60000,
}


@pytest.fixture
def fast_retries(settings):
    settings.RETRY_BACKOFF_BASE_S = 0.3
    settings.RETRY_BACKOFF_FACTOR = 2.0
    settings.REDISPATCH_AFTER_S = 0.5
    settings.LEASE_RENEW_S = 0.2


class ThreadWorker:
    """Runs waiting jobs in a background thread (RQ's worker loop needs the main thread for signals)."""

    def __init__(self, sandbox_pool) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        try:
            while not self.stop.is_set():
                ids = list(
                    Job.objects.filter(status__in=["queued", "dispatched"]).values_list("id", flat=True)
                )
                for job_id in ids:
                    services.job_execute(job_id=job_id)
                self.stop.wait(0.02)
        finally:
            connection.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=30)


def wait_for(predicate, timeout: float = 20.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not reached in time")


def test_a_failing_job_is_retried_with_growing_gaps_then_dead_then_requeued(alice, run_worker, fast_retries):
    response = alice.post_job({**FAIL, "max_retries": 3})
    job_id = response.json()["id"]
    for _ in range(4):
        run_worker()
        job = Job.objects.get(pk=job_id)
        if job.status == "dead":
            break
        assert job.status == "retrying" and job.next_attempt_at > timezone.now() - timedelta(seconds=1)
        wait_for(lambda: Job.objects.get(pk=job_id).next_attempt_at <= timezone.now())
        services.reconcile()
    job = Job.objects.get(pk=job_id)
    assert job.status == "dead" and job.attempts == 4
    attempts = list(Attempt.objects.filter(job_id=job_id).order_by("number"))
    assert [a.status for a in attempts] == ["failed"] * 4
    gaps = [(b.started_at - a.finished_at).total_seconds() for a, b in zip(attempts, attempts[1:])]
    assert gaps[0] < gaps[1] < gaps[2], gaps
    assert gaps[0] >= 0.3 * 0.5
    detail = alice.client.get(f"/api/v1/jobs/{job_id}").json()
    assert [a["number"] for a in detail["attempt_history"]] == [1, 2, 3, 4]
    assert all(a["error"]["type"] == "RuntimeError" for a in detail["attempt_history"])

    dead = alice.client.get("/api/v1/dead-letters").json()["results"]
    assert [j["id"] for j in dead] == [job_id]

    requeued = alice.client.post(f"/api/v1/jobs/{job_id}/retry")
    assert requeued.status_code == 202 and requeued.json()["status"] in ("queued", "dispatched")
    run_worker()
    assert Attempt.objects.filter(job_id=job_id).count() == 5
    assert Job.objects.get(pk=job_id).status == "retrying"  # a fresh retry budget after a requeue
    assert alice.client.get("/api/v1/dead-letters").json()["results"] == []


def test_max_retries_zero_ends_in_the_attempts_own_verdict(alice, run_worker):
    job_id = alice.post_job(FAIL).json()["id"]
    run_worker()
    job = Job.objects.get(pk=job_id)
    assert job.status == "failed" and job.attempts == 1


def test_retry_rules(alice, bob, run_worker):
    job_id = alice.post_job(QUICK).json()["id"]
    assert alice.client.post(f"/api/v1/jobs/{job_id}/retry").json()["error"]["code"] == "not_retryable"
    run_worker()
    assert (
        alice.client.post(f"/api/v1/jobs/{job_id}/retry").status_code == 409
    )  # succeeded jobs are not retried
    assert bob.client.post(f"/api/v1/jobs/{job_id}/retry").status_code == 404


def test_cancelling_a_waiting_job_means_it_never_runs(alice, bob, run_worker):
    job_id = alice.post_job(QUICK).json()["id"]
    assert bob.client.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 404
    response = alice.client.post(f"/api/v1/jobs/{job_id}/cancel")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    run_worker()
    job = Job.objects.get(pk=job_id)
    assert job.status == "cancelled" and job.attempts == 0
    assert alice.client.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 409


def test_cancelling_a_running_job_kills_it_within_two_seconds(
    alice, sandbox_pool, docker_client, fast_retries
):
    job_id = alice.post_job({**SLEEPY, "max_retries": 2}).json()["id"]
    with ThreadWorker(sandbox_pool):
        wait_for(lambda: LogLine.objects.filter(job_id=job_id, text="sleeping").exists())
        container = Attempt.objects.get(job_id=job_id)
        asked = time.monotonic()
        response = alice.client.post(f"/api/v1/jobs/{job_id}/cancel")
        assert response.status_code == 202 and response.json()["cancel_requested"] is True
        wait_for(lambda: Job.objects.get(pk=job_id).status == "cancelled", timeout=5, step=0.02)
        took = time.monotonic() - asked
    assert took < 2.0, took
    job = Job.objects.get(pk=job_id)
    assert job.attempts == 1 and job.result is None  # never retried
    attempt = Attempt.objects.get(job_id=job_id)
    assert attempt.status == "cancelled" and container.worker
    sandbox_pool.flush()
    import docker as docker_module

    with pytest.raises(docker_module.errors.NotFound):
        docker_client.containers.get(attempt.container_id)


def test_delete_rules(alice, bob, run_worker):
    job_id = alice.post_job({**QUICK, "code": "def main(a, b):\n    print('hi')\n    return a + b\n"}).json()[
        "id"
    ]
    conflict = alice.client.delete(f"/api/v1/jobs/{job_id}")
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "job_not_finished"
    run_worker()
    assert bob.client.delete(f"/api/v1/jobs/{job_id}").status_code == 404
    assert alice.client.delete(f"/api/v1/jobs/{job_id}").status_code == 204
    assert not Job.objects.filter(pk=job_id).exists()
    assert (
        not Attempt.objects.filter(job_id=job_id).exists()
        and not LogLine.objects.filter(job_id=job_id).exists()
    )
    assert alice.client.get(f"/api/v1/jobs/{job_id}").status_code == 404


def test_an_idempotency_key_returns_the_same_job(alice, bob):
    first = alice.post_job(QUICK, HTTP_IDEMPOTENCY_KEY="order-42")
    again = alice.post_job(QUICK, HTTP_IDEMPOTENCY_KEY="order-42")
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    other = alice.post_job({**QUICK, "args": [4, 5]}, HTTP_IDEMPOTENCY_KEY="order-42")
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_conflict"
    assert bob.post_job(QUICK, HTTP_IDEMPOTENCY_KEY="order-42").status_code == 202  # keys are per tenant
    assert Job.objects.filter(tenant=alice.tenant).count() == 1


def test_an_idempotency_key_expires_after_its_ttl(alice, settings):
    first = alice.post_job(QUICK, HTTP_IDEMPOTENCY_KEY="k").json()["id"]
    Job.objects.filter(pk=first).update(
        created_at=timezone.now() - timedelta(hours=settings.IDEMPOTENCY_TTL_H + 1)
    )
    second = alice.post_job(QUICK, HTTP_IDEMPOTENCY_KEY="k")
    assert second.status_code == 202 and second.json()["id"] != first


def test_twenty_concurrent_submits_with_one_key_make_exactly_one_job(alice):
    def submit(_):
        from rest_framework.test import APIClient

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {alice.key}")
        try:
            response = client.post(
                "/api/v1/jobs",
                data=json.dumps(QUICK),
                content_type="application/json",
                HTTP_IDEMPOTENCY_KEY="once",
            )
            return response.status_code, response.json()["id"]
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(submit, range(20)))
    assert {job_id for _, job_id in results} == {results[0][1]}
    assert sorted(status for status, _ in results).count(202) == 1
    assert Job.objects.filter(tenant=alice.tenant).count() == 1


def test_wait_returns_the_finished_job(alice, sandbox_pool):
    with ThreadWorker(sandbox_pool):
        response = alice.client.post(
            "/api/v1/jobs?wait=20", data=json.dumps(QUICK), content_type="application/json"
        )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "succeeded" and body["result"] == 5 and body["attempt_history"]


def test_wait_gives_the_202_body_when_the_job_takes_longer(alice, sandbox_pool):
    started = time.monotonic()
    response = alice.client.post(
        "/api/v1/jobs?wait=0.3", data=json.dumps(SLEEPY), content_type="application/json"
    )
    assert response.status_code == 202 and response.json()["status"] in ("queued", "dispatched")
    assert 0.3 <= time.monotonic() - started < 3


@pytest.mark.parametrize("wait", ["-1", "abc", "1000", "nan"])
def test_a_bad_wait_is_a_400_and_nothing_is_created(alice, wait):
    response = alice.client.post(
        f"/api/v1/jobs?wait={wait}", data=json.dumps(QUICK), content_type="application/json"
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"
    assert Job.objects.count() == 0


def test_a_batch_is_accepted_whole_in_order(alice, run_worker):
    jobs = [{**QUICK, "args": [i, i]} for i in range(5)]
    response = alice.client.post(
        "/api/v1/jobs/batch", data=json.dumps({"jobs": jobs}), content_type="application/json"
    )
    assert response.status_code == 202
    ids = response.json()["ids"]
    assert len(ids) == 5 and [j["id"] for j in response.json()["jobs"]] == ids
    run_worker()
    assert [Job.objects.get(pk=i).result for i in ids] == [0, 2, 4, 6, 8]


def test_a_batch_with_one_bad_job_is_refused_whole(alice, settings):
    jobs = [QUICK, {**QUICK, "timeout_ms": 10**9}, QUICK]
    response = alice.client.post(
        "/api/v1/jobs/batch", data=json.dumps({"jobs": jobs}), content_type="application/json"
    )
    assert response.status_code == 400
    assert "1" in json.dumps(response.json()["error"])
    too_many = alice.client.post(
        "/api/v1/jobs/batch",
        data=json.dumps({"jobs": [QUICK] * (settings.BATCH_MAX_JOBS + 1)}),
        content_type="application/json",
    )
    assert too_many.status_code == 400
    assert Job.objects.count() == 0


def test_a_crash_between_commit_and_enqueue_loses_nothing(alice, run_worker, fast_retries, monkeypatch):
    def redis_gone(*args, **kwargs):
        raise ConnectionError("the process died before it could enqueue")

    monkeypatch.setattr(services, "get_queue", redis_gone)
    response = alice.post_job(QUICK)
    assert response.status_code == 202  # accepted: the row is committed even though Redis never saw it
    job_id = response.json()["id"]
    assert Job.objects.get(pk=job_id).status == "queued"
    monkeypatch.undo()
    services.reconcile()  # the reconciler fills the tenant's free slots from PostgreSQL
    assert Job.objects.get(pk=job_id).status == "dispatched"
    run_worker()
    assert Job.objects.get(pk=job_id).status == "succeeded"


def test_flushall_with_jobs_waiting_loses_nothing(alice, run_worker, redis_conn, fast_retries):
    alice.tenant.quota.max_concurrency = 100  # every job in Redis when it is wiped
    alice.tenant.quota.save()
    ids = [alice.post_job(QUICK).json()["id"] for _ in range(10)]
    assert all(Job.objects.get(pk=i).status == "dispatched" for i in ids)
    redis_conn.flushall()
    time.sleep(0.6)
    assert services.reconcile()["redispatched"] == 10
    run_worker()
    assert [Job.objects.get(pk=i).status for i in ids] == ["succeeded"] * 10


def test_an_expired_lease_is_retried_and_only_one_success_is_visible(alice, run_worker):
    job_id = alice.post_job(QUICK).json()["id"]
    claimed = services.job_claim(job_id=job_id, worker="a-worker-that-dies")  # and never renews or finishes
    assert claimed is not None
    Job.objects.filter(pk=job_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert services.reconcile()["leases_expired"] == 1
    run_worker()
    job = Job.objects.get(pk=job_id)
    assert job.status == "succeeded" and job.result == 5
    assert [a.status for a in Attempt.objects.filter(job_id=job_id).order_by("number")] == [
        "lost",
        "succeeded",
    ]
    # the zombie finally reports: it cannot overwrite what the user sees
    import sandbox

    services.job_finish(
        job_id=job_id,
        attempt_number=1,
        result=sandbox.RunResult(status="failed", error={"type": "X"}),
        log_lines=0,
    )
    assert Job.objects.get(pk=job_id).status == "succeeded"


def test_backoff_grows_and_is_capped(settings):
    settings.RETRY_BACKOFF_BASE_S, settings.RETRY_BACKOFF_FACTOR, settings.RETRY_BACKOFF_CAP_S = 1.0, 2.0, 5.0
    assert [services.backoff_s(n, rand=lambda: 1.0) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert [services.backoff_s(n, rand=lambda: 0.0) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert django_settings.RETRY_BACKOFF_CAP_S == 5.0


def test_a_worker_dying_between_pop_and_claim_loses_nothing(alice, run_worker, fast_retries):
    from rq.job import Job as RQJob
    from rq.job import JobStatus

    job_id = alice.post_job(QUICK).json()["id"]
    queue = get_queue()
    popped = queue.pop_job_id()  # a worker took it from Redis...
    RQJob.fetch(popped, connection=queue.connection).set_status(
        JobStatus.STARTED
    )  # ...and died before claiming
    assert queue.count == 0 and Job.objects.get(pk=job_id).status == "dispatched"
    time.sleep(0.6)
    assert services.reconcile()["redispatched"] == 1
    run_worker()
    assert Job.objects.get(pk=job_id).status == "succeeded"


def test_a_long_queue_is_not_dispatched_twice(alice, fast_retries):
    job_id = alice.post_job(QUICK).json()["id"]
    time.sleep(0.6)
    assert services.reconcile()["redispatched"] == 0  # still queued in Redis
    assert get_queue().count == 1
    assert Job.objects.get(pk=job_id).status == "dispatched"
