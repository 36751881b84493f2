"""Placement benchmark (issue 28): what worker pools cost, how fast overflow reacts, two regions.

    .venv/bin/python bench/placement.py [--parts a,b,c] [--clients 8] [--seconds 15]
                                        [--after-wait 2] [--delay-ms 30]

Starts its own stacks (uvicorn web, job workers, the scheduler: bench/e2e.py's way) on the database
of DATABASE_URL and a scratch Redis database.

(a) Dispatch overhead: C clients send trivial `POST /api/v1/jobs?wait=10` jobs back to back for S
    seconds, on one job worker each time: the worker serving `default` only with unplaced jobs (one
    queue, as before pools), then the worker serving `default,eu` with unplaced jobs, then with jobs
    placed in `eu`. Prints jobs/s, latency p50/p95/p99 and the CPU per job of each part.
(b) Overflow reaction: the home pool's one worker (WORKER_MAX_INFLIGHT=1) is kept busy by a sleeping
    job; N trivial jobs placed `{"pool": "default", "overflow": ["burst"], "after_wait_s": W}` wait
    in its queue and a worker of `burst` stands by. Prints W against what happened: each job's
    placed_by, and the time from its submit to its start.
(c) Two regions (needs root): the `eu` pool's worker in a network namespace whose link to PostgreSQL
    and Redis adds D ms each way (jobs/tests/test_partition.py's Host and Forwarder; 198.18.0.0/15
    addresses only), the `default` pool's worker beside them. C clients send `?wait` jobs to each
    pool in turn for S seconds; prints each pool's queue wait p50/p95 and ?wait latency.

Target: (a) the placed rows within noise of the first; (b) no job starts before W, and each starts
within W + RECONCILE_INTERVAL_S (1 s) + a run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from e2e import BODY, cpu_snapshot, django_setup, drive, free_port, pct, stop_stack  # noqa: E402

TRIVIAL = json.loads(BODY)
BODY_EU = json.dumps({**TRIVIAL, "pool": "eu"})
SLEEPER = {"runtime": "python", "code": "import time\ndef main(s):\n    time.sleep(s)\n", "timeout_ms": 60000}


# -- a stack whose workers serve given pools -----------------------------------


def spawn(name: str, argv: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(ROOT / "var" / f"bench-placement-{name}.log", "w"),
    )


def start(env: dict, port: int, workers: list[tuple[str, list[str], dict]]) -> list[subprocess.Popen]:
    """[web, the workers ((name, argv prefix before the command, env overrides), ...), scheduler],
    once web answers and every worker's pools are live."""
    from jobs import pools

    (ROOT / "var").mkdir(exist_ok=True)
    uvicorn = [str(ROOT / ".venv/bin/uvicorn"), "lambdasite.asgi:application", "--port", str(port)]
    procs = [spawn("web", [*uvicorn, "--no-access-log", "--log-level", "warning"], env)]
    wanted = set()
    for name, argv, extra in workers:
        procs.append(spawn(name, argv, {**env, **extra}))
        wanted |= set(argv[argv.index("--pools") + 1].split(","))
    procs.append(spawn("scheduler", [sys.executable, "manage.py", "scheduler"], env))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (_web_up(port) and wanted <= set(pools.live_workers())):
        time.sleep(0.2)
    time.sleep(2)  # the workers' spares and the processes' 1 s view of the live pools
    return procs


