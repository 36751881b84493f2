"""The overflow pass (the reconciler's, every tick): a job placed with overflow pools that has waited
its ``after_wait_s`` goes to the first of them with room (``jobs.placement``, the "AUTO" mode).

- a dispatched job still in its home pool's RQ list that long after its dispatch (the home pool is
  saturated) is taken out of that list with LREM, and moved only if that removed it: a worker that
  popped it meanwhile runs it where it is;
- a queued job whose pool has no live worker, that long after it became due, is placed in its home
  pool again if that came back, else in the first overflow pool with room; the fill dispatches it.

Room: the pool is live and its queue holds fewer jobs than its live workers' free job slots (from the
stats each job worker publishes with its heartbeat, ``metrics.publish_pool``). A worker serving
several pools offers its free slots to each. Never a pool the job does not list."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime

from django.db import connection

from lambdasite.redis_client import get_redis

from .. import metrics, pools
from ..models import Job, Status
from ..placement import placed_by_overflow
from .dispatch import enqueue, rq_job_id

log = logging.getLogger("lambdasite.jobs")

BATCH = 500  # jobs looked at per pass and kind: the next tick takes the rest

_SATURATED_SQL = """
SELECT id, attempts, timeout_ms, memory_mb, home_pool, overflow, dispatched_at FROM jobs_job
WHERE status = %(dispatched)s AND NOT overflow = '{}' AND pool = home_pool
  AND dispatched_at <= %(now)s - overflow_after_s * interval '1 second'
ORDER BY dispatched_at LIMIT %(batch)s
"""
_MOVE_DISPATCHED_SQL = """
UPDATE jobs_job SET pool = %(pool)s, placed_by = %(placed_by)s, dispatched_at = %(now)s
WHERE id = %(id)s AND status = %(dispatched)s AND attempts = %(attempts)s AND pool = home_pool
"""
# job_overflow_due: only jobs placed with overflow pools are in it (usually none)
_STRANDED_SQL = """
SELECT id, tenant_id, pool, home_pool, overflow, next_attempt_at FROM jobs_job
WHERE status = %(queued)s AND NOT overflow = '{}' AND NOT pool = ANY(%(live)s::text[])
  AND next_attempt_at <= %(now)s AND next_attempt_at <= %(now)s - overflow_after_s * interval '1 second'
ORDER BY next_attempt_at LIMIT %(batch)s
"""
_MOVE_QUEUED_SQL = """
UPDATE jobs_job SET pool = %(pool)s, placed_by = %(placed_by)s
WHERE id = %(id)s AND status = %(queued)s AND pool = %(was)s
"""


# the next moment a job becomes due for overflow, after ``now`` (the reconciler wakes for it between
# its ticks, so a job overflows at its after_wait_s, not up to a tick later); dispatched ones are few
# (the tenants' caps), waiting ones are read through job_overflow_due
_NEXT_DUE_SQL = """
SELECT LEAST(
    (SELECT min(dispatched_at + overflow_after_s * interval '1 second') FROM jobs_job
     WHERE status = %(dispatched)s AND NOT overflow = '{}' AND pool = home_pool
       AND dispatched_at + overflow_after_s * interval '1 second' > %(now)s),
    (SELECT min(next_attempt_at + overflow_after_s * interval '1 second') FROM jobs_job
     WHERE status = %(queued)s AND NOT overflow = '{}' AND NOT pool = ANY(%(live)s::text[])
       AND next_attempt_at + overflow_after_s * interval '1 second' > %(now)s)
)
"""


def next_due(*, now: datetime, live: set[str] | None = None) -> datetime | None:
    """When the next job placed with overflow pools will have waited its after_wait_s (after ``now``),
    or None: none will (``live``: the pools with a live worker, read now if not given)."""
    if live is None:
        live = set(pools.live_workers())
    params = {"dispatched": Status.DISPATCHED, "queued": Status.QUEUED, "now": now, "live": sorted(live)}
    with connection.cursor() as cursor:
        cursor.execute(_NEXT_DUE_SQL, params)
        return cursor.fetchone()[0]


def overflow_pass(*, now: datetime) -> dict:
    """One pass at ``now`` (the reconciler's clock). -> {"overflowed": dispatched jobs moved,
    "replaced": waiting jobs given another pool}"""
    conn = get_redis()
    live = pools.live_workers(conn=conn)  # read now, not the fill's cached view
    room = pool_room(conn, live)
    return {
        "overflowed": _move_saturated(now, room, conn),
        "replaced": _move_stranded(now, room, set(live)),
    }


def pool_room(conn, live: dict[str, list[str]], *, now: float | None = None) -> dict[str, int]:
    """Live pool -> its live workers' free job slots less the jobs already in its queue (> 0: room)."""
    if not live:
        return {}
    now = now if now is not None else time.time()
    free = {}
    for worker, raw in conn.hgetall(metrics.POOL_KEY).items():
        stats = json.loads(raw)
        if stats.get("expires", 0) >= now:
            inflight = int(stats.get("inflight", 0))
            free[worker.decode()] = max(0, int(stats.get("max_inflight", inflight + 1)) - inflight)
    with conn.pipeline(transaction=False) as pipe:
        for pool in live:
            pipe.llen(pools.queue(pool).key)
        depths = pipe.execute()
    return {
        pool: sum(free.get(worker, 0) for worker in workers) - depth
        for (pool, workers), depth in zip(live.items(), depths, strict=True)
    }


