"""What must always hold of jobs, attempts and log lines is enforced by PostgreSQL itself."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs.models import Attempt, Job, LogLine
from jobs.services.submit import JobSpec, job_submit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def job(alice) -> Job:
    return job_submit(tenant=alice.tenant, api_key=alice.api_key, spec=JobSpec(runtime="python", code="x"))[0]


def refused(**changes) -> bool:
    """Whether PostgreSQL refuses the update (applied to the job given as ``job``)."""
    model, pk = changes.pop("model", Job), changes.pop("pk")
    try:
        with transaction.atomic():
            model.objects.filter(pk=pk).update(**changes)
    except IntegrityError:
        return True
    return False


def test_a_job_is_never_lost_its_attempts_are(job):
    assert refused(pk=job.pk, status="lost")
    assert refused(pk=job.pk, status="bogus")
    assert not refused(pk=job.pk, status="dead")


def test_timestamps_and_counters_stay_consistent(job):
    now = timezone.now()
    assert refused(pk=job.pk, started_at=now, finished_at=now - timedelta(seconds=1))
    assert not refused(pk=job.pk, started_at=now, finished_at=now)
    assert refused(pk=job.pk, attempts=1, retry_base=2)
    assert refused(pk=job.pk, gb_seconds=-0.1)
    assert refused(pk=job.pk, duration_ms=-1.0)
    assert refused(pk=job.pk, timeout_ms=0)


def test_attempts_and_log_lines_too(job):
    now = timezone.now()
    attempt = Attempt.objects.create(job=job, number=1, started_at=now, status="running")
    assert refused(model=Attempt, pk=attempt.pk, status="queued")  # a job status, not an attempt's
    assert not refused(model=Attempt, pk=attempt.pk, status="lost")
    assert refused(model=Attempt, pk=attempt.pk, finished_at=now - timedelta(seconds=1))
    assert refused(model=Attempt, pk=attempt.pk, cpu_ms=-5.0)
    assert refused(model=Attempt, pk=attempt.pk, number=0)
    line = LogLine.objects.create(job=job, attempt=1, seq=1, stream="stdout", ts=now, text="x")
    assert refused(model=LogLine, pk=line.pk, seq=0)
