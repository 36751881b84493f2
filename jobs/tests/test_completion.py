"""Synchronous invoke (?wait): the finished job when it ends in time, else the 202 body; bad waits refused."""

from __future__ import annotations

import json
import time

import pytest

from jobs.models import Job
from jobs.tests.support import QUICK, SLEEPY, ThreadWorker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]


def test_wait_returns_the_finished_job(alice, sandbox_pool):
    with ThreadWorker(sandbox_pool):
        response = alice.client.post(
            "/api/v1/jobs?wait=20", data=json.dumps(QUICK), content_type="application/json"
        )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "succeeded" and body["result"] == 5 and body["attempt_history"]


def test_wait_gives_the_202_body_when_the_job_takes_longer(alice, sandbox_pool):
    started = time.monotonic()
    response = alice.client.post(
        "/api/v1/jobs?wait=0.3", data=json.dumps(SLEEPY), content_type="application/json"
    )
    assert response.status_code == 202 and response.json()["status"] in ("queued", "dispatched")
    assert 0.3 <= time.monotonic() - started < 3


@pytest.mark.parametrize("wait", ["-1", "abc", "1000", "nan"])
def test_a_bad_wait_is_a_400_and_nothing_is_created(alice, wait):
    response = alice.client.post(
        f"/api/v1/jobs?wait={wait}", data=json.dumps(QUICK), content_type="application/json"
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"
    assert Job.objects.count() == 0
