"""Delayed runs (run_at / delay_s): they wait as "scheduled" in PostgreSQL, the reconciler releases
them at their time (an injected clock here), they can be cancelled until then, and admission counts
them at submission."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from functions.services import deploy
from jobs.models import Job, Status
from jobs.services.reconcile import reconcile

pytestmark = pytest.mark.django_db
ADD = {"runtime": "python", "code": "def main(a, b):\n    return a + b\n", "args": [2, 3]}


def post(persona, path, body):
    return persona.client.post(path, data=json.dumps(body), content_type="application/json")


def test_a_delayed_job_waits_as_scheduled_until_its_time(alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(alice, "/api/v1/jobs", {**ADD, "delay_s": 120})
    assert response.status_code == 202, response.json()
    body = response.json()
    job = Job.objects.get(pk=body["id"])
    assert body["status"] == "scheduled" and job.status == Status.SCHEDULED
    due = job.next_attempt_at
    assert timezone.now() + timedelta(seconds=110) < due < timezone.now() + timedelta(seconds=130)
    with django_capture_on_commit_callbacks(execute=True):
        counts = reconcile(now=due - timedelta(seconds=1))
    assert counts["scheduled_due"] == 0 and Job.objects.get(pk=job.pk).status == Status.SCHEDULED
    with django_capture_on_commit_callbacks(execute=True):
        counts = reconcile(now=due + timedelta(milliseconds=500))  # a reconcile pass runs every second
    assert counts["scheduled_due"] == 1
    assert Job.objects.get(pk=job.pk).status in (Status.QUEUED, Status.DISPATCHED)
    listed = alice.client.get("/api/v1/jobs?status=scheduled").json()["results"]
    assert listed == []


def test_run_at_needs_an_offset_and_one_way_of_saying_when(alice):
    later = (timezone.now() + timedelta(hours=1)).astimezone(timezone.get_fixed_timezone(60))
    ok = post(alice, "/api/v1/jobs", {**ADD, "run_at": later.isoformat()})
    assert ok.status_code == 202 and ok.json()["status"] == "scheduled"
    assert Job.objects.get(pk=ok.json()["id"]).next_attempt_at == later
    for body, field in [
        ({"run_at": later.replace(tzinfo=None).isoformat()}, "run_at"),
        ({"run_at": later.isoformat(), "delay_s": 5}, "run_at"),
        ({"delay_s": -1}, "delay_s"),
        ({"delay_s": 10**9}, "delay_s"),
        ({"delay_s": 10**30}, "delay_s"),  # past what a date can hold: a 400, not a 500
        ({"run_at": "tomorrow"}, "run_at"),
    ]:
        response = post(alice, "/api/v1/jobs", {**ADD, **body})
        assert response.status_code == 400, (body, response.json())
        assert field in json.dumps(response.json())
    batch = post(alice, "/api/v1/jobs/batch", {"jobs": [{**ADD, "delay_s": 10**30}]})
    assert batch.status_code == 400 and "delay_s" in json.dumps(batch.json())


def test_a_run_at_in_the_past_runs_now(alice):
    earlier = timezone.now() - timedelta(minutes=5)
    response = post(alice, "/api/v1/jobs", {**ADD, "run_at": earlier.isoformat()})
    assert response.json()["status"] in ("queued", "dispatched")


def test_a_scheduled_job_can_be_cancelled_before_its_time(alice):
    job_id = post(alice, "/api/v1/jobs", {**ADD, "delay_s": 600}).json()["id"]
    cancelled = alice.client.post(f"/api/v1/jobs/{job_id}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    reconcile(now=timezone.now() + timedelta(hours=1))
    assert Job.objects.get(pk=job_id).status == Status.CANCELLED


def test_delayed_submissions_count_against_the_rate_at_submission(alice):
    quota = alice.tenant.quota
    quota.submissions_per_minute = 2
    quota.save()
    codes = [post(alice, "/api/v1/jobs", {**ADD, "delay_s": 3600}).status_code for _ in range(3)]
    assert codes == [202, 202, 429]


def test_batches_and_invocations_take_a_delay_too(alice):
    deploy.function_create(
        tenant=alice.tenant, user=None, name="adder", runtime="python",
        spec=deploy.VersionSpec(code=ADD["code"]),
    )  # fmt: skip
    batch = post(
        alice, "/api/v1/jobs/batch", {"jobs": [{**ADD, "delay_s": 60}, {"function": "adder", "delay_s": 60}]}
    )
    assert batch.status_code == 202, batch.json()
    assert [j["status"] for j in batch.json()["jobs"]] == ["scheduled", "scheduled"]
    invoked = post(alice, "/api/v1/functions/adder/invoke", {"args": [1, 2], "delay_s": 30})
    assert invoked.status_code == 202 and invoked.json()["status"] == "scheduled"
    assert invoked.json()["function"] == "adder"


def test_idempotency_compares_the_delay_as_asked(alice):
    first = post(alice, "/api/v1/jobs", {**ADD, "delay_s": 60}).json()
    again = alice.client.post(
        "/api/v1/jobs", data=json.dumps({**ADD, "delay_s": 60}), content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="delayed-1",
    )  # fmt: skip
    repeat = alice.client.post(
        "/api/v1/jobs", data=json.dumps({**ADD, "delay_s": 60}), content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="delayed-1",
    )  # fmt: skip
    assert (
        again.status_code == 202 and repeat.status_code == 200 and repeat.json()["id"] == again.json()["id"]
    )
    assert first["id"] != again.json()["id"]
