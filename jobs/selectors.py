"""Reads of jobs, always scoped to tenants; they return rows or None, never HTTP errors."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import CharField, Count, QuerySet, Sum
from django.db.models.functions import Cast
from django.utils import timezone

from accounts.models import Tenant

from . import billing
from .models import Attempt, Connection, Job, LogLine, Status, Step


def job_list(*, tenant_ids, statuses: list[str] | None = None, runtime: str | None = None) -> QuerySet[Job]:
    """Jobs of these tenants (the code column left out), optionally of some statuses or a runtime."""
    qs = Job.objects.filter(tenant_id__in=list(tenant_ids)).defer("code")
    if statuses:
        qs = qs.filter(status__in=statuses)
    if runtime:
        qs = qs.filter(runtime=runtime)
    return qs


def job_get(*, tenant_ids, job_id) -> Job | None:
    """The job if it belongs to one of these tenants, else None: another tenant's job, a missing one
    and a malformed id are all simply not found. The one tenant-scoped lookup of a job."""
    try:
        return (
            Job.objects.select_related("tenant")
            .prefetch_related("attempt_set")
            .filter(tenant_id__in=list(tenant_ids), pk=job_id)
            .first()
        )
    except (ValidationError, ValueError, TypeError):
        return None


def job_search(qs: QuerySet[Job], query: str) -> QuerySet[Job]:
    """A whole job id, or the first characters of one (as lists show them)."""
    query = query.lower()
    try:
        return qs.filter(pk=uuid.UUID(query))
    except ValueError:
        pass
    if not all(c in "0123456789abcdef-" for c in query):
        return qs.none()
    return qs.annotate(id_text=Cast("id", output_field=CharField())).filter(id_text__startswith=query)


def job_logs(*, job: Job, after: int = 0, limit: int = 1000) -> list[LogLine]:
    return list(LogLine.objects.filter(job=job, seq__gt=after).order_by("seq")[:limit])


def job_connections(
    *, job: Job, attempt: int | None = None, after: int = 0, limit: int = 100
) -> list[Connection]:
    """The job's recorded connections after ``after`` in order (of one attempt, or of every one)."""
    rows = Connection.objects.filter(job=job, seq__gt=after)
    if attempt is not None:
        rows = rows.filter(attempt=attempt)
    return list(rows.order_by("seq")[:limit])


def connections_dropped(*, job: Job, attempt: int | None = None) -> int:
    """Connections of the job's attempts (or one attempt) that were counted, not recorded."""
    attempts = (
        Attempt.objects.filter(job=job)
        if attempt is None
        else Attempt.objects.filter(job=job, number=attempt)
    )
    return attempts.aggregate(n=Sum("connections_dropped"))["n"] or 0


def dead_letters(*, tenant: Tenant, limit: int = 200) -> tuple[list[Job], int]:
    """The newest dead jobs (most recently given up first), and how many there are."""
    dead = Job.objects.filter(tenant=tenant, status=Status.DEAD)
    return list(dead.defer("code").order_by("-finished_at")[:limit]), dead.count()


# -- usage and statistics --------------------------------------------------------


