"""The job page's timeline of a durable run (its steps, their children, where a child came from) and
the jobs list's filter of waiting runs; runs recorded without Docker (jobs.tests.test_steps)."""

from __future__ import annotations

import pytest

from functions.services.deploy import VersionSpec, function_create
from jobs.models import Job
from jobs.tests.test_steps import CODE, Execution, durable_job, step

from .pages import signed_in
from .test_job_network import text

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_page_draws_the_steps_and_children_of_a_waiting_run(alice):
    function_create(
        tenant=alice.tenant, user=alice.user, name="square", runtime="python", spec=VersionSpec(code=CODE)
    )
    job = durable_job(alice)
    run = Execution(job)
    run.record(**step(1, "charge", {"id": "ch_1"}))
    run.record(seq=2, name="fan", kind="map", function="square", items=[[1], [2]], qualifier=None)
    run.end()
    client = signed_in(alice.user)
    page = client.get(f"/app/jobs/{job.id}/").content.decode()
    assert 'id="job-steps"' in page and 'data-live-on="status steps"' in page
    steps = text(client.get(f"/app/jobs/{job.id}/?partial=1&part=steps").content.decode())
    assert "Waiting: no worker, cell or slot is held until the step below is over." in steps
    assert "1. charge step succeeded" in steps and '{"id": "ch_1"}' in steps
    assert "2. fan map waiting" in steps and "waiting for 2 children of square" in steps

    child = Job.objects.filter(parent=job).order_by("child_index").first()
    child_page = text(client.get(f"/app/jobs/{child.id}/").content.decode())
    assert f"Started by the step fan of the durable run {str(job.id)[:8]} , item 0" in child_page
    assert f"step fan of run {str(job.id)[:8]}" in child_page  # who asked for it


def test_the_jobs_list_filters_waiting_runs(alice):
    waiting = durable_job(alice)
    run = Execution(waiting)
    run.record(seq=1, name="nap", kind="sleep", seconds=60)
    run.end()
    other = durable_job(alice)
    listing = signed_in(alice.user).get("/app/jobs/?status=waiting").content.decode()
    assert '<option value="waiting" selected>waiting</option>' in listing
    assert str(waiting.id)[:8] in listing and str(other.id)[:8] not in listing
