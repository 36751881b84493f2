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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-every", type=float, default=3.0)
    parser.add_argument("--job-ms", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()

    port = free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    os.environ["REDIS_URL"] = redis_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lambdasite.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    redis_proc = start_redis(port)
    nonlocal_redis = [redis_proc]  # the current Redis (the killer restarts it once)

    import django

    django.setup()
    from django.db.models import Count, Q

    from accounts.services import tenant_create
    from jobs.models import FINISHED, Attempt, Job
    from jobs.services.submit import JobSpec, job_submit

    tenant = tenant_create(slug=f"chaos-{uuid.uuid4().hex[:8]}")
    tenant.quota.max_concurrency = 1000
    tenant.quota.submissions_per_minute = 1_000_000  # the bench measures delivery, not the rate limit
    tenant.quota.save()
    env = {
        **os.environ,
        "LEASE_S": "3",
        "LEASE_RENEW_S": "0.5",
        "RECONCILE_INTERVAL_S": "0.5",
        "REDISPATCH_AFTER_S": "2",
        "SANDBOX_SPARES": "0",
        "SANDBOX_SWEEP_INTERVAL_S": "2",
    }
    procs: dict[str, subprocess.Popen] = {}
    log_dir = ROOT / "var"
    log_dir.mkdir(exist_ok=True)

    def spawn(name: str, command: str) -> None:
        procs[name] = subprocess.Popen(
            [sys.executable, "manage.py", command],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(log_dir / f"bench-chaos-{name}.log", "a"),
        )

    def stop_everything() -> None:  # also when the bench itself fails: no worker may outlive it
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
        nonlocal_redis[0].kill()

    atexit.register(stop_everything)
    spawn("reconciler", "scheduler")
    for i in range(args.workers):
        spawn(f"worker-{i}", "worker")

    code = f"import time\ndef main(i):\n    time.sleep({args.job_ms / 1000})\n    return i\n"
    ids: list = []
    kills: list[tuple[float, str, list]] = []  # (time, worker pid, job ids it was running)
    stop = threading.Event()

    def killer() -> None:
        restarted_redis = False
        while not stop.wait(args.kill_every):
            name = random.choice([n for n in procs if n.startswith("worker")])
            proc = procs[name]
            worker_tag = f":{proc.pid}"
            running = list(
                Job.objects.filter(status="running", worker__endswith=worker_tag).values_list("id", flat=True)
            )
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills.append((time.time(), name, running))
            spawn(name, "worker")
            if not restarted_redis and len(ids) >= args.jobs // 2:
                nonlocal_redis[0].kill()
                nonlocal_redis[0].wait()
                nonlocal_redis[0] = start_redis(port)
                restarted_redis = True
                print(f"  redis restarted (empty) after {len(ids)} submissions")

    t0 = time.time()
    killer_thread = threading.Thread(target=killer, daemon=True)
    killer_thread.start()
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
    print(f"submitted {accepted} jobs in {time.time() - t0:.1f} s; waiting for them to finish")

    deadline = time.time() + args.timeout
    while time.time() < deadline:
        if Job.objects.filter(tenant=tenant, status__in=FINISHED).count() == accepted:
            break
        time.sleep(0.5)
    stop.set()
    killer_thread.join(timeout=30)
    elapsed = time.time() - t0

    terminal = Job.objects.filter(tenant=tenant, status__in=FINISHED).count()
    succeeded = Job.objects.filter(tenant=tenant, status="succeeded").count()
    duplicates = (
        Job.objects.filter(tenant=tenant)
        .annotate(ok=Count("attempt_set", filter=Q(attempt_set__status="succeeded")))
        .filter(ok__gt=1)
        .count()
    )
    wrong = sum(
        1
        for job_id, result in Job.objects.filter(tenant=tenant, status="succeeded").values_list(
            "id", "result"
        )
        if result != ids.index(job_id)
    )
    recoveries = []
    for at, _, running in kills:
        for job_id in running:
            finished = Job.objects.filter(pk=job_id).values_list("finished_at", flat=True).first()
            if finished:
                recoveries.append(finished.timestamp() - at)
    lost_attempts = Attempt.objects.filter(job__tenant=tenant, status="lost").count()

    print(f"\nworkers={args.workers} kills={len(kills)} job={args.job_ms} ms, {elapsed:.1f} s in all")
    print(f"accepted   {accepted}")
    print(f"terminal   {terminal}  (succeeded {succeeded})")
    print(f"lost       {accepted - terminal}  (must be 0)")
    print(f"duplicates {duplicates}  (jobs with more than one visible success; must be 0)")
    print(f"wrong results {wrong}")
    print(f"attempts lost to kills {lost_attempts}")
    if recoveries:
        q = statistics.quantiles(recoveries, n=100) if len(recoveries) > 1 else [recoveries[0]] * 99
        print(
            f"kill -> affected job done: p50 {statistics.median(recoveries):.2f} s  p99 "
            f"{q[98]:.2f} s  (n={len(recoveries)})"
        )


if __name__ == "__main__":
    main()
