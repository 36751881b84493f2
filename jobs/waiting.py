"""Why a job waits, said in a few words and computed when it is read (nothing is written per job
while it waits): shown in the job's API detail (``waiting_reason``) and on its page.

- scheduled: ``scheduled for <time>``; retrying: ``retry backoff until <time>``;
- queued: ``version building``, ``tenant suspended``, ``not due until <time>``, or what holds its
  slot (``jobs.slots``): ``tenant concurrency 4/4``, ``function max_concurrency 5/5``,
  ``key store_id=42: 1/1 in use``, ``function reserved …``; with none of these, it is
  ``waiting for dispatch`` (a slot is free: the next fill takes it);
- queued or dispatched in a pool with no live worker (jobs.pools): ``no live worker in pool eu``;
- dispatched: ``no free worker`` (in Redis, not yet taken by a worker);
- anything else (running, waiting on a durable step, finished): None."""

from __future__ import annotations

from datetime import UTC

from django.db import connection
from django.utils import timezone

from . import pools
from .models import Job, Status
from .slots import Slots


def _when(value) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def waiting_reason(job: Job, *, now=None) -> str | None:
    if job.status == Status.SCHEDULED:
        return f"scheduled for {_when(job.next_attempt_at)}" if job.next_attempt_at else "scheduled"
    if job.status == Status.RETRYING:
        return f"retry backoff until {_when(job.next_attempt_at)}" if job.next_attempt_at else "retry backoff"
    if job.status == Status.DISPATCHED:
        return _no_live_worker(job) or "no free worker"
    if job.status != Status.QUEUED:
        return None
    if job.tenant.is_suspended:
        return "tenant suspended"
    if job.next_attempt_at is None:
        return "version building"
    now = now or timezone.now()
    if job.next_attempt_at > now:
        return f"not due until {_when(job.next_attempt_at)}"
    return _no_live_worker(job) or _slot_reason(job)


def _no_live_worker(job: Job) -> str | None:
    live = pools.dispatchable()
    if live is None or job.pool in live:
        return None
    return f"no live worker in pool {job.pool}"


def _slot_reason(job: Job) -> str:
    tenant = job.tenant
    statuses = {"dispatched": Status.DISPATCHED, "running": Status.RUNNING}
    with connection.cursor() as cursor:
        slots = Slots.read(
            cursor, tenant_id=job.tenant_id, cap=tenant.quota.max_concurrency, statuses=statuses
        )
    return slots.why_waiting(job.function_id, job.concurrency_key) or "waiting for dispatch"
