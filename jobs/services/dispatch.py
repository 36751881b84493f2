"""Dispatch: a tenant's waiting jobs go to Redis while it has free slots (fair across tenants)."""

from __future__ import annotations

import functools
import logging
import zlib

from django.db import connection, transaction
from django.utils import timezone
from rq.utils import now as rq_now
from rq.utils import utcformat

from lambdasite.caching import after_commit, best_effort
from lambdasite.redis_client import get_queue

from .. import events, pools
from ..models import Job, Status
from ..pools import queue as pool_queue
from . import flow

log = logging.getLogger("lambdasite.jobs")

# Slot filling runs on every submit and every finished attempt: three plain statements
# instead of the ORM's five (measured: the ORM's query compilation dominated it).
# Only jobs placed in a pool with a live worker are dispatched (jobs.pools; null: every pool): a job
# for a pool without one waits in PostgreSQL, not in a queue no worker reads.
LIVE_POOL = "(%(live)s::text[] IS NULL OR pool = ANY(%(live)s::text[]))"
_FILL_PRECHECK_SQL = (
    "SELECT 1 FROM jobs_job WHERE tenant_id = %(tenant)s AND status = %(queued)s"
    f" AND next_attempt_at <= %(now)s AND {LIVE_POOL} LIMIT 1"
)
# The lock also says whether the tenant has a function with a flow-control limit (jobs.services.flow):
# a probe of the partial index function_flow_limited, empty for a tenant without one, so the fast path
# pays no extra round trip and the answer is never stale (a cached one could let a new ceiling be
# overrun until the cache noticed).
_FILL_LOCK_SQL = (
    "SELECT t.slug, t.is_suspended, q.max_concurrency, EXISTS (SELECT 1 FROM functions_function f"
    " WHERE f.tenant_id = t.id AND (f.max_concurrency IS NOT NULL OR f.reserved_concurrency > 0"
    " OR NOT (f.concurrency_key = '')))"
    " FROM accounts_tenant t"
    " JOIN accounts_quota q ON q.tenant_id = t.id WHERE t.id = %(tenant)s FOR NO KEY UPDATE OF t"
)
# A tenant without limits: its waiting jobs by priority, due time and age (index job_waiting_order,
# read from its front and stopped at the free slots). The ids as an ARRAY, not IN (subquery): the planner
# cannot know the LIMIT, guesses thousands of rows and, with a large backlog, hash-joins them against a
# sequential scan of the whole table (measured: 370 ms a fill over 600k waiting jobs; with ARRAY, the
# primary key's index: under a millisecond).
_FILL_SQL = f"""
UPDATE jobs_job SET status = %(dispatched)s, dispatched_at = %(now)s, {flow.PLACED}
WHERE id = ANY(ARRAY(
    SELECT id FROM jobs_job
    WHERE tenant_id = %(tenant)s AND status = %(queued)s AND next_attempt_at <= %(now)s AND {LIVE_POOL}
    ORDER BY priority DESC, next_attempt_at, created_at
    LIMIT GREATEST(0, %(max)s - (
        SELECT count(*) FROM jobs_job WHERE tenant_id = %(tenant)s AND status IN (%(dispatched)s, %(running)s)
    ))
)) AND status = %(queued)s
RETURNING {flow.RETURNED}
"""


def rq_job_id(job_id, attempt: int) -> str:
    return f"{job_id}-{attempt}"


TASK = "jobs.tasks.run_job"


