"""End-to-end benchmark: HTTP submit -> worker -> sandbox -> result, through the whole stack.

    .venv/bin/python bench/e2e.py [--clients 8] [--seconds 20] [--workers 1] [--runtime python|node]

Starts its own stack (uvicorn web, N workers, the reconciler) on the database of
DATABASE_URL and a scratch Redis database, twice: with warm cells (SANDBOX_REUSE=tenant)
and with a fresh container per job (SANDBOX_REUSE=never). C clients each send
`POST /api/v1/jobs?wait=10` with a trivial Python job, back to back, for T seconds,
over keep-alive connections. Prints submit-to-result latency p50/p95/p99, sustained
jobs/s, the ratio between the two modes, and checks that every accepted job finished.

CPU per job is read per component: web, workers and reconciler from their processes (and
children), PostgreSQL, Redis and the Docker engine by process name, and the sandboxes from the
containers' cgroup (cpuacct of Docker's parent cgroup, which keeps the time of exited and forked
processes: the runner, the zygote and every job's process).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BODIES = {
    "python": json.dumps(
        {"runtime": "python", "code": "def main(a, b):\n    return a + b\n", "args": [2, 3]}
    ),
    "node": json.dumps(
        {"runtime": "node", "code": "function main(a, b) {\n  return a + b;\n}\n", "args": [2, 3]}
    ),
}
BODY = BODIES["python"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def django_setup(redis_url: str) -> None:
    """Point this process at redis_url and set Django up, for the bench's own queries and services."""
    os.environ["REDIS_URL"] = redis_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lambdasite.settings")
    import django

    django.setup()


def job_counts(tenant) -> tuple[int, int]:
    """How many of the tenant's jobs were accepted, and how many of them finished."""
    from jobs.models import FINISHED, Job

    accepted = Job.objects.filter(tenant=tenant).count()
    return accepted, Job.objects.filter(tenant=tenant, status__in=FINISHED).count()


def start_stack(env: dict, port: int, workers: int, build_workers: int = 0) -> list[subprocess.Popen]:
    """[web, job workers..., build workers..., scheduler], once web answers."""
    logs = ROOT / "var"
    logs.mkdir(exist_ok=True)

    def spawn(name, argv):
        return subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(logs / f"bench-e2e-{name}.log", "w"),
        )

    py = sys.executable
    procs = [
        spawn(
            "web",
            [
                str(ROOT / ".venv/bin/uvicorn"),
                "lambdasite.asgi:application",
                "--port",
                str(port),
                "--no-access-log",
                "--log-level",
                "warning",
                "--workers",
                env.get("WEB_CONCURRENCY", "1"),
            ],
        )
    ]
    procs += [spawn(f"worker{i}", [py, "manage.py", "worker"]) for i in range(workers)]
    procs += [spawn(f"builder{i}", [py, "manage.py", "worker", "--builds"]) for i in range(build_workers)]
    procs.append(spawn("scheduler", [py, "manage.py", "scheduler"]))
    for _ in range(200):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                break
        except OSError:
            time.sleep(0.1)
    time.sleep(3)  # workers start their pools
    return procs


def stop_stack(procs) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def drive(port: int, key: str, clients: int, seconds: float, body: str = BODY):
    latencies: list[float] = []
    failures = [0]
    ids: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        mine, my_ids, bad = [], [], 0
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/api/v1/jobs?wait=10", body, headers)
                response = conn.getresponse()
                payload = json.loads(response.read())
            except (OSError, http.client.HTTPException, ValueError):
                bad += 1
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            elapsed = (time.perf_counter() - t0) * 1000
            if response.status == 200 and payload.get("result") == 5:
                mine.append(elapsed)
            else:
                bad += 1
            if "id" in payload:
                my_ids.append(payload["id"])
        with lock:
            latencies.extend(mine)
            ids.extend(my_ids)
            failures[0] += bad

    t0 = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, len(latencies), failures[0], ids, time.monotonic() - t0


TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def _named_pids(names: tuple[str, ...]) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                comm = open(f"/proc/{entry}/comm").read().strip()
            except OSError:
                continue
            if comm.startswith(names):
                pids.append(int(entry))
    return pids


def _machine_cpu() -> float:
    values = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    return (sum(values) - values[3] - values[4]) / TICK  # everything but idle and iowait


