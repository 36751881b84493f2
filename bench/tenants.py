"""Many-tenants benchmark: trivial `?wait` jobs from T tenants in turn (issue 25).

    .venv/bin/python bench/tenants.py [--tenants 50] [--clients 4] [--seconds 15]

Starts the stack of `make run`'s defaults (bench/e2e.py's starter) on the database of DATABASE_URL
and a scratch Redis database, makes T tenants with a key each, runs one job of every tenant (each
tenant has run once: its first cell started), then C clients send `POST /api/v1/jobs?wait=10`
with a trivial Python job for S seconds, each request from the next tenant in turn. Prints jobs/s,
latency p50/p95/p99, the warm cells the worker holds and the host memory per warm cell (the rise of
MemTotal - MemAvailable over the idle stack, divided by the cells).

Targets: T=50 >= 120 jobs/s, p50 <= 40 ms; T=500 >= 100 jobs/s once each tenant ran once.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from density import cells_memory_mb, used_mb  # noqa: E402
from e2e import BODY, cpu_snapshot, django_setup, free_port, pct, start_stack, stop_stack  # noqa: E402


def drive(port: int, keys: list[str], clients: int, seconds: float | None, rounds: int | None = None):
    """Clients sending trivial jobs, each request from the next tenant in turn: for ``seconds``, or
    until ``rounds`` requests were sent in all. -> (latencies of good answers, failures, elapsed)."""
    turn = itertools.count()
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds if seconds else float("inf")

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, bad = [], 0
        while time.monotonic() < stop_at:
            n = next(turn)
            if rounds is not None and n >= rounds:
                break
            headers = {"Authorization": f"Bearer {keys[n % len(keys)]}", "Content-Type": "application/json"}
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/api/v1/jobs?wait=10", BODY, headers)
                response = conn.getresponse()
                payload = json.loads(response.read())
            except (OSError, http.client.HTTPException, ValueError):
                bad += 1
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            if response.status == 200 and payload.get("result") == 5:
                mine.append((time.perf_counter() - t0) * 1000)
            else:
                bad += 1
        with lock:
            latencies.extend(mine)
            failures[0] += bad

    t0 = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, failures[0], time.monotonic() - t0


def warm_cells(worker_pid: int) -> int:
    import docker

    return len(docker.from_env().api.containers(filters={"label": f"lambdasite.pid={worker_pid}"}))


def cell_waits(run: str) -> str:
    """p50 and max of the attempts' cell wait so far (a spare taken: a few ms; a container started: more)."""
    from jobs.models import Attempt

    waits = sorted(
        Attempt.objects.filter(
            job__tenant__slug__startswith=f"many-{run}-", start_ms__isnull=False
        ).values_list("start_ms", flat=True)
    )
    if not waits:
        return "none recorded"
    return f"p50 {statistics.median(waits):.0f} ms, p90 {pct(waits, 90):.0f} ms, max {waits[-1]:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=1)  # make run's default: one job worker
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"))
    args = parser.parse_args()
    django_setup(args.redis_url)
    from accounts.services import api_key_issue, tenant_create
    from lambdasite.redis_client import get_redis

    get_redis().flushdb()
    run = uuid.uuid4().hex[:6]
    keys = []
    for i in range(args.tenants):
        tenant = tenant_create(slug=f"many-{run}-{i}")
        quota = tenant.quota
        quota.submissions_per_minute, quota.monthly_gb_seconds = 1_000_000, 1e9
        quota.save()
        keys.append(api_key_issue(tenant=tenant, name="bench", operator=True).plaintext)
    port = free_port()
    env = {**os.environ, "REDIS_URL": args.redis_url, "LOG_LEVEL": "WARNING", "ALLOWED_HOSTS": "127.0.0.1"}
    procs = start_stack(env, port, workers=args.workers)
    try:
        baseline, cells_before = used_mb(), warm_cells(procs[1].pid)
        lat, bad, elapsed = drive(port, keys, args.clients, None, rounds=args.tenants)
        print(
            f"first pass: {args.tenants} tenants ran once in {elapsed:.1f} s "
            f"({args.tenants / elapsed:.1f} jobs/s, p50 {statistics.median(lat):.0f} ms, {bad} failed)"
        )
        print(f"    a first job's wait for its cell (start_ms): {cell_waits(run)}")
        cells = warm_cells(procs[1].pid)
        grown = cells - cells_before
        memory = used_mb() - baseline
        before = cpu_snapshot(procs)
        lat, bad, elapsed = drive(port, keys, args.clients, args.seconds)
        after = cpu_snapshot(procs)
        print(
            f"T={args.tenants} tenants in turn, {args.clients} clients: {len(lat) / elapsed:.1f} jobs/s, "
            f"p50 {statistics.median(lat):.1f} ms p95 {pct(lat, 95):.1f} ms p99 {pct(lat, 99):.1f} ms "
            f"({len(lat)} ok, {bad} failed)"
        )
        per_job = {name: (after[name] - before[name]) * 1000 / max(len(lat), 1) for name in before}
        print("    CPU per job (ms): " + ", ".join(f"{name} {value:.1f}" for name, value in per_job.items()))
        cells, cell_mb = cells_memory_mb(procs[1].pid)
        print(
            f"    the worker's cells (idle now) in their cgroups and shims: {cells} cells, {cell_mb:.0f} MB, "
            f"{cell_mb / max(cells, 1):.1f} MB per warm cell"
        )
        print(
            f"warm cells held by the worker: {warm_cells(procs[1].pid)}; host memory per warm cell "
            f"{memory / max(grown, 1):.1f} MB ({memory:.0f} MB for {grown} cells started by the first pass)"
        )
    finally:
        stop_stack(procs)
    print("targets: T=50 >= 120 jobs/s, p50 <= 40 ms; T=500 >= 100 jobs/s once each tenant ran once")


if __name__ == "__main__":
    main()