def _first_with_room(names, room: dict[str, int], *, but: str = "") -> str | None:
    return next((name for name in names if name != but and room.get(name, 0) > 0), None)


def _move_saturated(now: datetime, room: dict[str, int], conn) -> int:
    with connection.cursor() as cursor:
        cursor.execute(_SATURATED_SQL, {"dispatched": Status.DISPATCHED, "now": now, "batch": BATCH})
        rows = cursor.fetchall()
    moved = 0
    for job_id, attempts, timeout_ms, memory_mb, home, overflow, dispatched_at in rows:
        target = _first_with_room(overflow, room)
        if target is None:
            continue
        # only if this took it out of the home queue: else a worker popped it and runs it there
        if not conn.lrem(pools.queue(home).key, 1, rq_job_id(job_id, attempts + 1)):
            continue
        placed_by = placed_by_overflow((now - dispatched_at).total_seconds())
        with connection.cursor() as cursor:
            cursor.execute(
                _MOVE_DISPATCHED_SQL,
                {
                    "pool": target,
                    "placed_by": placed_by,
                    "id": job_id,
                    "dispatched": Status.DISPATCHED,
                    "attempts": attempts,
                    "now": now,  # dispatched anew: the lost-dispatch check counts from here
                },
            )
            if cursor.rowcount != 1:
                continue  # cancelled meanwhile: nothing to run
        job = Job(id=job_id, attempts=attempts, timeout_ms=timeout_ms, memory_mb=memory_mb, pool=target)
        enqueue(job, at_front=True)  # it has waited its turn already
        room[target] -= 1
        moved += 1
        log.info(
            "job overflowed",
            extra={"event": "overflowed", "job_id": str(job_id), "pool": target, "placed_by": placed_by},
        )
    return moved


def _move_stranded(now: datetime, room: dict[str, int], live: set[str]) -> int:
    params = {"queued": Status.QUEUED, "now": now, "batch": BATCH, "live": sorted(live)}
    with connection.cursor() as cursor:
        cursor.execute(_STRANDED_SQL, params)
        rows = cursor.fetchall()
    moved = 0
    for job_id, _tenant_id, pool, home, overflow, due_at in rows:
        if home in live:  # its home pool came back: home again, and it may overflow again
            target, placed_by = home, ""
        else:
            target = _first_with_room(overflow, room, but=pool)
            placed_by = placed_by_overflow((now - due_at).total_seconds())
        if target is None or target == pool:
            continue
        with connection.cursor() as cursor:
            cursor.execute(
                _MOVE_QUEUED_SQL,
                {"pool": target, "placed_by": placed_by, "id": job_id, "queued": Status.QUEUED, "was": pool},
            )
            if cursor.rowcount != 1:
                continue
        room[target] = room.get(target, 0) - 1
        moved += 1
    return moved
