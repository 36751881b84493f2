"""The reconciler's pass: keep PostgreSQL and Redis in agreement, and no job running forever.

Due retries go back in line, free slots are filled, dispatches Redis lost are redone,
and attempts whose lease expired are retried. Safe to run anywhere, any number of
times at once: every step is a compare-and-set. The reconciler process also leaves
a heartbeat that the fleet's health and its metrics read (``metrics.RECONCILER_KEY``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import F
from django.utils import timezone

from lambdasite.redis_client import get_redis

from .. import events, metrics
from ..models import Job, Status
from ..pools import queue as pool_queue
from . import waits
from .dispatch import enqueue, rq_job_id, tenant_fill_slots_safely
from .lifecycle import job_expire_lease
from .overflow import overflow_pass

HEARTBEAT_KEY = metrics.RECONCILER_KEY


def reconcile(*, now: datetime | None = None) -> dict:
    """One pass: due retries queued, durable runs' timers fired, free slots filled, lost dispatches
    redone, expired leases retried."""
    now = now or timezone.now()
    counts = {"scheduled_due": 0, "retries_due": 0, "redispatched": 0, "leases_expired": 0}
    expired = Job.objects.filter(status=Status.RUNNING, lease_expires_at__lt=now).values_list(
        "id", flat=True
    )[:1000]
    for job_id in expired:
        if job_expire_lease(job_id=job_id, now=now):
            counts["leases_expired"] += 1
    counts["scheduled_due"] = _queue_due_scheduled(now)
    counts["retries_due"] = _queue_due_retries(now)
    counts.update(waits.durable_reconcile(now=now))  # durable runs' timers: resumed runs go in line below
    counts.update(overflow_pass(now=now))  # before the fill: a job given another pool goes now
    fill_due_tenants(now=now)
    counts["redispatched"] = _redispatch_lost(now)
    return counts


def fill_due_tenants(*, now: datetime, overflow_only: bool = False) -> None:
    """Fill the slots of every tenant with a due waiting job (``overflow_only``: a job placed with
    overflow pools, read through job_overflow_due: those the overflow pass may just have re-placed)."""
    due = Job.objects.filter(status=Status.QUEUED, next_attempt_at__lte=now)
    if overflow_only:
        due = due.exclude(overflow=[])
    for tenant_id in set(due.values_list("tenant_id", flat=True).distinct()):
        tenant_fill_slots_safely(tenant_id=tenant_id, now=now)


_DUE_SCHEDULED_SQL = """
UPDATE jobs_job SET status = %(queued)s,
    next_attempt_at = CASE WHEN function_version_id IN (
        SELECT id FROM functions_functionversion WHERE status = 'building'
    ) THEN NULL ELSE next_attempt_at END
WHERE id IN (
    SELECT id FROM jobs_job WHERE status = %(scheduled)s AND next_attempt_at <= %(now)s
    ORDER BY next_attempt_at LIMIT 5000 FOR UPDATE SKIP LOCKED
)
RETURNING id, tenant_id, attempts
"""


def _queue_due_scheduled(now: datetime) -> int:
    """Delayed runs whose time has come join their tenant's line (an invocation of a version still
    building is held, as it would have been at submission)."""
    with connection.cursor() as cursor:
        cursor.execute(
            _DUE_SCHEDULED_SQL, {"queued": Status.QUEUED, "scheduled": Status.SCHEDULED, "now": now}
        )
        due = cursor.fetchall()
    for job_id, tenant_id, attempts in due:
        events.status_changed(job_id=job_id, tenant_id=tenant_id, status=Status.QUEUED, attempt=attempts)
    return len(due)


def _queue_due_retries(now: datetime) -> int:
    due = list(
        Job.objects.filter(status=Status.RETRYING, next_attempt_at__lte=now).values_list(
            "id", "tenant_id", "attempts"
        )[:5000]
    )
    if not due:
        return 0
    queued = Job.objects.filter(pk__in=[row[0] for row in due], status=Status.RETRYING).update(
        status=Status.QUEUED
    )
    for job_id, tenant_id, attempts in due:
        events.status_changed(job_id=job_id, tenant_id=tenant_id, status=Status.QUEUED, attempt=attempts)
    return queued


def _redispatch_lost(now: datetime) -> int:
    stale = now - timedelta(seconds=settings.REDISPATCH_AFTER_S)
    lost = list(
        Job.objects.filter(status=Status.DISPATCHED, dispatched_at__lte=stale).only(
            "id", "attempts", "timeout_ms", "memory_mb", "pool", "home_pool"
        )[:5000]
    )
    redispatched = 0
    waiting = _waiting_in_redis(get_redis(), {job.pool for job in lost}) if lost else set()
    for job in lost:
        # still in its pool's RQ queue: waiting behind others. Anything else (gone after FLUSHALL or
        # a restart, or popped by a worker that died before its claim) means Redis lost it; a
        # worker that popped it and claims it late only meets the claim's compare-and-set
        if rq_job_id(job.id, job.attempts + 1).encode() in waiting:
            continue
        if job.pool != job.home_pool:  # it had overflowed: it waits at home again, and may overflow again
            Job.objects.filter(pk=job.id, status=Status.DISPATCHED).update(
                status=Status.QUEUED, pool=F("home_pool"), placed_by=""
            )
        else:
            enqueue(job, at_front=True)
            Job.objects.filter(pk=job.id, status=Status.DISPATCHED).update(dispatched_at=now)
        redispatched += 1
    return redispatched


def _waiting_in_redis(conn, pools: set[str]) -> set[bytes]:
    """The RQ job ids waiting in these pools' queues, in one round trip. Dispatch is slot-gated, so
    the queues hold at most the tenants' concurrency: short. (RQ's job hash cannot tell: the lean
    worker does not mark what it popped, so a worker killed between its pop and its claim leaves the
    hash saying "queued" while the id is gone from the list.)"""
    with conn.pipeline(transaction=False) as pipe:
        for pool in sorted(pools):
            pipe.lrange(pool_queue(pool).key, 0, -1)
        return {rq_id for ids in pipe.execute() for rq_id in ids}


def heartbeat(interval_s: float) -> None:
    """The reconciler is alive (the fleet's health reads it); expires after ten missed intervals."""
    metrics.reconciler_beat(interval_s)
