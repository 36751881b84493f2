"""Flood benchmark: one tenant's trivial jobs while another tenant deploys and warms as hard as it may.

    .venv/bin/python bench/flood.py [--clients 2] [--seconds 30] [--workers 2] [--build-workers 1]

Starts its own stack (uvicorn web, N job workers, M build workers, the reconciler) on the database
of DATABASE_URL and a scratch Redis database. Tenant A sends trivial Python jobs
(`POST /api/v1/jobs?wait=10`) from C clients, back to back: first alone for T seconds (the
baseline), then for T seconds while tenant B deploys 8 functions with distinct dependencies (each
a build: resolve and install from the package index) and calls `POST …/warm` in a loop on a
function it deployed before. Prints A's latency p50/p95/p99 and jobs/s in both phases, how B's
deploys and warm calls were answered (201/202, 429, other), and how many of B's builds finished,
and checks that every job A got accepted finished.

What it shows: job workers never take a build (builds run on build workers, one at a time per
tenant), warm-ups queue behind jobs and are bounded per function, so the flood costs A little.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.e2e import django_setup, drive, free_port, job_counts, pct, start_stack, stop_stack  # noqa: E402

# distinct locks, each a wheel on PyPI: every deploy is a real resolve and install
REQUIREMENTS = [
    "six==1.16.0",
    "six==1.15.0",
    "idna==3.4",
    "idna==3.6",
    "toml==0.10.2",
    "attrs==23.1.0",
    "packaging==23.2",
    "certifi==2023.7.22",
]
PY = "def main():\n    return 1\n"


def call(port: int, key: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    response = conn.getresponse()
    raw = response.read()
    try:
        return response.status, json.loads(raw) if raw else {}
    except ValueError:
        return response.status, {}


def flood(port: int, key: str, stop: threading.Event, answers: Counter, what: str, run: str) -> None:
    """Tenant B: 8 deploys with distinct dependencies, then warm calls in a loop until stopped."""
    for i, requirement in enumerate(REQUIREMENTS if what in ("both", "deploys") else ()):
        requirement = f"{requirement}\n# {run}"  # comment: the same lock, a fresh resolve per run
        status, _ = call(
            port,
            key,
            "POST",
            "/api/v1/functions",
            {"name": f"heavy-{i}", "runtime": "python", "code": PY, "requirements": requirement + "\n"},
        )
        answers[f"deploy {status}"] += 1
    while what in ("both", "warm") and not stop.is_set():
        status, _ = call(port, key, "POST", "/api/v1/functions/warmed/warm", {"count": 8})
        answers[f"warm {status}"] += 1
        stop.wait(0.05)


def report(name: str, latencies: list[float], ok: int, failed: int, elapsed: float) -> None:
    print(
        f"{name:<22} p50={statistics.median(latencies):.1f} ms p95={pct(latencies, 95):.1f} ms "
        f"p99={pct(latencies, 99):.1f} ms  {ok / elapsed:.1f} jobs/s  "
        f"({ok} ok, {failed} not finished in the wait)"
    )


def main() -> None:
    args = parse_args()
    django_setup(args.redis_url)
    from lambdasite.redis_client import get_redis

    get_redis().flushdb()
    run = uuid.uuid4().hex[:6]
    quiet, key_a, noisy, key_b = tenants(run)
    port = free_port()
    env = {**os.environ, "REDIS_URL": args.redis_url, "LOG_LEVEL": "WARNING", "ALLOWED_HOSTS": "127.0.0.1"}
    procs = start_stack(env, port, args.workers, args.build_workers)
    try:
        measure(port, key_a, key_b, args, run)
        report_builds(noisy)
        report_billing(noisy)
    finally:
        time.sleep(1)
        stop_stack(procs)
    accepted, finished = job_counts(quiet)
    print(f"A: accepted {accepted}, finished {finished}, lost {accepted - finished}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--build-workers", type=int, default=1)
    parser.add_argument("--flood", default="both", choices=["both", "deploys", "warm"])
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"))
    return parser.parse_args()


def tenants(run: str) -> tuple:
    """Tenant A (quiet, a high quota) and tenant B (noisy, the default quota), each with its key."""
    from accounts.services import api_key_issue, tenant_create

    quiet = tenant_create(slug=f"flood-a-{run}")
    quiet.quota.max_concurrency, quiet.quota.submissions_per_minute = 64, 1_000_000
    quiet.quota.save()
    noisy = tenant_create(slug=f"flood-b-{run}")
    key_a = api_key_issue(tenant=quiet, name="bench", operator=True).plaintext
    key_b = api_key_issue(tenant=noisy, name="bench", operator=True).plaintext
    return quiet, key_a, noisy, key_b


def measure(port: int, key_a: str, key_b: str, args, run: str) -> None:
    """A's latency alone, then while B floods; B's answers."""
    answers: Counter = Counter()
    status, body = call(
        port, key_b, "POST", "/api/v1/functions", {"name": "warmed", "runtime": "python", "code": PY}
    )
    assert status == 201, body
    drive(port, key_a, args.clients, 2.0)  # warm-up: cells, connections
    lat, ok, failed, _, elapsed = drive(port, key_a, args.clients, args.seconds)
    report("alone", lat, ok, failed, elapsed)
    stop = threading.Event()
    noisy_thread = threading.Thread(target=flood, args=(port, key_b, stop, answers, args.flood, run))
    noisy_thread.start()
    lat, ok, failed, _, elapsed = drive(port, key_a, args.clients, args.seconds)
    stop.set()
    noisy_thread.join()
    report("while B floods", lat, ok, failed, elapsed)
    print("B's answers:", ", ".join(f"{k}: {v}" for k, v in sorted(answers.items())))


def report_builds(noisy) -> None:
    """Wait up to 5 minutes for B's builds, then count them by status."""
    from functions.models import BuildStatus, FunctionVersion

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        building = FunctionVersion.objects.filter(function__tenant=noisy, status=BuildStatus.BUILDING).count()
        if not building:
            break
        time.sleep(2)
    states = Counter(
        FunctionVersion.objects.filter(
            function__tenant=noisy, function__name__startswith="heavy-"
        ).values_list("status", flat=True)
    )
    print(f"B's builds: {dict(states)} (still building after 5 min: {states.get('building', 0)})")


def report_billing(noisy) -> None:
    from accounts.models import UsageCharge

    charged = Counter()
    for kind, gb_s in UsageCharge.objects.filter(tenant=noisy).values_list("kind", "gb_seconds"):
        charged[kind] += gb_s
    print("B was billed (GB-s):", ", ".join(f"{k} {v:.1f}" for k, v in sorted(charged.items())) or "nothing")


if __name__ == "__main__":
    main()
