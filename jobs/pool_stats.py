"""Figures per worker pool (``jobs.pools``): live workers, jobs waiting and in flight, recent queue
waits. One tenant's view for ``GET /api/v1/pools``, the platform's for the operator page and
Prometheus; a tenant's figures count its own jobs only, never another tenant's load.

"Waiting" is a job in PostgreSQL not yet handed to a worker (queued, or retrying after a backoff);
"in flight" is dispatched (in the pool's RQ queue) or running. Recent waits are the queue waits of
the jobs whose first attempt started in the pool in the last ``RECENT_S`` seconds: a tenant's from
its own jobs (``Job.queue_wait_ms``, through its index), the platform's from the per-minute
histograms each claim records in Redis (``jobs.pool_waits``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from accounts.models import Tenant

from . import pool_waits, pools
from .models import Status

RECENT_S = 300  # the window of the wait percentiles: the last five minutes
# only jobs created this long before the window are read for waits: the bound lets PostgreSQL read
# a tenant's recent jobs through its (tenant, created_at) index instead of every job it ever ran; a
# job that waited over a day before its first start is left out of the wait figures
LOOKBACK_S = 86400
WAITING = [str(Status.QUEUED), str(Status.RETRYING)]
IN_FLIGHT = [str(Status.DISPATCHED), str(Status.RUNNING)]

_COUNTS_SQL = """
SELECT pool, count(*) FILTER (WHERE status = ANY(%(waiting)s)),
    count(*) FILTER (WHERE status = ANY(%(in_flight)s))
FROM jobs_job WHERE status = ANY(%(statuses)s) {tenant} GROUP BY pool
"""
_WAITS_SQL = """
SELECT pool, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY queue_wait_ms),
    percentile_cont(0.95) WITHIN GROUP (ORDER BY queue_wait_ms)
FROM jobs_job
WHERE tenant_id = %(tenant)s AND created_at >= %(horizon)s AND started_at >= %(since)s
AND queue_wait_ms IS NOT NULL
GROUP BY pool
"""


def tenant_pools(*, tenant: Tenant, now: datetime | None = None) -> list[dict]:
    """The pools this tenant may use that have a live worker, and any pool holding its jobs (waiting,
    in flight or started in the window; ``allowed`` false when the quota no longer lets it place
    jobs there), by name: live workers counted, everything else this tenant's own."""
    live = pools.live_workers()
    counts = _counts(tenant_id=tenant.id)
    waits = _waits(tenant_id=tenant.id, now=now)
    allowed = tenant.quota.allowed_pools
    names = {name for name in live if allowed is None or name in allowed} | set(counts) | set(waits)
    return [
        {
            "name": name,
            "workers": len(live.get(name, ())),
            "allowed": allowed is None or name in allowed,
            "queued": counts.get(name, (0, 0))[0],
            "in_flight": counts.get(name, (0, 0))[1],
            "wait_ms": _percentiles(waits.get(name)),
        }
        for name in sorted(names)
    ]


def platform_pools(*, now: datetime | None = None) -> list[dict]:
    """Every pool that is live, holds jobs or ran one in the window, with ``default`` always: its live
    workers by name, its RQ queue's length, every tenant's jobs waiting and in flight there, and the
    recent waits (with how many jobs they are of). For operators and Prometheus only."""
    live = pools.live_workers()
    counts = _counts(tenant_id=None)
    # every tenant's waits from the pools' minutes in Redis (jobs.pool_waits): by SQL they
    # would read every job started in the window, with no index to narrow them, on every scrape
    waits = pool_waits.pool_waits(now=now.timestamp() if now else None)
    names = {pools.DEFAULT_POOL} | set(live) | set(counts) | set(waits)
    return [
        {
            "name": name,
            "workers": live.get(name, []),
            "queue_depth": pools.queue(name).count,
            "queued": counts.get(name, (0, 0))[0],
            "in_flight": counts.get(name, (0, 0))[1],
            "started": waits[name][0] if name in waits else 0,
            "wait_ms": _percentiles(waits.get(name)),
        }
        for name in sorted(names)
    ]


def _counts(*, tenant_id: int | None) -> dict[str, tuple[int, int]]:
    """Pool -> (waiting, in flight), read through the status indexes."""
    params = {"waiting": WAITING, "in_flight": IN_FLIGHT, "statuses": WAITING + IN_FLIGHT}
    params["tenant"] = tenant_id
    sql = _COUNTS_SQL.format(tenant="AND tenant_id = %(tenant)s" if tenant_id is not None else "")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {pool: (waiting, in_flight) for pool, waiting, in_flight in cursor.fetchall()}


def _waits(*, tenant_id: int, now: datetime | None) -> dict[str, tuple[int, float, float]]:
    """Pool -> (the tenant's jobs started in the window, p50 and p95 of their queue waits in ms)."""
    now = now or timezone.now()
    since = now - timedelta(seconds=RECENT_S)
    params = {"since": since, "horizon": since - timedelta(seconds=LOOKBACK_S), "tenant": tenant_id}
    with connection.cursor() as cursor:
        cursor.execute(_WAITS_SQL, params)
        return {pool: (n, p50, p95) for pool, n, p50, p95 in cursor.fetchall()}


def _percentiles(found: tuple[int, float, float] | None) -> dict[str, float | None]:
    if found is None:
        return {"p50": None, "p95": None}
    return {"p50": round(found[1], 3), "p95": round(found[2], 3)}
