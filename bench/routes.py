"""Routes benchmark, one run against a stack it starts (uvicorn web, workers, the reconciler) on the
database of DATABASE_URL and a scratch Redis database, with real Docker. Run by hand:

    DATABASE_URL=… .venv/bin/python bench/routes.py [--calls 300] [--seconds 20] [--workers 2]

Prints:
1. a trivial sync route (GET /fn/<tenant>/hello, the function returns a small response), one client
   over a keep-alive connection: p50/p99 request to answer; the same function through
   POST /api/v1/functions/{name}/invoke?wait for comparison;
2. 8 clients, keep-alive, for --seconds: requests/s and p50/p99, and the CPU per request of each part
   of the stack (web, workers, reconciler, PostgreSQL, Redis, Docker, the sandboxes);
3. a GitHub-signed route (HMAC-SHA256 over a 1 KiB body) against the same route without auth,
   interleaved, one client: the p50 difference;
4. forged requests (a wrong signature) at the HMAC route: refused before anything is spent; the web
   process's CPU per forged request, against the whole stack's CPU per request that runs a job, and
   the signature check alone in process.

Targets (issue 26): p50 <= 12 ms, p99 <= 30 ms with one client; >= 130 requests/s with 8; an
HMAC-verified route within 1 ms of an unauthenticated one; a forged request a small fraction of a
job's CPU.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
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
_spec = importlib.util.spec_from_file_location("bench_e2e", ROOT / "bench" / "e2e.py")
e2e = importlib.util.module_from_spec(_spec)  # bench/ is not a package
_spec.loader.exec_module(e2e)

SECRET = "bench-webhook-secret"
HELLO = 'def main(request):\n    return {"status": 200, "headers": {"X-Bench": "1"}, "body": "hi"}\n'
BODY = json.dumps({"action": "opened", "padding": "x" * 980}).encode()  # ~1 KiB, as a small webhook


def setup(redis_url: str) -> tuple[str, str]:
    """A tenant with generous caps, the function, its three routes and the signing secret. -> (slug, key)"""
    e2e.django_setup(redis_url)
    from accounts.services import api_key_issue, tenant_create
    from functions.services.deploy import VersionSpec, function_create
    from lambdasite.redis_client import get_redis
    from routes.services.manage import RouteSpec, route_create
    from vault.services import Actor, secret_put

    get_redis().flushdb()
    tenant = tenant_create(slug=f"bench-rt-{uuid.uuid4().hex[:6]}")
    quota = tenant.quota
    quota.max_concurrency, quota.submissions_per_minute, quota.monthly_gb_seconds = 64, 1_000_000, 1e9
    quota.save()
    key = api_key_issue(tenant=tenant, name="bench", operator=True).plaintext
    function, _ = function_create(tenant=tenant, user=None, name="hello", runtime="python",
                                  spec=VersionSpec(code=HELLO))  # fmt: skip
    secret_put(tenant=tenant, name="github", value=SECRET, actor=Actor("bench", is_owner=True))
    route_create(function=function, spec=RouteSpec(path="/hello", methods=["GET"]))
    route_create(function=function, spec=RouteSpec(path="/open", methods=["POST"]))
    github = {"type": "hmac", "preset": "github", "secret": "github"}
    route_create(function=function, spec=RouteSpec(path="/signed", methods=["POST"], auth=github))
    return tenant.slug, key


def github_headers(body: bytes, key: str = SECRET) -> dict:
    from routes.signatures import Scheme, sign

    return {"Content-Type": "application/json", **sign(Scheme("github"), key, body, at=0)}


def pct(values: list[float], p: int) -> float:
    return e2e.pct(sorted(values), p)


def fmt(values: list[float]) -> str:
    return f"p50 {statistics.median(values):.2f} ms, p99 {pct(values, 99):.2f} ms (n={len(values)})"


class Conn:
    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def ms(self, method: str, path: str, body: bytes | None = None, headers=None, want: int = 200) -> float:
        t0 = time.perf_counter()
        self.conn.request(method, path, body, headers or {})
        response = self.conn.getresponse()
        payload = response.read()
        if response.status != want:
            raise RuntimeError(f"{method} {path}: {response.status} {payload[:300]!r}")
        return (time.perf_counter() - t0) * 1000


def one_client(port: int, slug: str, key: str, calls: int) -> None:
    conn = Conn(port)
    invoke = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    for _ in range(30):  # warm-up: cells, connections, caches
        conn.ms("GET", f"/fn/{slug}/hello")
        conn.ms("POST", "/api/v1/functions/hello/invoke?wait=10", b"{}", invoke)
    route, api = [], []
    for _ in range(calls):
        route.append(conn.ms("GET", f"/fn/{slug}/hello"))
        api.append(conn.ms("POST", "/api/v1/functions/hello/invoke?wait=10", b"{}", invoke))
    print("1. a trivial sync route, one client, keep-alive:")
    print(f"   GET /fn/{slug}/hello                {fmt(route)}")
    print(f"   POST …/functions/hello/invoke?wait  {fmt(api)} (the API's invoke, for comparison)")


def many_clients(port: int, slug: str, clients: int, seconds: float) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client() -> None:
        conn, mine, bad = Conn(port), [], 0
        while time.monotonic() < stop_at:
            try:
                mine.append(conn.ms("GET", f"/fn/{slug}/hello"))
            except (OSError, http.client.HTTPException, RuntimeError):
                bad += 1
                conn = Conn(port)
        with lock:
            latencies.extend(mine)
            failures[0] += bad

    t0 = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, failures[0], time.monotonic() - t0


def hmac_vs_open(port: int, slug: str, calls: int) -> None:
    conn = Conn(port)
    plain = {"Content-Type": "application/json"}
    for _ in range(20):
        conn.ms("POST", f"/fn/{slug}/open", BODY, plain)
        conn.ms("POST", f"/fn/{slug}/signed", BODY, github_headers(BODY))
    opened, signed = [], []
    for _ in range(calls):  # interleaved: the machine's load falls on both alike
        opened.append(conn.ms("POST", f"/fn/{slug}/open", BODY, plain))
        signed.append(conn.ms("POST", f"/fn/{slug}/signed", BODY, github_headers(BODY)))
    delta = statistics.median(signed) - statistics.median(opened)
    print("3. an HMAC-verified route (GitHub preset, 1 KiB body) against the same route without auth:")
    print(f"   no auth   {fmt(opened)}")
    print(f"   github    {fmt(signed)}   difference at p50 {delta:+.2f} ms (target: within 1 ms)")


def forged(port: int, slug: str, web_pid: int, count: int, job_cpu_ms: float) -> None:
    conn = Conn(port)
    headers = github_headers(BODY, key="not the secret")
    for _ in range(50):
        conn.ms("POST", f"/fn/{slug}/signed", BODY, headers, want=401)
    before = e2e._proc_cpu(web_pid)
    took = [conn.ms("POST", f"/fn/{slug}/signed", BODY, headers, want=401) for _ in range(count)]
    web_ms = (e2e._proc_cpu(web_pid) - before) * 1000 / count
    from routes import signatures

    scheme = signatures.Scheme("github")
    lower = {k.lower(): v for k, v in github_headers(BODY, key="not the secret").items()}
    t0, n = time.perf_counter(), 20_000
    for _ in range(n):
        try:
            signatures.verify(scheme, SECRET, lower, BODY, now=0)
        except signatures.Refused:
            pass
    check_us = (time.perf_counter() - t0) * 1e6 / n
    print("4. forged requests (a wrong GitHub signature) at the HMAC route: 401, no job")
    print(f"   answered in {fmt(took)}")
    print(
        f"   web CPU per forged request {web_ms:.2f} ms (HTTP parsing, the route lookup, the check) against "
        f"{job_cpu_ms:.2f} ms of the whole stack's CPU per request that runs a job "
        f"({100 * web_ms / max(job_cpu_ms, 1e-9):.0f}%); the signature check alone {check_us:.1f} µs"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--forged", type=int, default=2000)
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"))
    args = parser.parse_args()
    slug, key = setup(args.redis_url)
    port = e2e.free_port()
    env = {**os.environ, "REDIS_URL": args.redis_url, "LOG_LEVEL": "WARNING",
           "ALLOWED_HOSTS": "127.0.0.1,localhost"}  # fmt: skip
    procs = e2e.start_stack(env, port, args.workers)
    load = os.getloadavg()
    print(f"routes benchmark on {os.cpu_count()} cores, load average at start {load[0]:.2f} {load[1]:.2f}")
    try:
        one_client(port, slug, key, args.calls)
        many_clients(port, slug, args.clients, 3.0)  # warm-up: a cell per concurrent job
        before = e2e.cpu_snapshot(procs)
        latencies, failed, elapsed = many_clients(port, slug, args.clients, args.seconds)
        after = e2e.cpu_snapshot(procs)
        ok = len(latencies)
        per = {name: (after[name] - before[name]) * 1000 / max(ok, 1) for name in before}
        print(f"2. {args.clients} clients, keep-alive, {args.seconds:.0f} s, {args.workers} workers:")
        print(f"   {ok / elapsed:.1f} requests/s ({ok} answered 200, {failed} not), {fmt(latencies)}")
        parts = ", ".join(f"{k} {v:.2f}" for k, v in per.items() if k != "machine")
        print(f"   CPU per request (ms): {parts}; the whole machine {per['machine']:.2f}")
        hmac_vs_open(port, slug, args.calls)
        forged(port, slug, procs[0].pid, args.forged, per["machine"])
    finally:
        e2e.stop_stack(procs)
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} (other work on the machine shares its cores)")


if __name__ == "__main__":
    main()
