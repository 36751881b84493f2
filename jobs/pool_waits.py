"""The queue waits of each worker pool (``jobs.pools``) over the last minutes, for the operator page
and the pools' quantiles in Prometheus: one Redis hash per pool and minute (log-spaced buckets, 25%
wide from 1 ms to ~10 min), expiring once out of the window, so a reader takes a few small hashes,
never the jobs table. ``jobs.metrics.observe_queue_wait`` records a first claim's wait here."""

from __future__ import annotations

import bisect
import time

from lambdasite.redis_client import get_redis

PREFIX = "lambdasite:metrics"
WINDOW_S = 300
SLOT_S = 60
BOUNDS = tuple(0.001 * 1.25**k for k in range(73))
POOLS_KEY = f"{PREFIX}:pool_wait_pools"  # the pools that recorded a wait (a set)


def _key(pool: str, slot: int) -> str:
    return f"{PREFIX}:pool_wait:{pool}:{slot}"


def record(pipe, pool: str, seconds: float, *, now: float | None = None) -> None:
    """Queue on ``pipe``: one wait of ``seconds`` in ``pool``'s current minute."""
    slot = int((now if now is not None else time.time()) // SLOT_S)
    key = _key(pool, slot)
    pipe.hincrby(key, str(bisect.bisect_left(BOUNDS, seconds)), 1)
    pipe.expire(key, WINDOW_S + 2 * SLOT_S)
    pipe.sadd(POOLS_KEY, pool)


def pool_waits(*, now: float | None = None, conn=None) -> dict[str, tuple[int, float, float]]:
    """Pool -> (jobs that started in the last WINDOW_S, p50 and p95 of their waits in ms), the
    percentiles interpolated within a bucket (within ~12%); pools without a start are left out."""
    now = now if now is not None else time.time()
    slots = range(int((now - WINDOW_S) // SLOT_S) + 1, int(now // SLOT_S) + 1)
    conn = conn or get_redis()
    names = sorted(name.decode() for name in conn.smembers(POOLS_KEY))
    with conn.pipeline(transaction=False) as pipe:
        for name in names:
            for slot in slots:
                pipe.hgetall(_key(name, slot))
        found = pipe.execute()
    waits = {}
    for i, name in enumerate(names):
        counts = [0] * (len(BOUNDS) + 1)
        for minute in found[i * len(slots) : (i + 1) * len(slots)]:
            for index, n in minute.items():
                counts[min(int(index), len(BOUNDS))] += int(n)
        total = sum(counts)
        if total:
            waits[name] = (total, _quantile(counts, 0.5) * 1000, _quantile(counts, 0.95) * 1000)
        else:
            conn.srem(POOLS_KEY, name)  # nothing in the window: listed again at its next start
    return waits


def _quantile(counts: list[int], q: float) -> float:
    """The q-quantile of a bucketed count, linear within its bucket (as Prometheus' histogram_quantile)."""
    rank, seen = q * sum(counts), 0
    for index, n in enumerate(counts):
        if n and seen + n >= rank:
            low = BOUNDS[index - 1] if index else 0.0
            high = BOUNDS[index] if index < len(BOUNDS) else BOUNDS[-1]
            return low + (high - low) * (rank - seen) / n
        seen += n
    return BOUNDS[-1]