def enqueue(job: Job, *, at_front: bool = False) -> None:
    """Put the job's next attempt on its pool's RQ queue (its id, and its memory limit for the worker's
    admission: PostgreSQL holds the rest).

    One MULTI/EXEC round trip writes what RQ's ``Queue.enqueue`` writes in two (the queue's
    registration, the job's hash, the id in the list), and the hash comes from a template made once
    by RQ's own Job with only the per-job fields replaced: building an RQ Job per dispatch was a
    measured share of a submit's CPU. ``jobs/tests/test_dispatch.py`` checks that RQ reads the hash
    back exactly as it reads one it wrote itself."""
    queue = pool_queue(job.pool)
    rq_id = rq_job_id(job.id, job.attempts + 1)
    fields = _rq_fields(queue, str(job.id), timeout=job.timeout_ms // 1000 + 120, memory_mb=job.memory_mb)
    with queue.connection.pipeline() as pipe:  # a transaction: the hash exists before its id is listed
        pipe.sadd(queue.redis_queues_keys, queue.key)
        pipe.hset(queue.job_class.key_for(rq_id), mapping=fields)
        if at_front:
            pipe.lpush(queue.key, rq_id)
        else:
            pipe.rpush(queue.key, rq_id)
        pipe.execute()


_PER_JOB = ("created_at", "enqueued_at", "data", "description", "timeout", "origin")


@functools.cache
def _rq_static() -> dict:
    """The fields of RQ's job hash that are the same for every job, from a job RQ made once."""
    probe = get_queue().create_job(
        TASK, args=("template",), timeout=1, result_ttl=0, failure_ttl=3600, description="template"
    )
    fields = probe.to_dict()
    fields["status"] = "queued"
    return {name: value for name, value in fields.items() if name not in _PER_JOB}


def _rq_fields(queue, job_id: str, *, timeout: int, memory_mb: int | None = None) -> dict:
    """The RQ job hash of ``run_job(job_id, memory_mb)``, as ``Queue.enqueue(..., result_ttl=0,
    failure_ttl=3600)`` writes it. The memory limit rides along so that a worker admits the job by
    its memory before claiming it (``jobs.worker``); a hash without it (``run_job(job_id)``, made
    before) still runs, counted as a default job."""
    stamp = utcformat(rq_now())
    args = (job_id,) if memory_mb is None else (job_id, int(memory_mb))
    data = zlib.compress(queue.serializer.dumps((TASK, None, args, {})))
    return {
        **_rq_static(),
        "created_at": stamp,
        "enqueued_at": stamp,
        "data": data,
        "description": f"lambdasite job {job_id}",
        "timeout": timeout,
        "origin": queue.name,  # its pool's queue (jobs.pools), as RQ records it
    }


def tenant_fill_slots(*, tenant_id, now=None) -> int:
    """Dispatch the tenant's waiting jobs (highest priority, then oldest) while fewer than max_concurrency
    are dispatched or running, within its functions' limits (jobs.services.flow).

    Each tenant holds at most its concurrency in Redis, so one tenant's flood never
    sits in front of another tenant's job: RQ's FIFO sees the tenants interleaved.
    A suspended tenant's jobs stay waiting. Jobs that already ran (lost workers,
    retries) go to the front of the queue. ``now`` is the reconciler's clock (tests move it).
    """
    params = _fill_params(tenant_id, now or timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(_FILL_PRECHECK_SQL, params)
        if cursor.fetchone() is None:
            return 0  # nothing waiting: no lock taken (a job queued right after this check dispatches itself)
    with transaction.atomic(), connection.cursor() as cursor:
        slug, batch = _fill_locked(cursor, params)
        for job in batch:
            enqueue(job, at_front=job.attempts > 0)
    _announce(slug, tenant_id, batch)
    return len(batch)


def _fill_params(tenant_id, now) -> dict:
    return {
        "tenant": tenant_id,
        "now": now,
        "queued": Status.QUEUED,
        "dispatched": Status.DISPATCHED,
        "running": Status.RUNNING,
        "live": pools.dispatchable(),  # (cached for a second: no round trip per submit)
    }


def _fill_locked(cursor, params: dict) -> tuple[str, list[Job]]:
    """Take the tenant's slot lock and mark its due jobs dispatched in dispatch order, up to its free
    slots (and, on the general path, its functions' limits)."""
    # NO KEY UPDATE: serializes slot filling per tenant without blocking the FOR KEY SHARE
    # that every job insert's foreign-key check takes on the tenant row (no deadlocks)
    cursor.execute(_FILL_LOCK_SQL, params)
    slug, suspended, max_concurrency, limited = cursor.fetchone()
    if suspended:
        return slug, []
    if limited:  # per-function and per-key limits: the general path, in the order it chose
        rows = flow.fill_limited(cursor, params, cap=max_concurrency)
    else:
        # a new statement, so its snapshot (and the in-flight count) is taken after the lock
        cursor.execute(_FILL_SQL, {**params, "max": max_concurrency})
        rows = sorted(cursor.fetchall(), key=lambda row: (-row[4], row[5], row[6]))
    return slug, [
        Job(id=job_id, attempts=attempts, timeout_ms=timeout_ms, memory_mb=memory_mb, pool=pool)
        for job_id, attempts, timeout_ms, memory_mb, _, _, _, pool in rows
    ]


def _announce(slug: str, tenant_id, batch: list[Job]) -> None:
    for job in batch:
        log.info(
            "job dispatched",
            extra={"event": "dispatched", "job_id": str(job.id), "tenant": slug, "attempt": job.attempts + 1},
        )
        events.status_changed(
            job_id=job.id, tenant_id=tenant_id, status=Status.DISPATCHED, attempt=job.attempts
        )


def fill_in_transaction(tenant_id) -> None:
    """Slot filling inside the submit's own transaction, right after its insert: one commit instead
    of two and no pre-check (a job is known to be waiting). The ids are enqueued once the rows are
    committed (a worker never pops an id whose row it cannot see); if Redis fails then, the jobs stay
    dispatched without an id in Redis and the reconciler enqueues them again (REDISPATCH_AFTER_S)."""
    with connection.cursor() as cursor:
        slug, batch = _fill_locked(cursor, _fill_params(tenant_id, timezone.now()))
    if batch:
        # the jobs are committed: if Redis fails, they stay dispatched and the reconciler enqueues them
        after_commit(f"enqueueing tenant {tenant_id}'s jobs", _enqueue_batch, slug, tenant_id, batch)


def _enqueue_batch(slug: str, tenant_id, batch: list[Job]) -> None:
    for job in batch:
        enqueue(job, at_front=job.attempts > 0)
    _announce(slug, tenant_id, batch)


def tenant_fill_slots_safely(*, tenant_id, now=None) -> None:
    """After commit; a failure is logged, never raised: the jobs are committed and the reconciler retries."""
    # Redis down must not turn an accepted job into a 500: the reconciler dispatches the waiting jobs
    best_effort(f"dispatching tenant {tenant_id}'s jobs", tenant_fill_slots, tenant_id=tenant_id, now=now)


def fill_after_commit(tenant_id) -> None:
    """A slot may be free or a job waiting: fill the tenant's slots once this transaction commits."""
    transaction.on_commit(lambda: tenant_fill_slots_safely(tenant_id=tenant_id))
