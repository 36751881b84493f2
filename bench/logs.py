"""Log throughput: how fast a job's output travels from its process to stored rows. Run by hand:

    .venv/bin/python bench/logs.py [--mib 8]

For output of M MiB in lines of 80 bytes and of 2 bytes (``y\\n``), prints the rate
through the sandbox alone (relay and line splitting, nothing stored) and through the
worker's whole path (sandbox, LogWriter, PostgreSQL rows, live events), with the
bench tenant's log caps raised so nothing is dropped. Then, with the default caps,
the time a 3 s job flooding stdout and stderr takes to reach its verdict.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lambdasite.settings")

import django  # noqa: E402

django.setup()

import sandbox  # noqa: E402
from accounts.models import Tenant  # noqa: E402
from accounts.services import api_key_issue, tenant_create  # noqa: E402
from jobs.execution import job_execute  # noqa: E402
from jobs.models import Job, LogLine  # noqa: E402
from jobs.services.submit import JobSpec, job_submit  # noqa: E402
from jobs.worker import sandbox_configure  # noqa: E402

PRINT = (
    "import sys\ndef main(mib, width):\n    line = 'x' * (width - 1) + '\\n"
    "'\n    block = line * max(1, 65536 // width)\n    for _ in range((mib << 20) // "
    "len(block)):\n        sys.stdout.write(block)\n    return 'done'\n"
)
FLOOD = (
    "import sys\ndef main():\n    line = 'y\\n"
    "' * 4096\n    while True:\n        sys.stdout.write(line)\n        "
    "sys.stderr.write(line)\n"
)


def bench_tenant() -> Tenant:
    tenant = Tenant.objects.filter(slug="bench-logs").first() or tenant_create(slug="bench-logs")
    quota = tenant.quota
    quota.max_log_bytes, quota.max_log_lines, quota.submissions_per_minute = 512 << 20, 50_000_000, 100_000
    quota.max_timeout_ms = 120_000
    quota.save()
    return tenant


def sandbox_only(pool, mib: int, width: int) -> tuple[float, int]:
    count = [0]
    spec = sandbox.RunSpec(
        runtime="python",
        code=PRINT,
        args=[mib, width],
        tenant="bench-logs-sb",
        limits=sandbox.Limits(timeout_ms=120_000, max_log_bytes=512 << 20, max_log_lines=50_000_000),
    )
    t0 = time.monotonic()
    result = pool.run(spec, lambda lines: count.__setitem__(0, count[0] + len(lines)))
    assert result.status == "succeeded", result.error
    return time.monotonic() - t0, count[0]


def worker_path(tenant: Tenant, key, mib: int, width: int) -> tuple[float, int]:
    spec = JobSpec(runtime="python", code=PRINT, args=[mib, width], timeout_ms=120_000)
    job, _ = job_submit(tenant=tenant, api_key=key, spec=spec)
    t0 = time.monotonic()
    job_execute(job_id=job.id)
    elapsed = time.monotonic() - t0
    job = Job.objects.get(pk=job.id)
    assert job.status == "succeeded", job.error
    stored = LogLine.objects.filter(job=job).count()
    job.delete()
    return elapsed, stored


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=8)
    args = parser.parse_args()
    pool = sandbox_configure()
    tenant = bench_tenant()
    key = api_key_issue(tenant=tenant, name="bench", operator=True).api_key
    print(f"log throughput, {args.mib} MiB of output per job")
    print(f"{'path':<34}{'line':>6}{'seconds':>10}{'MiB/s':>9}{'lines/s':>12}{'lines':>10}")
    for width in (80, 2):
        for name, run in (
            ("sandbox only (nothing stored)", lambda w: sandbox_only(pool, args.mib, w)),
            ("worker: sandbox + PostgreSQL rows", lambda w: worker_path(tenant, key, args.mib, w)),
        ):
            run(width) if width == 80 and name.startswith(
                "sandbox"
            ) else None  # a warm cell for the first row
            seconds, lines = run(width)
            print(
                f"{name:<34}{width:>5}B{seconds:>10.2f}{args.mib / seconds:>9.1f}"
                f"{lines / seconds:>12,.0f}{lines:>10,}"
            )
    default = Tenant.objects.filter(slug="bench-logs-default").first() or tenant_create(
        slug="bench-logs-default"
    )
    for runtime_code in (FLOOD,):
        job, _ = job_submit(
            tenant=default,
            api_key=None,
            spec=JobSpec(runtime="python", code=runtime_code, timeout_ms=3000),
        )
        t0 = time.monotonic()
        job_execute(job_id=job.id)
        job = Job.objects.get(pk=job.id)
        print(
            f"3 s flood of stdout+stderr, default caps: {job.status} after {time.monotonic() - t0:.2f} s, "
            f"{LogLine.objects.filter(job=job).count():,} rows stored, "
            f"{job.dropped_log_bytes / (1 << 20):,.0f} MiB dropped"
        )
        job.delete()
    pool.close()


if __name__ == "__main__":
    main()
