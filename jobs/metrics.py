"""Prometheus metrics that stay correct when web, workers and the reconciler are separate processes.

Events (submitted, finished, durations) are counted in Redis by whichever process
sees them, so every process and host adds to the same numbers; gauges (running,
queue depth, dead letters, workers, warm cells) are read from PostgreSQL and
Redis when Prometheus scrapes. A Redis flush resets the counters, which
Prometheus treats as a counter reset.

The fleet's heartbeats live here too: each worker process refreshes its entry in one sorted set
(score: when the entry expires) and the reconciler its timestamp, so a count of live workers is
a count of heartbeats that have not expired. A SIGKILLed worker drops out within its TTL, and a
Redis that lost its data (restart without persistence, FLUSHALL) is written again by the next beat.
"""

from __future__ import annotations

import functools
import json
import logging
import time

from django.conf import settings
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from lambdasite.caching import best_effort
from lambdasite.redis_client import build_queue_name, get_queue, get_redis

from . import pool_waits

PREFIX = "lambdasite:metrics"
BUCKETS = {
    "job_run_seconds": (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    "job_queue_wait_seconds": (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    "sandbox_start_seconds": (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
}
POOL_KEY = f"{PREFIX}:pools"  # hash: worker name -> JSON pool stats, refreshed by each worker
WORKERS_KEY = f"{PREFIX}:workers"  # sorted set: "<role>|<worker name>" -> when its heartbeat expires
WORKER_ROLES = ("jobs", "builds")  # job workers (the jobs queue, warm-ups) and build workers (builds only)
RECONCILER_KEY = "lambdasite:reconciler:heartbeat"  # the reconciler's last pass (unix time)


def _conn():
    return get_redis()


def _safely(fn):
    """Metrics never break the job path: a failed update is lost (logged at debug)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs) -> None:
        best_effort(f"metrics update {fn.__name__}", fn, *args, level=logging.DEBUG, **kwargs)

    return wrapper


@_safely
def count_submitted(runtime: str, n: int = 1) -> None:
    _conn().hincrby(f"{PREFIX}:submitted", runtime, n)


def count_finished(pipe, *, runtime: str, status: str) -> None:
    """Queue on ``pipe``: one more job of this runtime reached this terminal status."""
    pipe.hincrby(f"{PREFIX}:finished", f"{runtime}|{status}", 1)


def count_egress(pipe, *, verdicts: dict[str, int], bytes_sent: int, bytes_received: int) -> None:
    """Queue on ``pipe``: an attempt's connections through the door by verdict, and its bytes."""
    for verdict, n in verdicts.items():
        pipe.hincrby(f"{PREFIX}:egress_connections", verdict, n)
    if bytes_sent:
        pipe.hincrby(f"{PREFIX}:egress_bytes", "sent", bytes_sent)
    if bytes_received:
        pipe.hincrby(f"{PREFIX}:egress_bytes", "received", bytes_received)


def _observe(pipe, name: str, seconds: float) -> None:
    buckets = BUCKETS[name]
    index = next((i for i, bound in enumerate(buckets) if seconds <= bound), len(buckets))
    pipe.hincrby(f"{PREFIX}:{name}", f"b{index}", 1)
    pipe.hincrbyfloat(f"{PREFIX}:{name}", "sum", seconds)


def observe_attempt(pipe, *, run_s: float, start_s: float) -> None:
    """Queue on ``pipe``: an attempt's run time and the time it took to get a container."""
    _observe(pipe, "job_run_seconds", run_s)
    _observe(pipe, "sandbox_start_seconds", start_s)


@_safely
def observe(name: str, seconds: float) -> None:
    with _conn().pipeline(transaction=False) as pipe:
        _observe(pipe, name, seconds)
        pipe.execute()


@_safely
def observe_queue_wait(pool: str, seconds: float, *, now: float | None = None) -> None:
    """A job's first attempt started after waiting ``seconds``: the platform's wait histogram and
    its pool's minute of waits (``jobs.pool_waits``), in one round trip."""
    with _conn().pipeline(transaction=False) as pipe:
        _observe(pipe, "job_queue_wait_seconds", seconds)
        pool_waits.record(pipe, pool, seconds, now=now)
        pipe.execute()


@_safely
def publish_pool(worker: str, stats: dict, ttl_s: float) -> None:
    conn = _conn()
    conn.hset(POOL_KEY, worker, json.dumps({**stats, "expires": time.time() + ttl_s}))


def worker_beat(*, role: str, name: str, ttl_s: float, now: float | None = None) -> None:
    """This worker is alive for ``ttl_s`` more seconds (one ZADD: it recreates a flushed set)."""
    _conn().zadd(WORKERS_KEY, {f"{role}|{name}": (now if now is not None else time.time()) + ttl_s})


def worker_gone(*, role: str, name: str) -> None:
    """A worker that stops cleanly leaves the count at once (a killed one after its TTL)."""
    _conn().zrem(WORKERS_KEY, f"{role}|{name}")


def workers_alive(*, now: float | None = None) -> dict[str, int]:
    """Live workers per role: heartbeats that have not expired (expired ones are removed)."""
    now = now if now is not None else time.time()
    with _conn().pipeline(transaction=False) as pipe:
        pipe.zremrangebyscore(WORKERS_KEY, "-inf", now)
        pipe.zrange(WORKERS_KEY, 0, -1)
        _, members = pipe.execute()
    counts = dict.fromkeys(WORKER_ROLES, 0)
    for member in members:
        role = member.decode().partition("|")[0]
        counts[role] = counts.get(role, 0) + 1
    return counts


def reconciler_beat(interval_s: float) -> None:
    """The reconciler finished a pass; the key expires after ten missed intervals."""
    _conn().set(RECONCILER_KEY, str(time.time()), ex=max(10, int(interval_s * 10)))


def reconciler_age_s() -> float | None:
    """Seconds since the reconciler's last pass, or None if there is no heartbeat."""
    beat = _conn().get(RECONCILER_KEY)
    return None if beat is None else max(0.0, time.time() - float(beat))


class LambdasiteCollector:
    """Registered once per process; reads shared state on every scrape (never at registration)."""

    def describe(self):
        return []

    def collect(self):
        conn = _conn()
        yield from _event_counters(conn)
        yield from _histograms(conn)
        yield from _job_gauges()
        yield from _flow_gauges()
        yield from _fleet_gauges(conn)
        yield from _placement_gauges()


def _event_counters(conn):
    """Jobs submitted and finished, as counted in Redis by every process."""
    submitted = CounterMetricFamily("lambdasite_jobs_submitted", "Jobs accepted", labels=["runtime"])
    for runtime, value in conn.hgetall(f"{PREFIX}:submitted").items():
        submitted.add_metric([runtime.decode()], int(value))
    yield submitted
    finished = CounterMetricFamily(
        "lambdasite_jobs_finished", "Jobs that reached a terminal state", labels=["runtime", "status"]
    )
    for key, value in conn.hgetall(f"{PREFIX}:finished").items():
        runtime, _, status = key.decode().partition("|")
        finished.add_metric([runtime, status], int(value))
    yield finished
    connections = CounterMetricFamily(
        "lambdasite_egress_connections",
        "Connections jobs asked the egress proxy for, by verdict",
        labels=["verdict"],
    )
    for verdict, value in conn.hgetall(f"{PREFIX}:egress_connections").items():
        connections.add_metric([verdict.decode()], int(value))
    yield connections
    moved = CounterMetricFamily(
        "lambdasite_egress_bytes", "Bytes jobs sent and received through egress", labels=["direction"]
    )
    for direction, value in conn.hgetall(f"{PREFIX}:egress_bytes").items():
        moved.add_metric([direction.decode()], int(value))
    yield moved


def _histograms(conn):
    """Each of BUCKETS' histograms, from its hash of per-bucket counts (made cumulative) and sum."""
    for name, buckets in BUCKETS.items():
        raw = {k.decode(): v for k, v in conn.hgetall(f"{PREFIX}:{name}").items()}
        cumulative, series = 0, []
        for i, bound in enumerate(buckets):
            cumulative += int(raw.get(f"b{i}", 0))
            series.append((str(bound), cumulative))
        cumulative += int(raw.get(f"b{len(buckets)}", 0))
        series.append(("+Inf", cumulative))
        yield HistogramMetricFamily(
            f"lambdasite_{name}", name.replace("_", " "), buckets=series, sum_value=float(raw.get("sum", 0.0))
        )


def _job_gauges():
    """Jobs running, waiting (in Redis and in PostgreSQL) and dead, read now."""
    from .models import Job, Status

    jobs = Job.objects
    yield GaugeMetricFamily("lambdasite_jobs_running", "Jobs running now", value=_count(jobs, Status.RUNNING))
    depth = GaugeMetricFamily(
        "lambdasite_queue_depth", "Jobs waiting: in Redis (RQ queue) and in PostgreSQL", labels=["queue"]
    )
    depth.add_metric([settings.RQ_QUEUE], get_queue().count)
    depth.add_metric([build_queue_name()], get_queue(build_queue_name()).count)
    depth.add_metric(["postgres"], _count(jobs, Status.QUEUED, Status.RETRYING))
    yield depth
    yield GaugeMetricFamily(
        "lambdasite_dead_letters", "Jobs in the dead-letter queue", value=_count(jobs, Status.DEAD)
    )
    yield GaugeMetricFamily(
        "lambdasite_runs_waiting",
        "Durable runs suspended at a wait (a sleep, children, an event): holding no worker or slot",
        value=_count(jobs, Status.WAITING),
    )


# in flight and waiting per function, and per function and key, over the jobs not yet finished
_FLOW_SQL = """
SELECT t.slug, j.function_name, {key}, j.status IN (%(dispatched)s, %(running)s) AS in_flight, count(*)
FROM jobs_job j JOIN accounts_tenant t ON t.id = j.tenant_id
WHERE j.status IN (%(queued)s, %(dispatched)s, %(running)s) AND j.function_id IS NOT NULL {where}
GROUP BY 1, 2, 3, 4
"""


def _flow_gauges():
    """Flow control per function and per concurrency key: jobs in flight (dispatched or running) and
    waiting (queued), for the ``FLOW_METRICS_TOP`` busiest of each only, so a tenant with a million
    keys adds a bounded number of series. A key is cut to 64 characters."""
    from django.db import connection

    from .models import Status

    top = settings.FLOW_METRICS_TOP
    if top <= 0:
        return
    params = {"queued": Status.QUEUED, "dispatched": Status.DISPATCHED, "running": Status.RUNNING}
    for name, help_text, key, where, labels in (
        ("lambdasite_function_jobs", "Jobs of a function in flight or waiting (the busiest functions)",
         "''", "", ["tenant", "function", "state"]),
        ("lambdasite_concurrency_key_jobs", "Jobs of a function's concurrency key in flight or waiting "
         "(the busiest keys)", "left(j.concurrency_key, 64)", "AND j.concurrency_key IS NOT NULL",
         ["tenant", "function", "key", "state"]),
    ):  # fmt: skip
        with connection.cursor() as cursor:
            cursor.execute(_FLOW_SQL.format(key=key, where=where), params)
            rows = cursor.fetchall()
        totals: dict[tuple, dict[str, int]] = {}
        for slug, function, found, in_flight, n in rows:
            counts = totals.setdefault((slug, function, found), {"in_flight": 0, "waiting": 0})
            counts["in_flight" if in_flight else "waiting"] += n
        gauge = GaugeMetricFamily(name, help_text, labels=labels)
        busiest = sorted(totals.items(), key=lambda item: -sum(item[1].values()))[:top]
        for (slug, function, found), counts in busiest:
            for state, n in counts.items():
                gauge.add_metric([slug, function, *([found] if len(labels) == 4 else []), state], n)
        yield gauge


def _count(jobs, *statuses: str) -> int:
    return jobs.filter(status__in=statuses).count()


def _fleet_gauges(conn):
    """Live workers, the reconciler's last pass, and the warm cells the live workers reported."""
    workers = GaugeMetricFamily(
        "lambdasite_workers", "Live worker processes (unexpired heartbeats) by role", labels=["role"]
    )
    for role, count in workers_alive().items():
        workers.add_metric([role], count)
    yield workers
    age = reconciler_age_s()
    yield GaugeMetricFamily(
        "lambdasite_reconciler_heartbeat_age_seconds",
        "Seconds since the reconciler's last pass (+Inf without a heartbeat)",
        value=float("inf") if age is None else age,
    )
    pools = _pool_totals(conn)
    yield GaugeMetricFamily(
        "lambdasite_warm_cells", "Warm sandbox cells across workers", value=pools["warm_cells"]
    )
    yield GaugeMetricFamily(
        "lambdasite_spares", "Pre-started spare containers across workers", value=pools["spares"]
    )
    yield GaugeMetricFamily(
        "lambdasite_provisioned_cells",
        "Warm cells kept ready for deployed functions (their provisioned count) across workers",
        value=pools["provisioned_cells"],
    )


def _pool_totals(conn) -> dict[str, int]:
    """The pools' stats summed over the workers whose report has not expired (expired ones removed)."""
    totals = {"warm_cells": 0, "spares": 0, "provisioned_cells": 0}
    now = time.time()
    for worker, raw in conn.hgetall(POOL_KEY).items():
        stats = json.loads(raw)
        if stats.get("expires", 0) < now:
            conn.hdel(POOL_KEY, worker)
            continue
        for name in totals:
            totals[name] += stats.get(name, 0)
    return totals


def _placement_gauges():
    """Per worker pool (``jobs.pools``; "pool" here is a placement pool, not the sandbox's cells): live
    workers, the RQ queue's length, jobs waiting and in flight there, and the queue waits of the jobs
    that started there in the last five minutes as a summary's p50 and p95 (``jobs.pool_stats``)."""
    from .pool_stats import platform_pools

    found = platform_pools()
    workers = GaugeMetricFamily("lambdasite_pool_workers", "Live workers serving a pool", labels=["pool"])
    depth = GaugeMetricFamily(
        "lambdasite_pool_queue_depth", "Jobs in a pool's RQ queue, not yet taken by a worker", labels=["pool"]
    )
    jobs = GaugeMetricFamily(
        "lambdasite_pool_jobs",
        "Jobs placed in a pool: queued (waiting in PostgreSQL) or in_flight (dispatched or running)",
        labels=["pool", "state"],
    )
    waits = Metric(
        "lambdasite_pool_queue_wait_seconds",
        "Queue wait of the jobs that started in a pool in the last 5 minutes (quantiles of that window)",
        "summary",
    )
    for pool in found:
        name = pool["name"]
        workers.add_metric([name], len(pool["workers"]))
        depth.add_metric([name], pool["queue_depth"])
        jobs.add_metric([name, "queued"], pool["queued"])
        jobs.add_metric([name, "in_flight"], pool["in_flight"])
        for quantile, key in (("0.5", "p50"), ("0.95", "p95")):
            if pool["wait_ms"][key] is not None:
                waits.add_sample(
                    waits.name, {"pool": name, "quantile": quantile}, pool["wait_ms"][key] / 1000.0
                )
    yield from (workers, depth, jobs, waits)


def workers_alive_names(role: str, *, now: float | None = None) -> list[str]:
    """The names of the live workers of ``role``, sorted (each worker finds its own place in them)."""
    now = now if now is not None else time.time()
    members = _conn().zrangebyscore(WORKERS_KEY, now, "+inf")
    prefix = f"{role}|"
    return sorted(m.decode()[len(prefix) :] for m in members if m.decode().startswith(prefix))
