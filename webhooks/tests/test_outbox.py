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


def test_whether_a_tenant_wants_events_is_one_read_for_every_tenant_at_most_two_seconds_old(
    alice, bob, django_assert_num_queries, monkeypatch
):
    """Every outcome asks; with hundreds of tenants active a per-tenant answer missed every time. One
    read answers for all tenants until it is WANTS_TTL_S old: an endpoint made elsewhere gets the
    events of outcomes committed within that, one made by this process at once (``forget``)."""
    from lambdasite.caching import Cache

    now = [0.0]
    monkeypatch.setattr(outbox, "_wanting", Cache(max_age_s=outbox.WANTS_TTL_S, clock=lambda: now[0]))
    WebhookEndpoint.objects.create(tenant=alice.tenant, url="https://example.com/h", secret="whsec_x")
    with django_assert_num_queries(1):
        assert outbox.tenant_wants_events(alice.tenant.id) and not outbox.tenant_wants_events(bob.tenant.id)
    WebhookEndpoint.objects.create(tenant=bob.tenant, url="https://example.com/b", secret="whsec_y")
    now[0] = outbox.WANTS_TTL_S - 0.01
    assert not outbox.tenant_wants_events(bob.tenant.id)  # made by another process: not seen yet ...
    now[0] = outbox.WANTS_TTL_S
    assert outbox.tenant_wants_events(bob.tenant.id)  # ... and seen once the answer is 2 s old
    WebhookEndpoint.objects.filter(tenant=alice.tenant).update(enabled=False)
    outbox.forget(alice.tenant.id)  # this process disabled it: asks again at once
    assert not outbox.tenant_wants_events(alice.tenant.id) and outbox.tenant_wants_events(bob.tenant.id)
