"""Jobs held back from dispatch until something they need exists (a function version's build): a queued
job with no ``next_attempt_at`` is never dispatched. Releasing makes them due now; failing ends them."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from .. import signals
from ..models import Job, Status
from . import dispatch, notify


@transaction.atomic
def jobs_release_held(*, version_id) -> int:
    """The version is built: its held jobs are due now, dispatched as slots allow."""
    now = timezone.now()
    held = Job.objects.filter(
        function_version_id=version_id, status=Status.QUEUED, next_attempt_at__isnull=True
    )
    tenants = set(held.values_list("tenant_id", flat=True))
    count = held.update(next_attempt_at=now)
    for tenant_id in tenants:
        dispatch.fill_after_commit(tenant_id)
    return count


@transaction.atomic
def jobs_fail_held(*, version_id, error: dict) -> int:
    """The version can never run: its held jobs fail with the build's error (no attempt was made)."""
    now = timezone.now()
    jobs = list(
        Job.objects.select_for_update()
        .select_related("tenant")
        .filter(function_version_id=version_id, status=Status.QUEUED, next_attempt_at__isnull=True)
    )
    if jobs:
        notify.commit_durably()
    for job in jobs:
        job.status, job.error, job.finished_at = Status.FAILED, error, now
        job.save(update_fields=["status", "error", "finished_at"])
        signals.job_outcome.send(sender=Job, job=job)
        notify.status_after_commit(job)
        notify.attempt_ended_after_commit(job)
        notify.log_event("job failed: its function's build failed", job, event="build_failed")
    return len(jobs)