def tenant_usage(*, tenant: Tenant, now: datetime | None = None) -> dict:
    """This period's use of every limit (GB-s, requests, egress bytes), and what it cost."""
    start, resets_at = billing.billing_period(now)
    quota = tenant.quota
    jobs = Job.objects.filter(tenant=tenant, created_at__gte=start)
    by_status = dict(jobs.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    attempts = Attempt.objects.filter(job__tenant=tenant, started_at__gte=start)
    totals = attempts.aggregate(
        gb=Sum("gb_seconds"), billed=Sum("billed_ms"), n=Count("id"), egress=Sum("egress_bytes")
    )
    used = totals["gb"] or 0.0
    requests = totals["n"] or 0
    egress_bytes = totals["egress"] or 0
    return {
        "period": {"start": start, "end": resets_at},
        "jobs": {"total": sum(by_status.values()), "by_status": by_status},
        "requests": requests,
        "billed_ms": totals["billed"] or 0,
        "egress_bytes": egress_bytes,
        "egress": {
            "used": egress_bytes,
            "limit": quota.max_egress_bytes_month,
            "left": quota.egress_bytes_left(egress_bytes),
        },
        "gb_seconds": {
            "used": round(used, 6),
            "limit": quota.monthly_gb_seconds,
            "left": round(max(0.0, quota.monthly_gb_seconds - used), 6),
        },
        "cost": {
            "currency": settings.PRICE_CURRENCY,
            "compute": round(used * settings.PRICE_PER_GB_SECOND, 12),
            "requests": round(requests / 1_000_000 * settings.PRICE_PER_MILLION_REQUESTS, 12),
            "egress": round(billing.egress_cost(egress_bytes), 12),
            "total": round(billing.cost(gb_seconds=used, requests=requests, egress_bytes=egress_bytes), 12),
            "price_per_gb_second": settings.PRICE_PER_GB_SECOND,
            "price_per_million_requests": settings.PRICE_PER_MILLION_REQUESTS,
            "price_per_gb_egress": settings.PRICE_PER_GB_EGRESS,
        },
        "concurrency": {
            "in_use": Job.objects.filter(
                tenant=tenant, status__in=[Status.DISPATCHED, Status.RUNNING]
            ).count(),
            "limit": quota.max_concurrency,
        },
        "limits": {
            "max_concurrency": quota.max_concurrency,
            "submissions_per_minute": quota.submissions_per_minute,
            "monthly_gb_seconds": quota.monthly_gb_seconds,
            "max_timeout_ms": quota.max_timeout_ms,
            "max_memory_mb": quota.max_memory_mb,
            "max_code_bytes": quota.max_code_bytes,
            "max_args_bytes": quota.max_args_bytes,
            "max_result_bytes": quota.max_result_bytes,
            "max_log_bytes": quota.max_log_bytes,
            "max_retries": quota.max_retries_cap,
            "max_egress_bytes_month": quota.max_egress_bytes_month,
        },
    }


def tenant_stats(*, tenant: Tenant, since: datetime, now: datetime | None = None) -> dict:
    """Counts by status and runtime, success rate, p50/p95 of run time and queue wait, jobs per minute."""
    now = now or timezone.now()
    jobs = Job.objects.filter(tenant=tenant, created_at__gte=since, created_at__lte=now)
    by_status = dict(jobs.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    by_runtime = dict(jobs.values_list("runtime").annotate(n=Count("id")).values_list("runtime", "n"))
    finished = sum(
        n
        for status, n in by_status.items()
        if status in (Status.SUCCEEDED, Status.FAILED, Status.TIMED_OUT, Status.KILLED, Status.DEAD)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms), "
            "percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms),"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY queue_wait_ms), "
            "percentile_cont(0.95) WITHIN GROUP (ORDER BY queue_wait_ms)"
            " FROM jobs_job WHERE tenant_id = %s AND created_at >= %s AND created_at <= %s",
            [tenant.id, since, now],
        )
        run_p50, run_p95, wait_p50, wait_p95 = cursor.fetchone()
    minutes = max((now - since).total_seconds() / 60.0, 1 / 60.0)
    total = sum(by_status.values())
    return {
        "since": since,
        "until": now,
        "jobs": total,
        "by_status": by_status,
        "by_runtime": by_runtime,
        "success_rate": round(by_status.get(Status.SUCCEEDED, 0) / finished, 4) if finished else None,
        "run_ms": {"p50": _round(run_p50), "p95": _round(run_p95)},
        "queue_wait_ms": {"p50": _round(wait_p50), "p95": _round(wait_p95)},
        "jobs_per_minute": round(total / minutes, 3),
    }


def _round(value):
    return round(value, 3) if value is not None else None


def tenant_timeseries(
    *, tenant: Tenant, since: datetime, bucket_s: int, now: datetime | None = None
) -> list[dict]:
    """Per bucket of ``bucket_s`` seconds since ``since``: jobs created, p50/p95 run time of those that ran.
    Every bucket is present (empty ones with zero jobs and no percentiles)."""
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT date_bin(make_interval(secs => %s), created_at, %s) AS bucket, count(*),"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms), "
            "percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)"
            " FROM jobs_job WHERE tenant_id = %s AND created_at >= %s AND created_at <= %s GROUP BY bucket",
            [bucket_s, since, tenant.id, since, now],
        )
        rows = {bucket: (count, p50, p95) for bucket, count, p50, p95 in cursor.fetchall()}
    series = []
    count = int((now - since).total_seconds() // bucket_s) + 1
    for index in range(count):
        start = since + timedelta(seconds=index * bucket_s)
        n, p50, p95 = rows.get(start, (0, None, None))
        series.append({"start": start, "jobs": n, "run_p50_ms": p50, "run_p95_ms": p95})
    return series


# -- durable runs ------------------------------------------------------------------------------


def job_steps(*, job: Job, after: int = 0, limit: int = 100) -> list[Step]:
    """A durable run's recorded steps after position ``after``, in order."""
    return list(Step.objects.filter(job=job, seq__gt=after).order_by("seq")[:limit])


def step_children(*, job: Job, seqs: list[int]) -> dict[int, list[tuple]]:
    """The children of the run's steps ``seqs``: {seq: [(id, status, index), …] in order}."""
    found: dict[int, list[tuple]] = {seq: [] for seq in seqs}
    rows = (
        Job.objects.filter(parent_id=job.id, parent_step__in=seqs)
        .order_by("parent_step", "child_index")
        .values_list("parent_step", "id", "status", "child_index")
    )
    for seq, child_id, status, index in rows:
        found[seq].append((child_id, status, index))
    return found


def job_children(*, job: Job, limit: int = 1000) -> tuple[list[tuple], int]:
    """A run's first ``limit`` children by step and place: [(id, status, step, index), …], and how many
    it has. Only a durable run has any (no query for the others)."""
    if not job.durable:
        return [], 0
    rows = list(
        Job.objects.filter(parent_id=job.id)
        .order_by("parent_step", "child_index", "created_at")
        .values_list("id", "status", "parent_step", "child_index")[:limit]
    )
    count = len(rows) if len(rows) < limit else Job.objects.filter(parent_id=job.id).count()
    return rows, count
