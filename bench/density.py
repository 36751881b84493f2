"""Density benchmark: how many sleeping jobs one host runs at once (issue 25).

    .venv/bin/python bench/density.py [--jobs 200] [--sleep 1] [--memory-mb 128] [--rounds 2]

Starts the stack of `make run`'s defaults (web, one job worker, the reconciler: bench/e2e.py's
starter) on the database of DATABASE_URL and a scratch Redis database, makes one tenant whose
concurrency cap is raised to N, and submits N jobs that each `time.sleep(S)` (in batches of 100
over HTTP), R rounds in a row: the first round starts the tenant's cells, the next ones find them
warm. Prints, per round, the time from the first submit until all N finished, the effective
concurrency (N x S / that time), the most jobs seen running at once, and the host memory per
in-flight job (the rise of MemTotal - MemAvailable at the peak over the idle stack, divided by
the jobs running then: the runner, its job process and the engine's shim per cell).

A job's memory limit counts against the host's budget whether it uses it or not (HOST_MEMORY_BUDGET_MB,
75% of RAM by default): `--memory-mb` is the limit the jobs ask for, so at 128 MB a 24 GiB host holds
~140 at once, at 32 MB ~560. Targets: N=200, S=1 done <= 3 s; N=1000, S=5 done <= 15 s.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from e2e import cpu_snapshot, django_setup, free_port, start_stack, stop_stack  # noqa: E402


def cells_memory_mb(worker_pid: int) -> tuple[int, float]:
    """(cells, MB) of a worker's cells as the kernel counts them: each container's cgroup (its
    runner and job processes, page cache left out) plus its share of the engine's shims (one
    containerd-shim per container). A shared machine's other processes do not blur it, as
    MemAvailable's changes do."""
    import docker

    # the list's own rows: inspecting each would race with cells being removed
    rows = docker.from_env().api.containers(filters={"label": f"lambdasite.pid={worker_pid}"})
    ids = [row["Id"] for row in rows]
    total = 0
    for cid in ids:
        total += _cgroup_bytes(cid)
    shims = [rss for comm, rss in _processes() if comm.startswith("containerd-shim")]
    shim_each = sum(shims) / len(shims) if shims else 0
    if ids:
        print(
            f"    ({len(ids)} cells: {total / len(ids) / 2**20:.1f} MB in each one's cgroup, "
            f"{shim_each / 2**20:.1f} MB for its shim)"
        )
    return len(ids), (total + shim_each * len(ids)) / 2**20


def _cgroup_bytes(cid: str) -> int:
    for base, usage in (
        ("/sys/fs/cgroup/memory/docker", "memory.usage_in_bytes"),
        ("/sys/fs/cgroup/docker", "memory.current"),
    ):
        try:
            used = int(open(f"{base}/{cid}/{usage}").read())
            stat = dict(line.split() for line in open(f"{base}/{cid}/memory.stat"))
        except OSError:
            continue
        cache = int(stat.get("total_inactive_file", stat.get("inactive_file", 0)))
        return max(0, used - cache)
    return 0


