"""Operators' admin: DLQ view, bulk requeue and cancel, DLQ depth per tenant."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from jobs.models import Job
from jobs.services.submit import JobSpec, job_submit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def operator(client):
    get_user_model().objects.create_superuser("op@example.com", "op@example.com", "pw")
    client.login(username="op@example.com", password="pw")
    return client


def test_dead_letters_can_be_requeued_in_bulk_and_counted_per_tenant(operator, alice):
    jobs = [
        job_submit(
            tenant=alice.tenant, api_key=None, spec=JobSpec(runtime="python", code="def main(): pass")
        )[0]
        for _ in range(3)
    ]
    Job.objects.filter(pk__in=[j.pk for j in jobs[:2]]).update(status="dead")
    page = operator.get("/admin/jobs/deadletter/")
    assert (
        page.status_code == 200
        and str(jobs[0].id) in page.content.decode()
        and str(jobs[2].id) not in page.content.decode()
    )
    tenants = operator.get("/admin/accounts/tenant/").content.decode()
    assert "DLQ depth" in tenants
    response = operator.post(
        "/admin/jobs/deadletter/",
        {"action": "requeue", "_selected_action": [str(j.pk) for j in jobs[:2]]},
        follow=True,
    )
    assert response.status_code == 200 and "2 job(s) requeued" in response.content.decode()
    assert set(Job.objects.filter(pk__in=[j.pk for j in jobs[:2]]).values_list("status", flat=True)) <= {
        "queued",
        "dispatched",
    }


def test_bulk_cancel_skips_finished_jobs_with_a_message(operator, alice):
    waiting = job_submit(
        tenant=alice.tenant, api_key=None, spec=JobSpec(runtime="python", code="def main(): pass")
    )[0]
    done = job_submit(
        tenant=alice.tenant, api_key=None, spec=JobSpec(runtime="python", code="def main(): pass")
    )[0]
    Job.objects.filter(pk=done.pk).update(status="succeeded")
    response = operator.post(
        "/admin/jobs/job/",
        {"action": "cancel", "_selected_action": [str(waiting.pk), str(done.pk)]},
        follow=True,
    )
    body = response.content.decode()
    assert "1 job(s) cancelled" in body and "Skipped" in body
    assert Job.objects.get(pk=waiting.pk).status == "cancelled"
