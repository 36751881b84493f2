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
    assert queue.jobs[0].args == (str(job.id), job.memory_mb)  # its memory: for the worker's admission
    assert Job.objects.get(pk=job.id).status == "dispatched"


def test_a_crash_between_commit_and_enqueue_loses_nothing(alice, run_worker, fast_retries, monkeypatch):
    def redis_gone(*args, **kwargs):
        raise ConnectionError("the process died before it could enqueue")

    monkeypatch.setattr(dispatch, "pool_queue", redis_gone)
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


def test_the_lean_enqueue_writes_what_rq_itself_writes(redis_conn):
    """dispatch.enqueue writes RQ's job hash without building an RQ Job: RQ must read it back exactly
    as one that Queue.enqueue wrote (an RQ upgrade that changes the format fails here)."""
    import uuid

    from rq.job import Job as RQJob

    queue = get_queue()
    ours = Job(id=uuid.uuid4(), attempts=0, timeout_ms=5000, memory_mb=256)
    retried = Job(id=uuid.uuid4(), attempts=2, timeout_ms=65000, memory_mb=128)
    dispatch.enqueue(ours)
    dispatch.enqueue(retried, at_front=True)
    theirs_id = str(uuid.uuid4())
    queue.enqueue(
        dispatch.TASK,
        theirs_id,
        256,
        job_id=dispatch.rq_job_id(theirs_id, 1),
        job_timeout=125,
        result_ttl=0,
        failure_ttl=3600,
        description=f"lambdasite job {theirs_id}",
    )
    lean = RQJob.fetch(dispatch.rq_job_id(ours.id, 1), connection=queue.connection)
    rqs = RQJob.fetch(dispatch.rq_job_id(theirs_id, 1), connection=queue.connection)

    def seen(job):
        return (
            job.func_name, job.instance, job.kwargs, job.timeout, job.result_ttl, job.failure_ttl,
            job.origin, job.get_status(refresh=True), job.enqueued_at is not None, job.created_at is not None,
        )  # fmt: skip

    assert seen(lean) == seen(rqs)
    # the memory limit rides along, for the worker's admission before its claim
    assert lean.args == (str(ours.id), 256) and rqs.args == (theirs_id, 256)
    assert lean.description == f"lambdasite job {ours.id}"
    assert set(redis_conn.hkeys(lean.key)) == set(redis_conn.hkeys(rqs.key))  # the same fields, no more
    # the retry went to the front, the first job and RQ's own behind it, and the queue is registered
    assert queue.get_job_ids() == [
        dispatch.rq_job_id(retried.id, 3),
        dispatch.rq_job_id(ours.id, 1),
        dispatch.rq_job_id(theirs_id, 1),
    ]
    assert RQJob.fetch(dispatch.rq_job_id(retried.id, 3), connection=queue.connection).timeout == 185
    assert queue.key.encode() in redis_conn.smembers(queue.redis_queues_keys)
