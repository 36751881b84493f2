"""Reads of jobs, always scoped to one tenant."""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from accounts.models import Tenant
from lambdasite.errors import NotFound, ValidationFailed

from .models import Job, LogLine, Status


def job_list(*, tenant: Tenant, statuses: list[str] | None = None, runtime: str | None = None) -> QuerySet[Job]:
    qs = Job.objects.filter(tenant=tenant).defer("code")
    if statuses:
        unknown = [s for s in statuses if s not in Status.values]
        if unknown:
            raise ValidationFailed(
                f"status: unknown value {unknown[0]!r}; use one of {', '.join(Status.values)}",
                details={"fields": {"status": [f"unknown status {unknown[0]!r}"]}},
            )
        qs = qs.filter(status__in=statuses)
    if runtime:
        qs = qs.filter(runtime=runtime)
    return qs


def job_get(*, tenant: Tenant, job_id) -> Job:
    """A job of this tenant; another tenant's job, or a malformed id, is simply not found."""
    try:
        return Job.objects.prefetch_related("attempt_set").get(tenant=tenant, pk=job_id)
    except (Job.DoesNotExist, ValidationError, ValueError, TypeError):
        raise NotFound("job not found") from None


def job_logs(*, job: Job, after: int = 0, limit: int = 1000) -> list[LogLine]:
    return list(LogLine.objects.filter(job=job, seq__gt=after).order_by("seq")[:limit])
