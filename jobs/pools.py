"""Worker pools: named sets of job workers (a region, big-memory hosts, a licensed host) and the RQ
queue each one takes. Placement (``jobs.placement``) says which pool a job goes to.

A job worker serves one or more pools (``manage.py worker --pools default,eu``, ``WORKER_POOLS``) and
pops from each pool's queue. Pools are not declared anywhere: a pool exists while a live worker
serves it. Each job worker says so with an expiring heartbeat per pool (a sorted set
``<pool>|<worker>`` -> when its heartbeat expires, as the fleet's ``metrics.worker_beat``), so
a killed worker's pools go dead after three missed beats, and a Redis flush is healed by the next
beat.

The ``default`` pool keeps the queue every job used before pools existed (``settings.RQ_QUEUE``), so
a stack with one pool is exactly what it was.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from rq import Queue

from lambdasite.parsers import POOL_NAME_RE, POOL_NAME_RULE, pool_name_valid
from lambdasite.redis_client import get_queue, get_redis

log = logging.getLogger("lambdasite.jobs")

DEFAULT_POOL = "default"
NAME_RE, NAME_RULE = POOL_NAME_RE, POOL_NAME_RULE  # (the rule's home is below every app: quotas use it)
LIVE_KEY = "lambdasite:pools:live"  # sorted set: "<pool>|<worker name>" -> when its heartbeat expires
LIVE_CACHE_S = 1.0  # how long a process reuses its view of the live pools (the fill reads it per submit)


valid_name = pool_name_valid


def parse_names(raw: str | list[str]) -> list[str]:
    """``default,eu`` (or a list) -> ["default", "eu"], in order, each once; ValueError names a bad one."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    names: list[str] = []
    for item in items:
        name = item.strip()
        if not valid_name(name):
            raise ValueError(f"{name!r}: {NAME_RULE}")
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError("at least one pool")
    return names


def queue_name(pool: str) -> str:
    """The RQ queue of a pool: the jobs queue itself for ``default``, ``<jobs queue>.<pool>`` else."""
    return settings.RQ_QUEUE if pool == DEFAULT_POOL else f"{settings.RQ_QUEUE}.{pool}"


def queue(pool: str) -> Queue:
    return get_queue(queue_name(pool))


# -- which pools are alive ----------------------------------------------------


def beat(*, worker: str, pools: list[str], ttl_s: float, now: float | None = None) -> None:
    """The worker serves these pools for ``ttl_s`` more seconds (one ZADD: it recreates a flushed set)."""
    expires = (now if now is not None else time.time()) + ttl_s
    get_redis().zadd(LIVE_KEY, {f"{pool}|{worker}": expires for pool in pools})


def gone(*, worker: str, pools: list[str]) -> None:
    """A worker that stops cleanly leaves its pools at once (a killed one after its TTL)."""
    get_redis().zrem(LIVE_KEY, *(f"{pool}|{worker}" for pool in pools))


def live_workers(*, now: float | None = None, conn=None) -> dict[str, list[str]]:
    """Pool -> the names of its live workers (expired heartbeats are removed on the way)."""
    now = now if now is not None else time.time()
    with (conn or get_redis()).pipeline(transaction=False) as pipe:
        pipe.zremrangebyscore(LIVE_KEY, "-inf", now)
        pipe.zrange(LIVE_KEY, 0, -1)
        _, members = pipe.execute()
    found: dict[str, list[str]] = {}
    for member in members:
        pool, _, worker = member.decode().partition("|")
        found.setdefault(pool, []).append(worker)
    return {pool: sorted(workers) for pool, workers in sorted(found.items())}


class _LiveCache:
    """The live pools' names, read from Redis at most every ``LIVE_CACHE_S`` per process. Redis away:
    the last answer (None before any: unknown), read again after ``LIVE_CACHE_S``."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._names: frozenset[str] | None = None
        self._read_at: float | None = None

    def names(self) -> frozenset[str] | None:
        with self._lock:
            if self._read_at is None or self._clock() - self._read_at >= LIVE_CACHE_S:
                self._read_at = self._clock()
                try:
                    self._names = frozenset(live_workers())
                except Exception:  # noqa: BLE001 - keep the last answer: never fail a submit for it
                    log.warning("reading the live pools failed; using the last answer", exc_info=True)
            return self._names

    def forget(self) -> None:
        with self._lock:
            self._names, self._read_at = None, None


_live = _LiveCache()


def live_names() -> frozenset[str]:
    """The pools that have a live worker now (at most ``LIVE_CACHE_S`` old; Redis away: the last answer)."""
    return _live.names() or frozenset()


def dispatchable() -> list[str] | None:
    """The pools the fill may dispatch to: the live ones; None (every pool) when Redis could not be
    read and no answer is known yet, so that a submit never fails or strands a job for it."""
    names = _live.names()
    return None if names is None else sorted(names)


def forget_live() -> None:
    """Read the live pools again next time (tests; a worker that just started)."""
    _live.forget()