def _processes():
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                comm = open(f"/proc/{entry}/comm").read().strip()
                rss = int(open(f"/proc/{entry}/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            except (OSError, ValueError, IndexError):
                continue
            yield comm, rss


def used_mb() -> float:
    info = {}
    for line in open("/proc/meminfo"):
        name, value = line.split(":", 1)
        info[name] = int(value.split()[0])
    return (info["MemTotal"] - info["MemAvailable"]) / 1024


def submit(port: int, key: str, jobs: list[dict]) -> list[str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    ids: list[str] = []
    for start in range(0, len(jobs), 100):
        conn.request("POST", "/api/v1/jobs/batch", json.dumps({"jobs": jobs[start : start + 100]}), headers)
        response = conn.getresponse()
        payload = json.loads(response.read())
        if response.status != 202:
            raise SystemExit(f"batch refused: {response.status} {payload}")
        ids += payload["ids"]
    return ids


def counts(tenant_id) -> tuple[int, int]:
    """(running, finished) of the tenant's jobs."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE status = 'running'),"
            " count(*) FILTER (WHERE status = ANY(%s)) FROM jobs_job WHERE tenant_id = %s",
            [["succeeded", "failed", "timed_out", "killed", "cancelled", "dead"], tenant_id],
        )
        return cursor.fetchone()


def one_round(port: int, key: str, tenant_id, args, baseline_mb: float, worker_pid: int) -> dict:
    code = f"import time\ndef main(i):\n    time.sleep({args.sleep})\n    return i\n"
    # the timeout well past the sleep: a job that timed out loses its cell (the next round would start cold)
    body = {
        "runtime": "python",
        "code": code,
        "memory_mb": args.memory_mb,
        "timeout_ms": int(args.sleep * 1000) + 10_000,
    }
    jobs = [{**body, "args": [i]} for i in range(args.jobs)]
    _, finished_before = counts(tenant_id)
    peak = {"running": 0, "memory_mb": 0.0, "per_job": 0.0, "cells": 0, "cell_mb": 0.0}
    measured_at = 0.0
    t0 = time.monotonic()
    submitter = threading.Thread(target=submit, args=(port, key, jobs))
    submitter.start()
    while True:
        running, finished = counts(tenant_id)
        memory = used_mb() - baseline_mb
        if running > peak["running"]:
            peak.update(running=running, memory_mb=memory, per_job=memory / running)
        if running >= peak["running"] * 0.95 and running and time.monotonic() - measured_at > 1.0:
            cells, cell_mb = cells_memory_mb(worker_pid)  # near the peak, at most once a second
            measured_at = time.monotonic()
            if cells:
                peak.update(cells=cells, cell_mb=cell_mb, cell_running=running)
        if finished - finished_before >= args.jobs:
            break
        if time.monotonic() - t0 > args.timeout:
            raise SystemExit(f"only {finished - finished_before}/{args.jobs} finished in {args.timeout} s")
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    submitter.join()
    return {"elapsed": elapsed, **peak}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--sleep", type=float, default=1.0)
    parser.add_argument("--memory-mb", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--workers", type=int, default=1)  # make run's default: one job worker
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"))
    args = parser.parse_args()
    django_setup(args.redis_url)
    from accounts.services import api_key_issue, tenant_create
    from lambdasite.redis_client import get_redis

    get_redis().flushdb()
    tenant = tenant_create(slug=f"density-{uuid.uuid4().hex[:8]}")
    quota = tenant.quota
    quota.max_concurrency, quota.submissions_per_minute, quota.monthly_gb_seconds = args.jobs, 1_000_000, 1e9
    quota.save()
    key = api_key_issue(tenant=tenant, name="bench", operator=True).plaintext
    port = free_port()
    env = {**os.environ, "REDIS_URL": args.redis_url, "LOG_LEVEL": "WARNING", "ALLOWED_HOSTS": "127.0.0.1"}
    procs = start_stack(env, port, workers=args.workers)
    try:
        baseline = used_mb()
        for number in range(1, args.rounds + 1):
            before = cpu_snapshot(procs)
            r = one_round(port, key, tenant.pk, args, baseline, procs[1].pid)
            after = cpu_snapshot(procs)
            print(
                f"round {number} ({'cold cells' if number == 1 else 'warm cells'}): {args.jobs} jobs x "
                f"{args.sleep:g} s sleep, {args.memory_mb} MB each: all done in {r['elapsed']:.2f} s, "
                f"effective concurrency {args.jobs * args.sleep / r['elapsed']:.1f}, "
                f"at most {r['running']} running at once, host memory per in-flight job "
                f"{r['per_job']:.1f} MB ({r['memory_mb']:.0f} MB over the idle stack)"
            )
            if r["cells"]:
                each = r["cell_mb"] / r["cells"]
                print(
                    f"    the worker's cells near the peak ({r['cell_running']} running): {r['cells']} "
                    f"cells, {r['cell_mb']:.0f} MB in their cgroups and shims, {each:.1f} MB per cell"
                )
            per_job = {name: (after[name] - before[name]) * 1000 / args.jobs for name in before}
            print(
                "    CPU per job (ms): " + ", ".join(f"{name} {value:.1f}" for name, value in per_job.items())
            )
            time.sleep(1)
    finally:
        stop_stack(procs)
    print("targets: N=200, S=1 done <= 3 s; N=1000, S=5 done <= 15 s")


if __name__ == "__main__":
    main()
