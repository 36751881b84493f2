"""What a tenant does to a job: retry, cancel (waiting or running) and delete, with their rules."""

from __future__ import annotations

import time

import pytest

from jobs.models import Attempt, Job, LogLine
from jobs.tests.support import QUICK, SLEEPY, ThreadWorker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]


def test_retry_rules(alice, bob, run_worker):
    job_id = alice.post_job(QUICK).json()["id"]
    assert alice.client.post(f"/api/v1/jobs/{job_id}/retry").json()["error"]["code"] == "not_retryable"
    run_worker()
    assert (
        alice.client.post(f"/api/v1/jobs/{job_id}/retry").status_code == 409
    )  # succeeded jobs are not retried
    assert bob.client.post(f"/api/v1/jobs/{job_id}/retry").status_code == 404


def test_cancelling_a_waiting_job_means_it_never_runs(alice, bob, run_worker):
    job_id = alice.post_job(QUICK).json()["id"]
    assert bob.client.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 404
    response = alice.client.post(f"/api/v1/jobs/{job_id}/cancel")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    run_worker()
    job = Job.objects.get(pk=job_id)
    assert job.status == "cancelled" and job.attempts == 0
    assert alice.client.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 409


def test_cancelling_a_running_job_kills_it_within_two_seconds(
    alice, sandbox_pool, docker_client, fast_retries
):
    job_id = alice.post_job({**SLEEPY, "max_retries": 2}).json()["id"]
    with ThreadWorker(sandbox_pool):
        wait_for(lambda: LogLine.objects.filter(job_id=job_id, text="sleeping").exists())
        container = Attempt.objects.get(job_id=job_id)
        asked = time.monotonic()
        response = alice.client.post(f"/api/v1/jobs/{job_id}/cancel")
        assert response.status_code == 202 and response.json()["cancel_requested"] is True
        wait_for(lambda: Job.objects.get(pk=job_id).status == "cancelled", timeout=5, step=0.02)
        took = time.monotonic() - asked
    assert took < 2.0, took
    job = Job.objects.get(pk=job_id)
    assert job.attempts == 1 and job.result is None  # never retried
    attempt = Attempt.objects.get(job_id=job_id)
    assert attempt.status == "cancelled" and container.worker
    sandbox_pool.flush()
    import docker as docker_module

    with pytest.raises(docker_module.errors.NotFound):
        docker_client.containers.get(attempt.container_id)


def test_delete_rules(alice, bob, run_worker):
    job_id = alice.post_job({**QUICK, "code": "def main(a, b):\n    print('hi')\n    return a + b\n"}).json()[
        "id"
    ]
    conflict = alice.client.delete(f"/api/v1/jobs/{job_id}")
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "job_not_finished"
    run_worker()
    assert bob.client.delete(f"/api/v1/jobs/{job_id}").status_code == 404
    assert alice.client.delete(f"/api/v1/jobs/{job_id}").status_code == 204
    assert not Job.objects.filter(pk=job_id).exists()
    assert (
        not Attempt.objects.filter(job_id=job_id).exists()
        and not LogLine.objects.filter(job_id=job_id).exists()
    )
    assert alice.client.get(f"/api/v1/jobs/{job_id}").status_code == 404