def cpu_snapshot(procs) -> dict:
    """CPU seconds so far of each part of the stack (processes that end in between count what they used)."""
    web, *rest = procs
    workers, scheduler = rest[:-1], rest[-1]
    groups = {
        "web": [web.pid, *[int(c) for c in _children(web.pid)]],
        "workers": [w.pid for w in workers],
        "reconciler": [scheduler.pid],
        "postgres": _named_pids(("postgres",)),
        "redis": _named_pids(("redis-server",)),
        "docker engine": _named_pids(("dockerd", "containerd")),
    }
    snap = {name: sum(_proc_cpu(pid) for pid in pids) for name, pids in groups.items()}
    snap["sandboxes"] = _containers_cpu()
    snap["machine"] = _machine_cpu()
    return snap


def _containers_cpu() -> float:
    """CPU seconds of every container so far (cgroup v1 cpuacct or v2 cpu.stat of Docker's parent)."""
    try:
        return int(open("/sys/fs/cgroup/cpuacct/docker/cpuacct.usage").read()) / 1e9
    except OSError:
        pass
    try:
        for line in open("/sys/fs/cgroup/docker/cpu.stat"):
            if line.startswith("usage_usec"):
                return int(line.split()[1]) / 1e6
    except OSError:
        pass
    return 0.0


def _children(pid: int) -> list[str]:
    try:
        return open(f"/proc/{pid}/task/{pid}/children").read().split()
    except OSError:
        return []


def pct(values, p):
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else float("nan")


def run_mode(reuse: str, args, tenant_key: str) -> dict:
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": args.redis_url,
        "SANDBOX_REUSE": reuse,
        "LOG_LEVEL": "WARNING",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    procs = start_stack(env, port, args.workers)
    try:
        body = BODIES[args.runtime]
        drive(port, tenant_key, args.clients, 2.0, body)  # warm-up: cells, connections
        before = cpu_snapshot(procs)
        latencies, ok, failed, ids, elapsed = drive(port, tenant_key, args.clients, args.seconds, body)
        after = cpu_snapshot(procs)
    finally:
        time.sleep(1)
        stop_stack(procs)
    per_job = {name: (after[name] - before[name]) * 1000 / max(ok, 1) for name in before}
    return {"lat": latencies, "ok": ok, "failed": failed, "ids": ids, "rate": ok / elapsed, "cpu": per_job}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=1)  # make run's default: one job worker per host
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"))
    parser.add_argument("--modes", default="tenant,never")
    parser.add_argument("--runtime", default="python", choices=sorted(BODIES))
    args = parser.parse_args()
    django_setup(args.redis_url)
    from accounts.services import api_key_issue, tenant_create
    from lambdasite.redis_client import get_redis

    get_redis().flushdb()
    tenant = tenant_create(slug=f"bench-{uuid.uuid4().hex[:8]}")
    quota = tenant.quota
    quota.max_concurrency, quota.submissions_per_minute, quota.monthly_gb_seconds = 64, 1_000_000, 1e9
    quota.save()
    key = api_key_issue(tenant=tenant, name="bench", operator=True).plaintext

    results = {}
    for mode in args.modes.split(","):
        r = run_mode(mode, args, key)
        results[mode] = r
        lat = r["lat"]
        print(
            f"{args.runtime} SANDBOX_REUSE={mode:<6} clients={args.clients} workers={args.workers}: "
            f"p50={statistics.median(lat):.1f} ms p95={pct(lat, 95):.1f} ms p99={pct(lat, 99):.1f} ms  "
            f"{r['rate']:.1f} jobs/s  ({r['ok']} ok, {r['failed']} not finished within the wait)"
        )
        cpu = r["cpu"]
        named = sum(v for k, v in cpu.items() if k != "machine")
        print(
            "    CPU per job (ms): "
            + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items() if k != "machine")
            + f", other (bench clients, kernel) {max(0.0, cpu['machine'] - named):.1f}; all "
            f"{cpu['machine']:.1f} ms"
            + f" = a ceiling of ~{os.cpu_count() * 1000 / max(cpu['machine'], 1e-9):.0f} jobs/s "
            f"on {os.cpu_count()} cores"
        )
    time.sleep(5)
    accepted, finished = job_counts(tenant)
    print(
        f"accepted {accepted}, finished {finished}, lost {accepted - finished} (jobs "
        f"still running when a stack stopped are finished by the next)"
    )
    if "tenant" in results and "never" in results:
        t, n = results["tenant"], results["never"]
        print(
            f"warm cells vs a container per job: {t['rate'] / max(n['rate'], 1e-9):.1f}x throughput, "
            f"p50 {statistics.median(n['lat']) / statistics.median(t['lat']):.1f}x lower"
        )
    print("targets: p50 <= 30 ms, p99 <= 150 ms, >= 150 jobs/s with reuse; nothing lost")


if __name__ == "__main__":
    main()
