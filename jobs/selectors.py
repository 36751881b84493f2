"""Reads of jobs, always scoped to one tenant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Count, QuerySet, Sum
from django.utils import timezone

from accounts.models import Tenant
from lambdasite.errors import NotFound, ValidationFailed

from .models import Attempt, Job, LogLine, Status


def job_list(
    *, tenant: Tenant, statuses: list[str] | None = None, runtime: str | None = None
) -> QuerySet[Job]:
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


# -- usage and statistics --------------------------------------------------------


def billing_period(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The current calendar month in UTC: (start, start of the next month)."""
    now = now or timezone.now()
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    nxt = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, nxt


def gb_seconds_used(*, tenant: Tenant, since: datetime) -> float:
    return (
        Attempt.objects.filter(job__tenant=tenant, started_at__gte=since).aggregate(total=Sum("gb_seconds"))[
            "total"
        ]
        or 0.0
    )


def usage_period(now: datetime | None = None) -> str:
    return f"{billing_period(now)[0]:%Y%m}"


USAGE_REFRESH_S = 300


def gb_seconds_used_fast(*, tenant: Tenant) -> float:
    """This period's compute use for admission, without summing every attempt on every submit.

    Redis holds the sum, seeded from PostgreSQL when missing and re-seeded every
    USAGE_REFRESH_S (so drift from a lost increment is bounded); each finished attempt
    adds to it while it exists. With Redis unavailable, PostgreSQL answers."""
    from jobs.metrics import USAGE_KEY
    from lambdasite.redis_client import get_redis

    start, _ = billing_period()
    key = USAGE_KEY.format(tenant=tenant.id, period=usage_period())
    try:
        conn = get_redis()
        cached = conn.get(key)
        if cached is not None:
            return float(cached)
    except Exception:  # noqa: BLE001 - the database is the fallback
        return gb_seconds_used(tenant=tenant, since=start)
    used = gb_seconds_used(tenant=tenant, since=start)
    try:
        conn.set(key, repr(used), ex=USAGE_REFRESH_S, nx=True)
    except Exception:  # noqa: BLE001
        pass
    return used


def cost(*, gb_seconds: float, requests: int) -> float:
    return (
        gb_seconds * settings.PRICE_PER_GB_SECOND + requests / 1_000_000 * settings.PRICE_PER_MILLION_REQUESTS
    )


def tenant_usage(*, tenant: Tenant, now: datetime | None = None) -> dict:
    """This period's use of every limit, and what it cost."""
    start, resets_at = billing_period(now)
    quota = tenant.quota
    jobs = Job.objects.filter(tenant=tenant, created_at__gte=start)
    by_status = dict(jobs.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    attempts = Attempt.objects.filter(job__tenant=tenant, started_at__gte=start)
    totals = attempts.aggregate(gb=Sum("gb_seconds"), billed=Sum("billed_ms"), n=Count("id"))
    used = totals["gb"] or 0.0
    requests = totals["n"] or 0
    return {
        "period": {"start": start, "end": resets_at},
        "jobs": {"total": sum(by_status.values()), "by_status": by_status},
        "requests": requests,
        "billed_ms": totals["billed"] or 0,
        "gb_seconds": {
            "used": round(used, 6),
            "limit": quota.monthly_gb_seconds,
            "left": round(max(0.0, quota.monthly_gb_seconds - used), 6),
        },
        "cost": {
            "currency": settings.PRICE_CURRENCY,
            "compute": round(used * settings.PRICE_PER_GB_SECOND, 12),
            "requests": round(requests / 1_000_000 * settings.PRICE_PER_MILLION_REQUESTS, 12),
            "total": round(cost(gb_seconds=used, requests=requests), 12),
            "price_per_gb_second": settings.PRICE_PER_GB_SECOND,
            "price_per_million_requests": settings.PRICE_PER_MILLION_REQUESTS,
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
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms), percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms),"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY queue_wait_ms), percentile_cont(0.95) WITHIN GROUP (ORDER BY queue_wait_ms)"
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
    """Per bucket of ``bucket_s`` seconds since ``since``: jobs created, and p50/p95 run time of those that ran.
    Every bucket is present (empty ones with zero jobs and no percentiles)."""
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT date_bin(make_interval(secs => %s), created_at, %s) AS bucket, count(*),"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms), percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)"
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
