"""Billing in one place: what an attempt costs, the billing period, a tenant's use of it, and the
Redis counter admission reads instead of summing every attempt on every submission.

An attempt is billed for the time its user code ran, rounded up to the millisecond
(at least 1 ms), times the memory limit in GB (1 GB = 1024 MB): GB-seconds. Cost is
GB-s x PRICE_PER_GB_SECOND + requests x PRICE_PER_MILLION_REQUESTS / 10^6, one
request per attempt, + egress bytes (sent and received through the door) / 1024^3 x
PRICE_PER_GB_EGRESS."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from accounts.models import UsageCharge
from lambdasite.redis_client import get_redis

from .models import Attempt

USAGE_KEY = "lambdasite:usage:gbs:{tenant}:{period}"
USAGE_REFRESH_S = 300
_ADD_IF_EXISTS = (
    "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBYFLOAT', "
    "KEYS[1], ARGV[1]) end return false"
)


def billed_ms(duration_ms: float | None) -> int:
    """Billed duration: rounded up to the next millisecond (at least 1 ms for an attempt that ran)."""
    return max(1, math.ceil(duration_ms)) if duration_ms else 0


def gb_seconds(memory_mb: int, billed: int) -> float:
    """Memory limit in GB (1024 MB) times billed seconds."""
    return (memory_mb / 1024.0) * (billed / 1000.0)


GIB = 1 << 30


def egress_cost(egress_bytes: int) -> float:
    return egress_bytes / GIB * settings.PRICE_PER_GB_EGRESS


def cost(*, gb_seconds: float, requests: int, egress_bytes: int = 0) -> float:
    return (
        gb_seconds * settings.PRICE_PER_GB_SECOND
        + requests / 1_000_000 * settings.PRICE_PER_MILLION_REQUESTS
        + egress_cost(egress_bytes)
    )


def job_cost(job) -> float:
    """The estimated cost of every attempt of a job so far, as the API and the pages show it."""
    return round(cost(gb_seconds=job.gb_seconds, requests=job.attempts, egress_bytes=job.egress_bytes), 10)


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


def usage_period(now: datetime | None = None) -> str:
    return f"{billing_period(now)[0]:%Y%m}"


def gb_seconds_used(*, tenant, since: datetime) -> float:
    """Attempts' GB-s plus what the tenant was charged outside jobs (builds) since ``since``."""
    attempts = Attempt.objects.filter(job__tenant=tenant, started_at__gte=since).aggregate(
        total=Sum("gb_seconds")
    )["total"]
    charges = UsageCharge.objects.filter(tenant=tenant, created_at__gte=since).aggregate(
        total=Sum("gb_seconds")
    )["total"]
    return (attempts or 0.0) + (charges or 0.0)


def egress_bytes_used(*, tenant_id, since: datetime) -> int:
    """The bytes the tenant's attempts started since ``since`` sent and received through egress (the
    ``job_tenant_egress`` index: only the tenant's jobs that used egress are read)."""
    total = Attempt.objects.filter(
        job__tenant_id=tenant_id, job__egress_bytes__gt=0, started_at__gte=since, egress_bytes__gt=0
    ).aggregate(total=Sum("egress_bytes"))["total"]
    return total or 0


def charge(*, tenant_id, kind: str, gb_seconds: float, reference: str = "") -> None:
    """Bill compute used outside an attempt (a build) to the tenant: a row, and the cached counter."""
    if gb_seconds <= 0:
        return
    UsageCharge.objects.create(tenant_id=tenant_id, kind=kind, gb_seconds=gb_seconds, reference=reference)
    try:
        pipe = get_redis().pipeline(transaction=False)
        add_usage(pipe, tenant_id=tenant_id, gb_seconds=gb_seconds)
        pipe.execute()
    except Exception:  # noqa: BLE001 - the counter is re-seeded from PostgreSQL every USAGE_REFRESH_S
        pass


def usage_key(tenant_id) -> str:
    """The Redis key of the tenant's cached compute use this period."""
    return USAGE_KEY.format(tenant=tenant_id, period=usage_period())


def gb_seconds_used_fast(*, tenant) -> float:
    """This period's compute use for admission, without summing every attempt on every submit.

    Redis holds the sum, seeded from PostgreSQL when missing and re-seeded every
    USAGE_REFRESH_S (so drift from a lost increment is bounded); each finished attempt
    adds to it while it exists. With Redis unavailable, PostgreSQL answers."""
    start, _ = billing_period()
    key = usage_key(tenant.id)
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
    except Exception:  # noqa: BLE001 - any Redis failure: the counter stays unseeded, the next call seeds it
        pass
    return used


def add_usage(pipe, *, tenant_id, gb_seconds: float) -> None:
    """Queue on ``pipe``: add an attempt's GB-s to the tenant's cached use (only while it is cached)."""
    if gb_seconds:
        pipe.eval(_ADD_IF_EXISTS, 1, USAGE_KEY.format(tenant=tenant_id, period=usage_period()), gb_seconds)


def _pool_report(tenant: str, ms: float, memory_mb: int, kind: str, reference: str) -> None:
    """Bill a cell pool's report (from its maintenance thread): ``ms`` of a cell's time as GB-s."""
    from django.db import close_old_connections

    try:
        charge(
            tenant_id=int(tenant),
            kind=kind,
            gb_seconds=gb_seconds(memory_mb, billed_ms(ms)),
            reference=reference,
        )
    finally:
        close_old_connections()


def charge_idle_cpu(tenant: str, cpu_ms: float, memory_mb: int) -> None:
    """The pool's ``on_idle_cpu``: tenant code ran in an idle cell between jobs (the cell is retired)."""
    _pool_report(tenant, cpu_ms, memory_mb, UsageCharge.Kind.IDLE, "CPU used between jobs")


def charge_warm(tenant: str, seconds: float, memory_mb: int) -> None:
    """The pool's ``on_warm``: a cell started and initialised for a function outside a job (a warm-up,
    a provisioned cell), the tenant's like an attempt's time."""
    _pool_report(tenant, seconds * 1000, memory_mb, UsageCharge.Kind.WARM, "a warm cell started")
