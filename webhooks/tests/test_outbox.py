"""The outbox hears the transitions below it through their signals (connected in WebhooksConfig.ready):
an outcome writes its event in its own transaction, and an outcome rolled back leaves none."""

from __future__ import annotations

import pytest
from django.db import transaction

import sandbox
from jobs.models import Job
from jobs.services.actions import job_cancel
from jobs.services.lifecycle import job_claim, job_finish
from jobs.services.submit import JobSpec, job_submit
from webhooks import outbox
from webhooks.models import OutboxEvent, WebhookEndpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoint(alice):
    found = WebhookEndpoint.objects.create(
        tenant=alice.tenant,
        url="https://example.com/h",
        events=["job.succeeded", "job.cancelled"],
        secret="whsec_x",
    )
    outbox.forget(alice.tenant.id)
    return found


def submit(persona) -> Job:
    spec = JobSpec(runtime="python", code="def main():\n    return 1\n")
    return job_submit(tenant=persona.tenant, api_key=persona.api_key, spec=spec)[0]


def test_a_finish_writes_the_jobs_event(alice, endpoint):
    job = submit(alice)
    job_claim(job_id=job.id, worker="w")
    job_finish(job_id=job.id, attempt_number=1, result=sandbox.RunResult(status="succeeded"), log_lines=0)
    [event] = OutboxEvent.objects.all()
    assert (event.type, event.job_id, event.tenant_id) == ("job.succeeded", job.id, alice.tenant.id)


def test_a_cancel_rolled_back_leaves_no_event_and_a_committed_one_has_its_event(alice, endpoint):
    job = submit(alice)
    with pytest.raises(RuntimeError), transaction.atomic():
        job_cancel(job=job)
        assert OutboxEvent.objects.filter(type="job.cancelled").exists()  # written with the outcome
        raise RuntimeError("the outcome's transaction fails")
    assert not OutboxEvent.objects.exists() and Job.objects.get(pk=job.id).status == "dispatched"
    job_cancel(job=job)
    assert OutboxEvent.objects.get().type == "job.cancelled"
