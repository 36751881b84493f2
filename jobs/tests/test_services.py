"""Service-level behaviour of jobs: claims, fencing of stale attempts, internal errors."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.core.management import call_command

import sandbox
from jobs import services
from jobs.models import Attempt, Job
from jobs.services import JobSpec, job_claim, job_finish, job_submit
from lambdasite.redis_client import get_queue

pytestmark = pytest.mark.django_db(transaction=True)


def submit(persona, **overrides) -> Job:
    spec = JobSpec(**{"runtime": "python", "code": "def main():\n    return 1\n", **overrides})
    return job_submit(tenant=persona.tenant, api_key=persona.api_key, spec=spec)[0]


def test_submit_enqueues_only_after_commit(alice):
    queue = get_queue()
    job = submit(alice)
    assert queue.count == 1
    assert queue.jobs[0].args == (str(job.id),)
    assert Job.objects.get(pk=job.id).status == "dispatched"


def test_a_job_is_claimed_once(alice):
    job = submit(alice)
    assert job_claim(job_id=job.id, worker="w1") is not None
    assert job_claim(job_id=job.id, worker="w2") is None
    assert Job.objects.get(pk=job.id).attempts == 1


def test_a_stale_attempt_cannot_overwrite_the_outcome(alice):
    job = submit(alice)
    job_claim(job_id=job.id, worker="w1")
    Job.objects.filter(pk=job.id).update(status="queued")  # as after the reconciler found its lease expired
    job_claim(job_id=job.id, worker="w2")  # attempt 2 is now the current one
    stale = sandbox.RunResult(status="succeeded", result="from the zombie")
    job_finish(job_id=job.id, attempt_number=1, result=stale, log_lines=0)
    job.refresh_from_db()
    assert job.status == "running" and job.result is None
    assert Attempt.objects.get(job=job, number=1).status == "succeeded"
    real = sandbox.RunResult(status="succeeded", result="real")
    job_finish(job_id=job.id, attempt_number=2, result=real, log_lines=0)
    job.refresh_from_db()
    assert (job.status, job.result) == ("succeeded", "real")


def test_nul_characters_in_a_result_do_not_break_storage(alice):
    job = submit(alice)
    job_claim(job_id=job.id, worker="w")
    job_finish(
        job_id=job.id,
        attempt_number=1,
        result=sandbox.RunResult(status="succeeded", result={"a": "x\x00y"}),
        log_lines=0,
    )
    assert Job.objects.get(pk=job.id).result == {"a": "x\ufffdy"}


def test_a_sandbox_failure_is_retried_then_reported_as_internal(alice, monkeypatch):
    def broken(spec, on_output=None):
        raise sandbox.SandboxError("engine gone", code="engine_unavailable")

    class BrokenPool:
        def run(self, spec, on_output=None, cancel=None):
            broken(spec)

    monkeypatch.setattr(sandbox, "default", lambda: BrokenPool())
    job = submit(alice)
    for n in range(settings.SYSTEM_RETRIES + 1):
        services.job_execute(job_id=job.id)
        job.refresh_from_db()
        if n < settings.SYSTEM_RETRIES:
            assert job.status == "retrying" and job.next_attempt_at is not None
            Job.objects.filter(pk=job.id).update(
                status="queued"
            )  # what the reconciler does when the retry is due
    assert job.status == "failed"
    assert job.error["type"] == "InternalError" and job.error["code"] == "engine_unavailable"
    attempts = list(job.attempt_set.all())
    assert len(attempts) == settings.SYSTEM_RETRIES + 1
    assert all(a.error["type"] == "InternalError" for a in attempts)


def test_sandbox_check_reports_engine_images_and_cells(docker_client, capsys):
    call_command("sandbox_check", "--json")
    report = json.loads(capsys.readouterr().out)
    assert report["engine"]["ok"] is True
    assert all(image["present"] for image in report["images"].values())
    assert "orphans" in report["cells"]
