"""Dispatch: the row is committed before its id reaches Redis, and a crash in between loses nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from jobs.models import Job
from jobs.services import dispatch, reconcile
from jobs.services.submit import JobSpec, job_submit
from jobs.tests.support import QUICK
from lambdasite.redis_client import get_queue

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]


def submit(persona, **overrides) -> Job:
    spec = JobSpec(**{"runtime": "python", "code": "def main():\n    return 1\n", **overrides})
    return job_submit(tenant=persona.tenant, api_key=persona.api_key, spec=spec)[0]


def test_submit_enqueues_only_after_commit(alice):
    queue = get_queue()
    job = submit(alice)
    assert queue.count == 1
    assert queue.jobs[0].args == (str(job.id),)
    assert Job.objects.get(pk=job.id).status == "dispatched"


def test_a_crash_between_commit_and_enqueue_loses_nothing(alice, run_worker, fast_retries, monkeypatch):
    def redis_gone(*args, **kwargs):
        raise ConnectionError("the process died before it could enqueue")

    monkeypatch.setattr(dispatch, "get_queue", redis_gone)
    response = alice.post_job(QUICK)
    assert response.status_code == 202  # accepted: the row is committed even though Redis never saw it
    job_id = response.json()["id"]
    # marked dispatched in the submit's transaction, but its id never reached Redis
    assert Job.objects.get(pk=job_id).status == "dispatched"
    assert get_queue().count == 0
    monkeypatch.undo()
    # the reconciler enqueues a dispatched job missing from Redis once REDISPATCH_AFTER_S has passed
    reconcile.reconcile(now=timezone.now() + timedelta(seconds=settings.REDISPATCH_AFTER_S + 1))
    assert get_queue().count == 1
    run_worker()
    assert Job.objects.get(pk=job_id).status == "succeeded"
