"""The ways job_execute ends an attempt other than a verdict, without Docker (the pool is a stand-in):
a worker stopped mid-job hands it back, a function deleted while its job waited cancels it."""

from __future__ import annotations

import pytest

import sandbox
from jobs import execution
from jobs.models import Attempt, Job, Status
from jobs.services.submit import JobSpec, job_submit

pytestmark = pytest.mark.django_db


def submit(persona, **fields) -> Job:
    spec = JobSpec(runtime="python", code="def main():\n    return 1\n", **fields)
    return job_submit(tenant=persona.tenant, api_key=persona.api_key, spec=spec)[0]


class StoppedPool:
    """A sandbox whose worker is told to stop (Ctrl-C, a cold shutdown) while the job runs."""

    def run(self, spec, on_output=None, cancel=None):
        on_output([sandbox.OutputLine(stream="stdout", seq=1, ts=0.0, text="started")])
        raise KeyboardInterrupt


def test_a_worker_stopped_mid_job_hands_it_back_and_lets_its_lease_go(alice, monkeypatch):
    monkeypatch.setattr(sandbox, "default", lambda: StoppedPool())
    job = submit(alice)
    with pytest.raises(KeyboardInterrupt):
        execution.job_execute(job_id=job.id)
    job.refresh_from_db()
    assert (job.status, job.next_attempt_at, job.log_lines) == (Status.QUEUED, job.created_at, 1)
    lost = Attempt.objects.get(job_id=job.id)
    assert lost.status == Status.LOST and lost.error["type"] == "WorkerStopped"
    assert not execution._renewer()._leases  # the attempt's lease is no longer renewed


def test_a_job_whose_function_is_gone_is_cancelled_without_running(alice, monkeypatch):
    monkeypatch.setattr(sandbox, "default", lambda: pytest.fail("nothing may run"))
    job = submit(alice, function_name="gone", version_number=3)
    finished = execution.job_execute(job_id=job.id)
    assert finished.status == Status.CANCELLED and finished.error["type"] == "FunctionDeleted"
    assert "function gone version 3 does not exist" in finished.error["message"]
