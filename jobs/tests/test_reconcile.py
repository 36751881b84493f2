"""The reconciler: what Redis lost is dispatched again, what it still holds is not dispatched twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import Job
from jobs.services import reconcile
from jobs.tests.support import QUICK
from lambdasite.redis_client import get_queue

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]


def later(seconds: float):
    """The reconciler's clock, moved past REDISPATCH_AFTER_S (0.5 s with fast_retries) without waiting."""
    return timezone.now() + timedelta(seconds=seconds)


def test_flushall_with_jobs_waiting_loses_nothing(alice, run_worker, redis_conn, fast_retries):
    alice.tenant.quota.max_concurrency = 100  # every job in Redis when it is wiped
    alice.tenant.quota.save()
    ids = [alice.post_job(QUICK).json()["id"] for _ in range(10)]
    assert all(Job.objects.get(pk=i).status == "dispatched" for i in ids)
    redis_conn.flushall()
    assert reconcile.reconcile(now=later(0.6))["redispatched"] == 10
    run_worker()
    assert [Job.objects.get(pk=i).status for i in ids] == ["succeeded"] * 10


@pytest.mark.parametrize("marked_started", [False, True])
def test_a_worker_dying_between_pop_and_claim_loses_nothing(alice, run_worker, fast_retries, marked_started):
    """The lean worker leaves RQ's job hash saying "queued" when it pops; RQ's own worker said
    "started". Either way the id is gone from the queue and the job is dispatched again."""
    from rq.job import Job as RQJob
    from rq.job import JobStatus

    job_id = alice.post_job(QUICK).json()["id"]
    queue = get_queue()
    popped = queue.pop_job_id()  # a worker took it from Redis and died before claiming
    if marked_started:
        RQJob.fetch(popped, connection=queue.connection).set_status(JobStatus.STARTED)
    assert queue.count == 0 and Job.objects.get(pk=job_id).status == "dispatched"
    assert reconcile.reconcile(now=later(0.6))["redispatched"] == 1
    run_worker()
    assert Job.objects.get(pk=job_id).status == "succeeded"


def test_a_long_queue_is_not_dispatched_twice(alice, fast_retries):
    job_id = alice.post_job(QUICK).json()["id"]
    assert reconcile.reconcile(now=later(0.6))["redispatched"] == 0  # still queued in Redis
    assert get_queue().count == 1
    assert Job.objects.get(pk=job_id).status == "dispatched"