def _web_up(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False


def worker(pools_served: str) -> list[str]:
    return [sys.executable, "manage.py", "worker", "--pools", pools_served]


def post(port: int, key: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    conn.request(
        "POST" if body is not None else "GET", path, json.dumps(body) if body is not None else None, headers
    )
    response = conn.getresponse()
    return response.status, json.loads(response.read() or b"{}")


def line(label: str, lat: list[float], rate: float, failed: int) -> str:
    if not lat:
        return f"{label:<46} no job finished within the wait ({failed} failed)"
    return (
        f"{label:<46} {rate:6.1f} jobs/s  p50 {statistics.median(lat):6.1f} ms  p95 {pct(lat, 95):6.1f} ms  "
        f"p99 {pct(lat, 99):6.1f} ms  ({len(lat)} ok, {failed} not finished within the wait)"
    )


# -- (a) dispatch overhead -------------------------------------------------------


def part_a(args, env: dict, key: str) -> None:
    print(
        f"(a) dispatch overhead: trivial ?wait jobs, {args.clients} clients, {args.seconds:.0f} s, one worker"
    )
    for label, served, body in (
        ("one queue: worker --pools default, unplaced", "default", BODY),
        ("worker --pools default,eu, unplaced", "default,eu", BODY),
        ("worker --pools default,eu, jobs placed in eu", "default,eu", BODY_EU),
    ):
        port = free_port()
        procs = start(env, port, [("worker", worker(served), {})])
        try:
            drive(port, key, args.clients, 2.0, body)  # warm-up: cells, connections
            before = cpu_snapshot(procs)
            lat, ok, failed, _, elapsed = drive(port, key, args.clients, args.seconds, body)
            after = cpu_snapshot(procs)
        finally:
            time.sleep(1)
            stop_stack(procs)
        print(line(label, lat, ok / elapsed, failed))
        cpu = {name: (after[name] - before[name]) * 1000 / max(ok, 1) for name in before}
        print("    CPU per job (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()))


# -- (b) overflow reaction ---------------------------------------------------------


def part_b(args, env: dict, key: str) -> None:
    from jobs.models import Job

    wait_s, count = args.after_wait, args.overflow_jobs
    print(
        f"(b) overflow: home pool saturated (1 worker, 1 job at a time), {count} jobs, after_wait_s={wait_s}"
    )
    port = free_port()
    home = ("worker-home", worker("default"), {"WORKER_MAX_INFLIGHT": "1"})
    procs = start(env, port, [home, ("worker-burst", worker("burst"), {})])
    try:
        status, blocker = post(port, key, "/api/v1/jobs", {**SLEEPER, "args": [40], "pool": "default"})
        assert status == 202, blocker
        deadline = time.monotonic() + 30
        while Job.objects.get(pk=blocker["id"]).status != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        placement = {"pool": "default", "overflow": ["burst"], "after_wait_s": wait_s}
        ids = []
        for _ in range(count):
            status, job = post(port, key, "/api/v1/jobs", {**TRIVIAL, "placement": placement})
            assert status == 202, job
            ids.append(job["id"])
        deadline = time.monotonic() + wait_s + 30
        while (
            Job.objects.filter(pk__in=ids, status="succeeded").count() < count and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        jobs = list(Job.objects.filter(pk__in=ids))
        post(port, key, f"/api/v1/jobs/{blocker['id']}/cancel", {})
    finally:
        time.sleep(1)
        stop_stack(procs)
    started = sorted(j.queue_wait_ms / 1000 for j in jobs if j.queue_wait_ms is not None)
    by = Counter((job.status, job.pool, job.placed_by) for job in jobs)
    observed = "none started"
    if started:
        median = statistics.median(started)
        observed = f"min {started[0]:.2f} s, p50 {median:.2f} s, max {started[-1]:.2f} s"
    print(f"    configured: overflow after {wait_s:.1f} s; observed, submit to start: {observed}")
    for (status, pool, placed_by), n in sorted(by.items()):
        print(f"    {n} job(s) {status} in {pool!r}, placed_by {placed_by!r}")
    early = [s for s in started if s < wait_s]
    print(f"    started before the configured wait: {len(early)}")


# -- (c) two regions ---------------------------------------------------------------


def part_c(args, env: dict, key: str) -> None:
    from django.db import connection

    from jobs.models import Job
    from jobs.tests.test_partition import Forwarder, Host

    if os.geteuid() != 0:
        print("(c) two regions: skipped, needs root for a network namespace")
        return
    delay = args.delay_ms / 1000
    print(f"(c) two regions: eu's worker {args.delay_ms:.0f} ms each way from PostgreSQL and Redis, "
          f"default's beside them; {args.clients} clients, {args.seconds:.0f} s per pool")  # fmt: skip
    forwarder, host = Forwarder(), Host(secrets.token_hex(2), 1, net=f"198.18.{secrets.randbelow(250) + 1}")
    db = connection.settings_dict
    redis_port, redis_db = env["REDIS_URL"].rsplit(":", 1)[1].split("/")
    pg = forwarder.add(host.address, int(db["PORT"] or 5432), delay)
    rd = forwarder.add(host.address, int(redis_port), delay)
    far_env = {
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{host.address}:{pg}/{db['NAME']}",
        "REDIS_URL": f"redis://{host.address}:{rd}/{redis_db}",
    }
    port = free_port()
    far = ("worker-eu", ["ip", "netns", "exec", host.ns, *worker("eu")], far_env)
    procs = start(env, port, [("worker-default", worker("default"), {}), far])
    results = {}
    try:
        for pool, body in (("default", BODY), ("eu", BODY_EU)):
            drive(port, key, args.clients, 2.0, body)  # warm-up
            lat, ok, failed, ids, elapsed = drive(port, key, args.clients, args.seconds, body)
            results[pool] = (lat, ok / elapsed, failed, ids)
    finally:
        time.sleep(1)
        stop_stack(procs)
        forwarder.close()
        host.remove()
    for pool, (lat, rate, failed, ids) in results.items():
        waits = sorted(
            Job.objects.filter(pk__in=ids, queue_wait_ms__isnull=False).values_list(
                "queue_wait_ms", flat=True
            )
        )
        print(line(f"jobs placed in {pool} (?wait latency)", lat, rate, failed))
        print(
            f"    queue wait (submit to start): p50 {statistics.median(waits):.1f} ms, "
            f"p95 {pct(waits, 95):.1f} ms over {len(waits)} jobs"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default="a,b,c")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--after-wait", type=float, default=2.0)
    parser.add_argument("--overflow-jobs", type=int, default=10)
    parser.add_argument("--delay-ms", type=float, default=30.0)
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"))
    args = parser.parse_args()
    django_setup(args.redis_url)
    from accounts.services import api_key_issue, tenant_create
    from lambdasite.redis_client import get_redis

    get_redis().flushdb()
    tenant = tenant_create(slug=f"placement-{uuid.uuid4().hex[:8]}")
    quota = tenant.quota
    quota.max_concurrency, quota.submissions_per_minute, quota.monthly_gb_seconds = 64, 1_000_000, 1e9
    quota.save()
    key = api_key_issue(tenant=tenant, name="bench", operator=True).plaintext
    env = {**os.environ, "REDIS_URL": args.redis_url, "LOG_LEVEL": "WARNING", "ALLOWED_HOSTS": "127.0.0.1"}
    parts = {"a": part_a, "b": part_b, "c": part_c}
    for name in args.parts.split(","):
        parts[name](args, env, key)


if __name__ == "__main__":
    main()
