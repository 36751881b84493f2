"""What a tenant (or an operator) does to a job: cancel it, run it again, delete it."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from .. import events, signals
from ..exceptions import JobFinished, JobNotFinished, NotRetryable
from ..models import FINISHED, REQUEUEABLE, WAITING, Job, Status
from ..placement import back_home
from . import dispatch, notify, steps
from .admission import tenant_admit
from .rows import locked_job


@transaction.atomic
def job_cancel(*, job: Job) -> Job:
    """A waiting job is cancelled at once; a running one is stopped by its worker (within ~1 s)."""
    job = locked_job(job.pk)
    if job.status in FINISHED:
        raise JobFinished(f"job is already {job.status}", details={"status": job.status})
    job.cancel_requested = True
    if job.status in WAITING:
        job.status, job.finished_at = Status.CANCELLED, timezone.now()
        signals.job_outcome.send(sender=Job, job=job)
        notify.log_event("job cancelled", job, event="cancelled", attempt=job.attempts)
    job.save(update_fields=["cancel_requested", "status", "finished_at"])
    notify.attempt_ended_after_commit(job)
    notify.status_after_commit(job)
    dispatch.fill_after_commit(job.tenant_id)
    return job


@transaction.atomic
def job_requeue(*, job: Job, by_operator: bool = False) -> Job:
    """Run a dead, failed, timed-out, killed or cancelled job again: a new attempt of the same job.

    A requeue is a new run: it passes admission (suspension, monthly budget, rate limit)
    like a submission. Only an operator acting in the admin bypasses it."""
    job = locked_job(job.pk)
    if job.status not in REQUEUEABLE:
        raise NotRetryable(f"a {job.status} job cannot be retried", details={"status": job.status})
    if not by_operator:
        tenant_admit(tenant=job.tenant)
    if job.durable:
        steps.run_rewind(job)  # it resumes at its first step that did not succeed
    job.status, job.cancel_requested, job.retry_base = Status.QUEUED, False, job.attempts
    back_home(job)
    job.result = job.error = job.exit_code = job.finished_at = None
    job.next_attempt_at = timezone.now()
    job.save()
    notify.status_after_commit(job)
    dispatch.fill_after_commit(job.tenant_id)
    notify.log_event("job requeued", job, event="requeued", attempt=job.attempts)
    return job


@transaction.atomic
def job_delete(*, job: Job) -> None:
    job = locked_job(job.pk)
    if job.status not in FINISHED:
        raise JobNotFinished(f"job is {job.status}; cancel it first or wait for it to finish")
    job_id, tenant_id = job.id, job.tenant_id
    job.delete()
    transaction.on_commit(lambda: events.job_deleted(job_id=job_id, tenant_id=tenant_id))
