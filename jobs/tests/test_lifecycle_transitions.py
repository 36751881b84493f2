"""How each end of an attempt closes it, against PostgreSQL without Docker: the verdict, a sandbox
failure, a hand-back and an expired lease all close the attempt's row and bill what ran to the job;
only the job's current attempt changes the job's outcome."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

import sandbox
from jobs.billing import gb_seconds
from jobs.models import Attempt, Job, Status
from jobs.services import lifecycle
from jobs.services.submit import JobSpec, job_submit

pytestmark = pytest.mark.django_db


def claimed(persona, *, stale: bool = False) -> Job:
    """A running job; ``stale``: its attempt 1 was superseded (its lease expired, attempt 2 claimed it)."""
    spec = JobSpec(runtime="python", code="def main():\n    return 1\n", memory_mb=128)
    job = job_submit(tenant=persona.tenant, api_key=persona.api_key, spec=spec)[0]
    lifecycle.job_claim(job_id=job.id, worker="w1")
    if stale:
        Job.objects.filter(pk=job.id).update(status=Status.QUEUED)
        lifecycle.job_claim(job_id=job.id, worker="w2")
    return Job.objects.get(pk=job.id)


def attempt(job: Job, number: int = 1) -> Attempt:
    return Attempt.objects.get(job_id=job.id, number=number)


def test_a_stale_verdict_is_billed_and_kept_in_the_history_only(alice):
    job = claimed(alice, stale=True)
    result = sandbox.RunResult(
        status="failed", duration_ms=99.2, init_ms=0.5, log_bytes=7, container_id="c" * 80
    )
    lifecycle.job_finish(job_id=job.id, attempt_number=1, result=result, log_lines=3)
    job.refresh_from_db()
    assert (job.status, job.billed_ms, job.log_lines, job.log_bytes) == (Status.RUNNING, 100, 3, 7)
    closed = attempt(job)
    assert (closed.status, closed.billed_ms, closed.container_id) == (Status.FAILED, 100, "c" * 64)
    assert closed.gb_seconds == pytest.approx(gb_seconds(128, 100)) == pytest.approx(job.gb_seconds)


def test_a_current_verdict_closes_the_attempt_and_finishes_the_job_in_one_write(alice):
    job = claimed(alice)
    result = sandbox.RunResult(status="succeeded", result=1, duration_ms=10.1, init_ms=None, log_bytes=2)
    lifecycle.job_finish(job_id=job.id, attempt_number=1, result=result, log_lines=1)
    job.refresh_from_db()
    assert (job.status, job.result, job.billed_ms, job.log_lines, job.lease_expires_at) == (
        Status.SUCCEEDED, 1, 11, 1, None,
    )  # fmt: skip
    closed = attempt(job)
    assert (closed.status, closed.billed_ms, closed.duration_ms) == (Status.SUCCEEDED, 11, 10.1)
    assert closed.finished_at == job.finished_at


def test_a_sandbox_failure_of_a_stale_attempt_is_billed_and_leaves_the_job_running(alice):
    job = claimed(alice, stale=True)
    error = sandbox.SandboxError("engine gone", code="engine_unavailable")
    lifecycle.job_internal_error(job_id=job.id, attempt_number=1, error=error, log_lines=2, ran_ms=40.0)
    job.refresh_from_db()
    assert (job.status, job.billed_ms, job.log_lines, job.error) == (Status.RUNNING, 40, 2, None)
    closed = attempt(job)
    assert (closed.status, closed.duration_ms, closed.billed_ms) == (Status.FAILED, 40.0, 40)
    assert closed.error["code"] == "engine_unavailable"


def test_a_sandbox_failure_of_the_current_attempt_is_retried_on_the_system_budget(alice):
    job = claimed(alice)
    error = sandbox.SandboxError("engine gone")
    lifecycle.job_internal_error(job_id=job.id, attempt_number=1, error=error, log_lines=0)
    job.refresh_from_db()
    assert job.status == Status.RETRYING and job.error["type"] == "InternalError" and job.billed_ms == 0
    assert (attempt(job).status, attempt(job).duration_ms) == (Status.FAILED, None)


def test_a_handback_puts_the_job_back_in_its_place_and_bills_what_ran(alice):
    job = claimed(alice)
    lifecycle.job_handback(job_id=job.id, attempt_number=1, log_lines=4, ran_ms=12.5)
    job.refresh_from_db()
    assert (job.status, job.lease_expires_at, job.next_attempt_at) == (Status.QUEUED, None, job.created_at)
    assert (job.billed_ms, job.log_lines) == (13, 4)
    closed = attempt(job)
    assert (closed.status, closed.error["type"], closed.duration_ms) == (Status.LOST, "WorkerStopped", 12.5)


def test_a_handback_of_a_stale_attempt_is_billed_and_changes_nothing_else(alice):
    job = claimed(alice, stale=True)
    lifecycle.job_handback(job_id=job.id, attempt_number=1, log_lines=4, ran_ms=12.5)
    job.refresh_from_db()
    assert (job.status, job.attempts, job.billed_ms, job.log_lines) == (Status.RUNNING, 2, 13, 0)
    assert attempt(job).status == Status.LOST
    lifecycle.job_handback(job_id=job.id, attempt_number=1, log_lines=4, ran_ms=12.5)  # closed: nothing
    assert Job.objects.get(pk=job.id).billed_ms == 13


def test_an_expired_lease_bills_up_to_the_last_renewal(alice):
    job = claimed(alice)
    started = attempt(job).started_at
    last_renewal = started + timedelta(milliseconds=300)
    Job.objects.filter(pk=job.id).update(lease_expires_at=last_renewal + timedelta(seconds=settings.LEASE_S))
    assert lifecycle.job_expire_lease(job_id=job.id, now=timezone.now() + timedelta(hours=1))
    job.refresh_from_db()
    assert (job.status, job.billed_ms, job.error["type"]) == (Status.QUEUED, 300, "WorkerLost")
    closed = attempt(job)
    assert (closed.status, closed.billed_ms, closed.duration_ms) == (Status.LOST, 300, None)
