"""Durable runs benchmark, one run (real Docker, PostgreSQL, Redis; workers in this process). By hand:

    .venv/bin/python bench/workflows.py [--steps 1000] [--sleeps 20] [--children 100] [--workers 2]

Prints, with the machine's load before and after:
1. the overhead of one recorded no-op step while the run stays resident, as the code sees it (from
   ``ctx.step`` called to its answer: the record over the runner's channel, its row committed
   synchronously in PostgreSQL, the answer back), p50/p95 over a run of --steps steps, and that run's
   whole time;
2. one suspension and resume: a run of --sleeps short sleeps, each execution stopping at its sleep,
   the timer fired at once by a reconciler pass, the run dispatched, claimed and replayed again; the
   time per cycle, without the sleep itself;
3. a map of --children trivial children of a deployed function, end to end: from submit to the
   parent's result, --workers threads taking jobs from the Redis queue as workers do;
4. the same step loop without durability (a plain loop in a plain job), for comparison.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lambdasite.settings")
os.environ.setdefault("REDIS_URL", os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"))

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.services import tenant_create  # noqa: E402
from functions.services import deploy  # noqa: E402
from jobs.execution import job_execute  # noqa: E402
from jobs.models import Job, Status  # noqa: E402
from jobs.services.reconcile import reconcile  # noqa: E402
from jobs.services.submit import JobSpec, job_submit  # noqa: E402
from jobs.worker import sandbox_configure  # noqa: E402
from lambdasite.redis_client import get_queue, get_redis  # noqa: E402

STEPS = """
import time

def main(ctx, n):
    took = []
    for i in range(n):
        t0 = time.perf_counter()
        ctx.step("s%d" % i, lambda: None)
        took.append((time.perf_counter() - t0) * 1000)
    return took
"""
PLAIN = """
import time

def main(n):
    took = []
    for i in range(n):
        t0 = time.perf_counter()
        (lambda: None)()
        took.append((time.perf_counter() - t0) * 1000)
    return took
"""
SLEEPS = """
def main(ctx, n):
    for i in range(n):
        ctx.sleep("z%d" % i, 60)
    return n
"""
FAN_OUT = """
def main(ctx, n):
    return sum(ctx.map("fan", "noop", list(range(n))))
"""
NOOP = "def main(x):\n    return x\n"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def fmt(values: list[float]) -> str:
    return f"p50 {statistics.median(values):.2f} ms, p95 {pct(values, 95):.2f} ms (n={len(values)})"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def setup_tenant():
    tenant = tenant_create(slug=f"bench-wf-{uuid.uuid4().hex[:6]}")
    quota = tenant.quota
    quota.max_concurrency, quota.submissions_per_minute, quota.monthly_gb_seconds = 16, 1_000_000, 1e9
    quota.max_timeout_ms, quota.max_steps_per_run = 60_000, 100_000
    quota.save()
    return tenant


def submit(tenant, code: str, args: list, durable: bool = True) -> Job:
    spec = JobSpec(runtime="python", code=code, args=args, durable=durable, timeout_ms=60_000)
    return job_submit(tenant=tenant, api_key=None, spec=spec)[0]


def run_once(job: Job) -> Job:
    job_execute(job_id=job.id)
    return Job.objects.get(pk=job.id)


def warm(tenant) -> None:
    for durable in (True, False):
        run_once(submit(tenant, STEPS if durable else PLAIN, [5], durable))


def resident_steps(tenant, n: int) -> None:
    t0 = time.perf_counter()
    job = run_once(submit(tenant, STEPS, [n]))
    total = (time.perf_counter() - t0) * 1000
    assert job.status == Status.SUCCEEDED, job.error
    plain = run_once(submit(tenant, PLAIN, [n], durable=False))
    print(f"1. a recorded no-op step, the run resident ({n} steps in one execution):")
    print(f"   per step as the code sees it: {fmt(job.result)}")
    print(f"   the whole run: {total:.0f} ms submit to result ({job.duration_ms:.0f} ms in the sandbox)")
    print(f"4. the same loop without durability: {fmt(plain.result)}")


def suspensions(tenant, n: int) -> None:
    job = submit(tenant, SLEEPS, [n])
    cycles = []
    far = timezone.now() + timedelta(days=1)
    run_once(job)  # its first execution, to its first sleep
    while True:
        t0 = time.perf_counter()
        reconcile(now=far)  # the timer fires now: the sleep itself is not what is measured
        job = run_once(job)
        cycles.append((time.perf_counter() - t0) * 1000)
        if job.status != Status.WAITING:
            break
    assert job.status == Status.SUCCEEDED, (job.status, job.error)
    print(f"2. one suspension and resume ({n} sleeps: timer fired, queued, dispatched, claimed, replayed):")
    print(f"   per cycle: {fmt(cycles)}")


class Workers:
    """``count`` threads taking jobs from the Redis queue and running them, as job workers do."""

    def __init__(self, count: int) -> None:
        self.redis, self.queue_key = get_redis(), get_queue().key
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(count)]
        for thread in self.threads:
            thread.start()

    def _work(self) -> None:
        try:
            while not self.stop.is_set():
                popped = self.redis.lpop(self.queue_key)
                if popped is None:
                    time.sleep(0.002)
                    continue
                job_execute(job_id=popped.decode().rsplit("-", 1)[0])
        finally:
            connection.close()

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def until_finished(job_ids) -> None:
    while Job.objects.filter(pk__in=job_ids, status__in=[Status.SUCCEEDED, Status.FAILED]).count() < len(
        job_ids
    ):
        time.sleep(0.005)


def fan_out(tenant, n: int, workers: int) -> None:
    from functions.services.invoke import function_invoke

    deploy.function_create(
        tenant=tenant, user=None, name="noop", runtime="python", spec=deploy.VersionSpec(code=NOOP)
    )
    get_redis().delete(get_queue().key)
    pool = Workers(workers)
    try:
        # the same children without a parent: as many plain invocations, submitted at once
        t0 = time.perf_counter()
        until_finished(
            [function_invoke(tenant=tenant, api_key=None, name="noop", args=[i])[0].id for i in range(n)]
        )
        plain = time.perf_counter() - t0
        t0 = time.perf_counter()
        parent = submit(tenant, FAN_OUT, [n])
        until_finished([parent.id])
        elapsed = time.perf_counter() - t0
    finally:
        pool.close()
    parent = Job.objects.get(pk=parent.id)
    assert parent.result == sum(range(n)), (parent.status, parent.error)
    runs = sorted(Job.objects.filter(parent=parent).values_list("duration_ms", flat=True))
    print(f"3. a map of {n} trivial children, submit to the parent's result ({workers} worker threads):")
    print(f"   {elapsed:.2f} s end to end; a child ran p50 {statistics.median(runs):.1f} ms in its cell")
    print(f"   the same {n} invocations submitted at once without a parent: {plain:.2f} s to the last result")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--sleeps", type=int, default=20)
    parser.add_argument("--children", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(f"before: {load()}")
    pool = sandbox_configure()
    try:
        tenant = setup_tenant()
        warm(tenant)
        resident_steps(tenant, args.steps)
        suspensions(tenant, args.sleeps)
        fan_out(tenant, args.children, args.workers)
    finally:
        pool.close()
    print(f"after: {load()}")


if __name__ == "__main__":
    main()
