"""The worker's side of a job's life against real PostgreSQL, Redis and Docker: claims, the attempt
fence, retries with backoff into the dead-letter queue, internal errors, expired leases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

import sandbox
from jobs import execution
from jobs.models import Attempt, Job
from jobs.services import lifecycle, reconcile
from jobs.services.lifecycle import job_claim, job_finish
from jobs.services.submit import JobSpec, job_submit
from jobs.tests.support import FAIL, QUICK

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]


def submit(persona, **overrides) -> Job:
    spec = JobSpec(**{"runtime": "python", "code": "def main():\n    return 1\n", **overrides})
    return job_submit(tenant=persona.tenant, api_key=persona.api_key, spec=spec)[0]


def test_a_job_is_claimed_once(alice):
    job = submit(alice)
    assert job_claim(job_id=job.id, worker="w1") is not None
    assert job_claim(job_id=job.id, worker="w2") is None
    assert Job.objects.get(pk=job.id).attempts == 1


def test_a_stale_attempt_cannot_overwrite_the_outcome(alice):
    job = submit(alice)
    job_claim(job_id=job.id, worker="w1")
    Job.objects.filter(pk=job.id).update(status="queued")  # as after the reconciler found its lease expired
    job_claim(job_id=job.id, worker="w2")  # attempt 2 is now the current one
    stale = sandbox.RunResult(status="succeeded", result="from the zombie")
    job_finish(job_id=job.id, attempt_number=1, result=stale, log_lines=0)
    job.refresh_from_db()
    assert job.status == "running" and job.result is None
    assert Attempt.objects.get(job=job, number=1).status == "succeeded"
    real = sandbox.RunResult(status="succeeded", result="real")
    job_finish(job_id=job.id, attempt_number=2, result=real, log_lines=0)
    job.refresh_from_db()
    assert (job.status, job.result) == ("succeeded", "real")


def test_nul_characters_in_a_result_do_not_break_storage(alice):
    job = submit(alice)
    job_claim(job_id=job.id, worker="w")
    job_finish(
        job_id=job.id,
        attempt_number=1,
        result=sandbox.RunResult(status="succeeded", result={"a": "x\x00y"}),
        log_lines=0,
    )
    assert Job.objects.get(pk=job.id).result == {"a": "x\ufffdy"}


def test_a_sandbox_failure_is_retried_then_reported_as_internal(alice, monkeypatch):
    def broken(spec, on_output=None):
        raise sandbox.SandboxError("engine gone", code="engine_unavailable")

    class BrokenPool:
        def run(self, spec, on_output=None, cancel=None):
            broken(spec)

    monkeypatch.setattr(sandbox, "default", lambda: BrokenPool())
    job = submit(alice)
    for n in range(settings.SYSTEM_RETRIES + 1):
        execution.job_execute(job_id=job.id)
        job.refresh_from_db()
        if n < settings.SYSTEM_RETRIES:
            assert job.status == "retrying" and job.next_attempt_at is not None
            Job.objects.filter(pk=job.id).update(
                status="queued"
            )  # what the reconciler does when the retry is due
    assert job.status == "failed"
    assert job.error["type"] == "InternalError" and job.error["code"] == "engine_unavailable"
    attempts = list(job.attempt_set.all())
    assert len(attempts) == settings.SYSTEM_RETRIES + 1
    assert all(a.error["type"] == "InternalError" for a in attempts)


def test_a_failing_job_is_retried_with_growing_gaps_then_dead_then_requeued(alice, run_worker, fast_retries):
    response = alice.post_job({**FAIL, "max_retries": 3})
    job_id = response.json()["id"]
    gaps = []
    for number in range(1, 5):
        run_worker()
        job = Job.objects.get(pk=job_id)
        if job.status == "dead":
            break
        assert job.status == "retrying" and job.next_attempt_at > timezone.now() - timedelta(seconds=1)
        finished = Attempt.objects.get(job_id=job_id, number=number).finished_at
        gaps.append((job.next_attempt_at - finished).total_seconds())
        reconcile.reconcile(now=job.next_attempt_at)  # the clock moved to the retry's time
    job = Job.objects.get(pk=job_id)
    assert job.status == "dead" and job.attempts == 4
    attempts = list(Attempt.objects.filter(job_id=job_id).order_by("number"))
    assert [a.status for a in attempts] == ["failed"] * 4
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


def test_an_expired_lease_is_retried_and_only_one_success_is_visible(alice, run_worker):
    job_id = alice.post_job(QUICK).json()["id"]
    claimed = lifecycle.job_claim(job_id=job_id, worker="a-worker-that-dies")  # and never renews or finishes
    assert claimed is not None
    Job.objects.filter(pk=job_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert reconcile.reconcile()["leases_expired"] == 1
    run_worker()
    job = Job.objects.get(pk=job_id)
    assert job.status == "succeeded" and job.result == 5
    assert [a.status for a in Attempt.objects.filter(job_id=job_id).order_by("number")] == [
        "lost",
        "succeeded",
    ]
    # the zombie finally reports: it cannot overwrite what the user sees
    import sandbox

    lifecycle.job_finish(
        job_id=job_id,
        attempt_number=1,
        result=sandbox.RunResult(status="failed", error={"type": "X"}),
        log_lines=0,
    )
    assert Job.objects.get(pk=job_id).status == "succeeded"


def test_the_transition_that_finishes_a_job_commits_durably_before_it_is_announced(alice, redis_conn):
    """Workers commit asynchronously (a crash may lose their last transitions), except the one that
    finishes a job: ``?wait`` answers, webhooks and live pages are told only after a durable commit."""
    from django.db import connection

    from jobs import completion

    job = submit(alice)
    seen = []

    def spy(execute, sql, params, many, context):
        # the job's writes: plain UPDATEs, the claim's CTE (the UPDATE and the attempt's INSERT) and
        # the finish's (the attempt's and the job's UPDATEs)
        prefixes = ('UPDATE "JOBS_JOB"', "UPDATE JOBS_JOB", "WITH CLAIMED AS", "WITH CLOSED AS")
        if sql.lstrip().upper().startswith(prefixes):
            raw = context["cursor"].cursor
            raw.execute("SHOW synchronous_commit")
            announced = bool(redis_conn.exists(completion.DONE_KEY.format(job.id)))
            seen.append((raw.fetchone()[0], announced))
        return execute(sql, params, many, context)

    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")  # as on a worker's connections
    try:
        with connection.execute_wrapper(spy):
            job_claim(job_id=job.id, worker="w")
            claimed = list(seen)
            seen.clear()
            result = sandbox.RunResult(status="succeeded", result=1)
            job_finish(job_id=job.id, attempt_number=1, result=result, log_lines=0)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO DEFAULT")
    assert claimed and all(setting == "off" for setting, _ in claimed)  # a claim may be lost in a crash
    assert seen and all(setting == "on" for setting, _ in seen)  # the outcome may not
    assert not any(announced for _, announced in seen)  # nobody is told before the commit ...
    assert redis_conn.exists(completion.DONE_KEY.format(job.id))  # ... and told right after it


def test_a_claim_is_one_statement_that_opens_the_attempt_and_reads_the_tenants_limits(
    alice, django_assert_num_queries
):
    """The claim reads the job's tenant and quota too: a worker's limits are never older than the claim
    (a per-tenant cache missed on every job with hundreds of tenants active: a query per job)."""
    job = submit(alice)
    quota = alice.tenant.quota
    quota.max_log_bytes = 12_345
    quota.save()
    with django_assert_num_queries(1):
        claimed = job_claim(job_id=job.id, worker="w1")
        job_row, attempt = claimed
        assert job_row.tenant == alice.tenant and job_row.tenant.slug == alice.tenant.slug
        assert job_row.tenant.quota.pk == quota.pk and job_row.tenant.quota.max_log_bytes == 12_345
        assert job_row.tenant.quota.tenant_id == alice.tenant.pk and not job_row.tenant.is_suspended
    stored = Attempt.objects.get(job_id=job.id)
    assert (stored.pk, stored.number, stored.status, stored.worker) == (attempt.pk, 1, "running", "w1")
    assert job_row.status == "running" and job_row.attempts == 1 and job_row.lease_expires_at is not None
    with django_assert_num_queries(1):
        assert job_claim(job_id=job.id, worker="w2") is None
    assert Attempt.objects.filter(job_id=job.id).count() == 1  # the losing claim opened nothing

    quota.max_log_bytes = 999  # changed just now: the next claim runs under it, not under a copy
    quota.save()
    assert job_claim(job_id=submit(alice).id, worker="w1")[0].tenant.quota.max_log_bytes == 999


def test_a_finish_makes_its_commit_durable_without_a_statement_of_its_own(alice):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    job = submit(alice)
    job_claim(job_id=job.id, worker="w")
    with CaptureQueriesContext(connection) as captured:
        job_finish(job_id=job.id, attempt_number=1, result=sandbox.RunResult(status="succeeded"), log_lines=0)
    statements = [q["sql"] for q in captured.captured_queries]
    assert "set_config('synchronous_commit', 'on', true)" in statements[0] + statements[1]  # the row lock's
    assert not any(sql.upper().startswith("SET ") for sql in statements)
    # the attempt's close and the job's outcome are written by one statement
    writes = [sql for sql in statements if sql.upper().startswith(("UPDATE", "INSERT", "WITH"))]
    assert len(writes) == 1 and writes[0].upper().startswith("WITH CLOSED AS")
    stored = Attempt.objects.get(job_id=job.id, number=1)
    assert (stored.status, stored.finished_at is not None) == ("succeeded", True)
    assert Job.objects.get(pk=job.id).status == "succeeded"


def test_one_renewer_thread_keeps_every_running_attempts_lease_and_stops_a_cancelled_one(alice, settings):
    """A worker process renews all its attempts' leases from one thread (not a thread per job); a lease
    stops being renewed once its attempt ends, and a cancel reaches the attempt through it."""
    import threading
    import time

    from jobs.services import actions

    settings.LEASE_RENEW_S = 0.1
    alice.tenant.quota.max_concurrency = 5
    alice.tenant.quota.save()
    first, second = submit(alice), submit(alice)
    stops = {}
    leases = {}
    for job in (first, second):
        job_claim(job_id=job.id, worker="w")
        stops[job.id] = threading.Event()
        leases[job.id] = execution.lease_watch(job.id, 1, stops[job.id])
    claimed_until = {job.id: Job.objects.get(pk=job.id).lease_expires_at for job in (first, second)}
    time.sleep(0.5)
    renewed = {job.id: Job.objects.get(pk=job.id).lease_expires_at for job in (first, second)}
    assert all(renewed[job_id] > claimed_until[job_id] for job_id in renewed)
    assert [t.name for t in threading.enumerate()].count("lease-renewer") == 1

    leases[first.id].stop()  # the attempt ended: its lease is left alone
    time.sleep(0.3)
    left_alone = Job.objects.get(pk=first.id).lease_expires_at
    time.sleep(0.3)
    assert Job.objects.get(pk=first.id).lease_expires_at == left_alone

    actions.job_cancel(job=Job.objects.get(pk=second.id))
    assert stops[second.id].wait(2.0)  # the renewer saw the cancel and asked the sandbox to stop
    assert leases[second.id].reason == "cancelled" and not stops[first.id].is_set()
