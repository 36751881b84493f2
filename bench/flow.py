"""Slot filling on a realistic table (PostgreSQL only: no worker, no Docker). By hand, on a scratch
database that ``manage.py migrate`` made:

    DATABASE_URL=postgres://…/lambdasite_scratch .venv/bin/python bench/flow.py [--backlog 200000]

Builds, in one tenant each, a backlog of --backlog waiting jobs (copied in SQL from one submitted
job, then ANALYZEd):
- "plain": no function limits (the fast path);
- "limited": a function with max_concurrency 5 flooded with the backlog, a keyed function
  (concurrency_per_key 1) whose key "a" has the backlog and 1,000 other keys one job each, and
  1,000 inline jobs behind them (the general path).
Then, for each tenant, one slot at a time turns over (one dispatched job finished, the fill run) and
prints the fill's time (p50/p95 over --turns fills) and the plans (EXPLAIN ANALYZE) of its
statements. The tenants are deleted at the end."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lambdasite.settings")
os.environ.setdefault("REDIS_URL", os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"))

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import Tenant  # noqa: E402
from accounts.services import tenant_create  # noqa: E402
from functions.services.deploy import VersionSpec, function_create  # noqa: E402
from functions.services.flow import FlowSettings  # noqa: E402
from functions.services.invoke import function_invoke  # noqa: E402
from jobs.models import Job, Status  # noqa: E402
from jobs.services import dispatch, flow  # noqa: E402
from jobs.services.submit import JobSpec, job_submit  # noqa: E402
from jobs.slots import Slots  # noqa: E402

CODE = "def main(*args):\n    return 1\n"


def copies(template: Job, n: int, **override) -> None:
    """``n`` queued copies of ``template`` in one INSERT … SELECT (new ids and creation times)."""
    columns = [f.column for f in Job._meta.concrete_fields if f.column != "id"]
    values = {
        "status": "%(queued)s",
        "created_at": "now() + g * interval '1 microsecond'",
        "next_attempt_at": "now() - interval '1 second'",
        "dispatched_at": "NULL",
        "idempotency_key": "NULL",
        **{k: v for k, v in override.items()},
    }
    select = ", ".join(values.get(c, f"t.{c}") for c in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO jobs_job (id, {', '.join(columns)}) SELECT gen_random_uuid(), {select}"
            " FROM jobs_job t, generate_series(1, %(n)s) g WHERE t.id = %(id)s",
            {"n": n, "id": template.id, "queued": Status.QUEUED},
        )


def tenant(slug: str, cap: int) -> Tenant:
    t = tenant_create(slug=slug, name=slug)
    t.quota.max_concurrency, t.quota.submissions_per_minute, t.quota.deploys_per_minute = cap, 10**6, 1000
    t.quota.save()
    return t


def turnover(t: Tenant, turns: int) -> list[float]:
    """Finish one dispatched job and fill, ``turns`` times; -> each fill's ms."""
    took = []
    for _ in range(turns):
        job_id = Job.objects.filter(tenant=t, status=Status.DISPATCHED).values_list("id", flat=True).first()
        if job_id is not None:
            now = timezone.now()
            Job.objects.filter(pk=job_id).update(status=Status.SUCCEEDED, started_at=now, finished_at=now)
        start = time.perf_counter()
        dispatch.tenant_fill_slots(tenant_id=t.id)
        took.append((time.perf_counter() - start) * 1000)
    return took


def explain(sql: str, params: dict) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING ON, SUMMARY ON) " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def report(name: str, took: list[float]) -> None:
    took = sorted(took)
    p95 = took[int(len(took) * 0.95) - 1]
    print(f"{name}: fill p50 {statistics.median(took):.2f} ms, p95 {p95:.2f} ms over {len(took)} turnovers")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backlog", type=int, default=200_000)
    parser.add_argument("--turns", type=int, default=200)
    opts = parser.parse_args()
    run = uuid.uuid4().hex[:6]
    made = []
    try:
        plain = tenant(f"flow-plain-{run}", 100)
        made.append(plain)
        first = job_submit(tenant=plain, api_key=None, spec=JobSpec(runtime="python", code=CODE))[0]
        copies(first, opts.backlog)

        limited = tenant(f"flow-limited-{run}", 100)
        made.append(limited)
        for name, settings in (
            ("capped", FlowSettings(max_concurrency=5)),
            ("sync", FlowSettings(concurrency_key="$[0]", concurrency_per_key=1)),
        ):
            function_create(
                tenant=limited,
                user=None,
                name=name,
                runtime="python",
                spec=VersionSpec(code=CODE),
                flow=settings,
            )
        capped = function_invoke(tenant=limited, api_key=None, name="capped", args=[])[0]
        copies(capped, opts.backlog)
        keyed = function_invoke(tenant=limited, api_key=None, name="sync", args=["a"])[0]
        copies(keyed, opts.backlog)
        copies(keyed, 1000, concurrency_key="'k' || g")
        loose = job_submit(tenant=limited, api_key=None, spec=JobSpec(runtime="python", code=CODE))[0]
        copies(loose, 1000)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE jobs_job")
            cursor.execute("SELECT count(*) FROM jobs_job WHERE status = 'queued'")
            print(f"queued jobs in the table: {cursor.fetchone()[0]}")

        dispatch.tenant_fill_slots(tenant_id=plain.id)
        dispatch.tenant_fill_slots(tenant_id=limited.id)
        first_fill = Job.objects.filter(tenant=limited, status="dispatched").count()
        print(f"limited tenant after its first fill: {first_fill} dispatched (of 100)")
        report("plain (fast path)", turnover(plain, opts.turns))
        report("limited (general path)", turnover(limited, opts.turns))

        params = dispatch._fill_params(plain.id, timezone.now())
        inner = (
            "SELECT id FROM jobs_job WHERE tenant_id = %(tenant)s AND status = %(queued)s"
            " AND next_attempt_at <= %(now)s ORDER BY priority DESC, next_attempt_at, created_at LIMIT 100"
        )
        print("\n-- fast path's selection (100 free slots):\n" + explain(inner, params))
        params = dispatch._fill_params(limited.id, timezone.now())
        with connection.cursor() as cursor:
            statuses = {"dispatched": Status.DISPATCHED, "running": Status.RUNNING}
            slots = Slots.read(cursor, tenant_id=limited.id, cap=100, statuses=statuses)
            # as if the slots were free: every part of the candidates' statement runs
            slots.in_flight.clear()
            sql, values = flow._candidates_query(params, slots)
        print("\n-- general path's candidates:\n" + explain(sql, values))
    finally:
        for t in made:
            with connection.cursor() as cursor:
                cursor.execute("DELETE FROM jobs_job WHERE tenant_id = %s", [t.id])
            t.delete()


if __name__ == "__main__":
    main()
