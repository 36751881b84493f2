"""Chaos benchmark: submit N jobs while killing a random worker every few seconds and restarting Redis once.

    .venv/bin/python bench/chaos.py [--jobs 2000] [--workers 2] [--kill-every 3] [--job-ms 20]

Runs against the database of DATABASE_URL (a fresh tenant per run) and a private
redis-server it starts on a free port (so the restart harms nothing else). Workers
and the reconciler are real `manage.py` processes. Prints jobs accepted, terminal,
lost (must be 0), visible duplicates (must be 0), and p50/p99 of the time from a
kill to the completion of the jobs that the killed worker was running.
"""

from __future__ import annotations

import argparse
import atexit
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.e2e import django_setup, free_port  # noqa: E402

# short leases and fast repair: a killed worker's jobs come back within seconds
STACK_ENV = {
    "LEASE_S": "3",
    "LEASE_RENEW_S": "0.5",
    "RECONCILE_INTERVAL_S": "0.5",
    "REDISPATCH_AFTER_S": "2",
    "SANDBOX_SPARES": "0",
    "SANDBOX_SWEEP_INTERVAL_S": "2",
}


def start_redis(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            shutil.which("redis-server"),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    raise SystemExit("private redis did not start")


class ChaosStack:
    """The private Redis, the reconciler and the workers: what the killer thread kills and restarts."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.redis = start_redis(port)
        self.procs: dict[str, subprocess.Popen] = {}
        self.env: dict[str, str] = {}
        self.log_dir = ROOT / "var"

    def start(self, workers: int) -> None:
        self.env = {**os.environ, **STACK_ENV}
        self.log_dir.mkdir(exist_ok=True)
        atexit.register(self.stop)
        self.spawn("reconciler", "scheduler")
        for i in range(workers):
            self.spawn(f"worker-{i}", "worker")

    def spawn(self, name: str, command: str) -> None:
        self.procs[name] = subprocess.Popen(
            [sys.executable, "manage.py", command],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.log_dir / f"bench-chaos-{name}.log", "a"),
        )

    def kill_a_worker(self) -> tuple[float, str, list]:
        """SIGKILL a random worker and start it again: when, its name, and the jobs it was running."""
        from jobs.models import Job

        name = random.choice([n for n in self.procs if n.startswith("worker")])
        proc = self.procs[name]
        worker_tag = f":{proc.pid}"
        running = list(
            Job.objects.filter(status="running", worker__endswith=worker_tag).values_list("id", flat=True)
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_at = time.time()
        self.spawn(name, "worker")
        return killed_at, name, running

    def restart_redis(self) -> None:
        """Kill Redis and start an empty one on the same port."""
        self.redis.kill()
        self.redis.wait()
        self.redis = start_redis(self.port)

    def stop(self) -> None:  # also when the bench itself fails: no worker may outlive it
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
        self.redis.kill()


def main() -> None:
    args = parse_args()
    port = free_port()
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    stack = ChaosStack(port)
    django_setup(f"redis://127.0.0.1:{port}/0")
    tenant = chaos_tenant()
    stack.start(args.workers)
    ids: list = []
    kills: list[tuple[float, str, list]] = []  # (time, worker name, job ids it was running)
    stop = threading.Event()
    t0 = time.time()
    killer_thread = threading.Thread(target=killer, args=(stack, args, ids, kills, stop), daemon=True)
    killer_thread.start()
    accepted = submit_all(tenant, args, ids)
    print(f"submitted {accepted} jobs in {time.time() - t0:.1f} s; waiting for them to finish")
    wait_for_jobs(tenant, accepted, args.timeout)
    stop.set()
    killer_thread.join(timeout=30)
    elapsed = time.time() - t0
    report(args, tally(tenant, ids, kills), accepted, len(kills), elapsed)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-every", type=float, default=3.0)
    parser.add_argument("--job-ms", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=300.0)
    return parser.parse_args()


def chaos_tenant():
    from accounts.services import tenant_create

    tenant = tenant_create(slug=f"chaos-{uuid.uuid4().hex[:8]}")
    tenant.quota.max_concurrency = 1000
    tenant.quota.submissions_per_minute = 1_000_000  # the bench measures delivery, not the rate limit
    tenant.quota.save()
    return tenant


def killer(stack: ChaosStack, args, ids: list, kills: list, stop: threading.Event) -> None:
    """Every --kill-every seconds a worker dies; once, half-way through the submissions, Redis too."""
    restarted_redis = False
    while not stop.wait(args.kill_every):
        kills.append(stack.kill_a_worker())
        if not restarted_redis and len(ids) >= args.jobs // 2:
            stack.restart_redis()
            restarted_redis = True
            print(f"  redis restarted (empty) after {len(ids)} submissions")


def submit_all(tenant, args, ids: list) -> int:
    """Submit --jobs jobs in-process, each returning its index; their ids go to ids."""
    from jobs.services.submit import JobSpec, job_submit

    code = f"import time\ndef main(i):\n    time.sleep({args.job_ms / 1000})\n    return i\n"
    accepted = 0
    for i in range(args.jobs):
        while True:
            try:
                job, _ = job_submit(
                    tenant=tenant,
                    api_key=None,
                    spec=JobSpec(runtime="python", code=code, args=[i], max_retries=0),
                )
                break
            except redis.exceptions.ConnectionError:
                time.sleep(
                    0.1
                )  # Redis restarting: nothing was accepted; the API answers 503, a client retries
        ids.append(job.id)
        accepted += 1
        if i % 50 == 0:
            time.sleep(0.05)  # spread submissions over the kills
    return accepted


def wait_for_jobs(tenant, accepted: int, timeout: float) -> None:
    from jobs.models import FINISHED, Job

    deadline = time.time() + timeout
    while time.time() < deadline:
        if Job.objects.filter(tenant=tenant, status__in=FINISHED).count() == accepted:
            break
        time.sleep(0.5)


def tally(tenant, ids: list, kills: list) -> dict:
    """What became of the tenant's jobs, and how long the killed workers' jobs took to finish."""
    from django.db.models import Count, Q

    from jobs.models import FINISHED, Attempt, Job

    jobs = Job.objects.filter(tenant=tenant)
    succeeded = jobs.filter(status="succeeded")
    counts = {
        "terminal": jobs.filter(status__in=FINISHED).count(),
        "succeeded": succeeded.count(),
        "duplicates": jobs.annotate(ok=Count("attempt_set", filter=Q(attempt_set__status="succeeded")))
        .filter(ok__gt=1)
        .count(),
        "wrong": sum(
            1 for job_id, result in succeeded.values_list("id", "result") if result != ids.index(job_id)
        ),
        "recoveries": [],
    }
    for at, _, running in kills:
        for job_id in running:
            finished = Job.objects.filter(pk=job_id).values_list("finished_at", flat=True).first()
            if finished:
                counts["recoveries"].append(finished.timestamp() - at)
    counts["lost_attempts"] = Attempt.objects.filter(job__tenant=tenant, status="lost").count()
    return counts


def report(args, counts: dict, accepted: int, kills: int, elapsed: float) -> None:
    terminal, recoveries = counts["terminal"], counts["recoveries"]
    print(f"\nworkers={args.workers} kills={kills} job={args.job_ms} ms, {elapsed:.1f} s in all")
    print(f"accepted   {accepted}")
    print(f"terminal   {terminal}  (succeeded {counts['succeeded']})")
    print(f"lost       {accepted - terminal}  (must be 0)")
    print(f"duplicates {counts['duplicates']}  (jobs with more than one visible success; must be 0)")
    print(f"wrong results {counts['wrong']}")
    print(f"attempts lost to kills {counts['lost_attempts']}")
    if recoveries:
        q = statistics.quantiles(recoveries, n=100) if len(recoveries) > 1 else [recoveries[0]] * 99
        print(
            f"kill -> affected job done: p50 {statistics.median(recoveries):.2f} s  p99 "
            f"{q[98]:.2f} s  (n={len(recoveries)})"
        )


if __name__ == "__main__":
    main()
