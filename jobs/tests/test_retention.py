"""Bounded storage: finished jobs past their tenant's retention go, with their attempts and log lines,
in small batches; waiting and running jobs, recent jobs and tenants that keep everything stay."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from jobs.models import Attempt, Job, LogLine
from jobs.services.retention import jobs_purge

pytestmark = pytest.mark.django_db


def _job(persona, *, status="succeeded", age_days=0.0, lines=2):
    finished = timezone.now() - timedelta(days=age_days)
    job = Job.objects.create(
        tenant=persona.tenant, runtime="python", code="x", status=status, timeout_ms=1000, memory_mb=128,
        attempts=1, started_at=finished if status != "queued" else None,
        finished_at=finished if status in ("succeeded", "failed", "dead", "cancelled") else None,
    )  # fmt: skip
    Attempt.objects.create(job=job, number=1, worker="w", started_at=finished, status="succeeded")
    LogLine.objects.bulk_create(
        LogLine(job=job, attempt=1, seq=i + 1, stream="stdout", ts=finished, text=f"line {i}")
        for i in range(lines)
    )
    return job


def test_only_finished_jobs_past_the_retention_go_with_their_attempts_and_lines(alice, bob):
    old = [_job(alice, age_days=31), _job(alice, status="dead", age_days=40)]
    keep = [
        _job(alice, age_days=29),  # recent
        _job(alice, status="running", age_days=90),  # not finished, however old
        _job(alice, status="queued", age_days=90),
    ]
    bob.tenant.quota.retention_days = 0  # keeps everything
    bob.tenant.quota.save()
    keep.append(_job(bob, age_days=400))

    counted = jobs_purge(dry_run=True)
    assert (counted.jobs, counted.attempts, counted.log_lines) == (2, 2, 4)
    assert Job.objects.count() == 6  # a dry run deletes nothing

    purged = jobs_purge()
    assert (purged.jobs, purged.attempts, purged.log_lines) == (2, 2, 4)
    assert purged.by_tenant == {"acme": 2}
    assert set(Job.objects.values_list("pk", flat=True)) == {j.pk for j in keep}
    assert not Attempt.objects.filter(job_id__in=[j.pk for j in old]).exists()
    assert not LogLine.objects.filter(job_id__in=[j.pk for j in old]).exists()


def test_the_purge_goes_in_batches_and_stops_at_its_budget(alice):
    for _ in range(7):
        _job(alice, age_days=60, lines=0)
    first = jobs_purge(batch=3, max_batches=2)
    assert first.jobs == 6 and Job.objects.count() == 1  # the next pass takes the rest
    assert jobs_purge(batch=3, max_batches=2).jobs == 1 and not Job.objects.exists()


def test_a_schedule_run_keeps_its_row_when_its_job_is_purged(alice):
    from functions.models import Function
    from schedules.models import Schedule, ScheduleRun

    job = _job(alice, age_days=60)
    function = Function.objects.create(tenant=alice.tenant, name="f", runtime="python")
    schedule = Schedule.objects.create(
        tenant=alice.tenant, name="nightly", cron="0 2 * * *", function=function, enabled=False
    )
    run = ScheduleRun.objects.create(schedule=schedule, tick_at=job.finished_at, status="fired", job=job)
    assert jobs_purge().jobs == 1
    run.refresh_from_db()
    assert run.job_id is None


def test_a_durable_run_goes_with_its_steps_and_its_children_keep_their_rows(alice):
    from jobs.models import Step

    run = _job(alice, age_days=60)
    Step.objects.create(job=run, seq=1, name="a", kind="step", status="succeeded", started_at=run.finished_at)
    child = _job(alice, age_days=1)
    Job.objects.filter(pk=child.pk).update(parent=run, parent_step=1, child_index=0)
    assert jobs_purge().jobs == 1
    assert not Step.objects.exists()
    child.refresh_from_db()
    assert child.parent_id is None


def test_manage_py_purge_dry_run_shows_what_would_go(alice):
    _job(alice, age_days=45)
    out = StringIO()
    call_command("purge", "--dry-run", stdout=out)
    assert (
        "would delete 1 jobs, 1 attempts, 2 log lines" in out.getvalue() and "acme: 1 jobs" in out.getvalue()
    )
    assert Job.objects.count() == 1
    call_command("purge", stdout=StringIO())
    assert Job.objects.count() == 0
