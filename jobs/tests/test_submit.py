"""Submission: Idempotency-Key (replay, expiry, concurrency) and batches (all or nothing, in order)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from jobs.models import Job
from jobs.tests.support import QUICK

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]


def test_an_idempotency_key_returns_the_same_job(alice, bob):
    first = alice.post_job(QUICK, HTTP_IDEMPOTENCY_KEY="order-42")
    again = alice.post_job(QUICK, HTTP_IDEMPOTENCY_KEY="order-42")
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    other = alice.post_job({**QUICK, "args": [4, 5]}, HTTP_IDEMPOTENCY_KEY="order-42")
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_conflict"
    assert bob.post_job(QUICK, HTTP_IDEMPOTENCY_KEY="order-42").status_code == 202  # keys are per tenant
    assert Job.objects.filter(tenant=alice.tenant).count() == 1


def test_an_idempotency_key_expires_after_its_ttl(alice, settings):
    first = alice.post_job(QUICK, HTTP_IDEMPOTENCY_KEY="k").json()["id"]
    Job.objects.filter(pk=first).update(
        created_at=timezone.now() - timedelta(hours=settings.IDEMPOTENCY_TTL_H + 1)
    )
    second = alice.post_job(QUICK, HTTP_IDEMPOTENCY_KEY="k")
    assert second.status_code == 202 and second.json()["id"] != first


def test_twenty_concurrent_submits_with_one_key_make_exactly_one_job(alice):
    def submit(_):
        from rest_framework.test import APIClient

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {alice.key}")
        try:
            response = client.post(
                "/api/v1/jobs",
                data=json.dumps(QUICK),
                content_type="application/json",
                HTTP_IDEMPOTENCY_KEY="once",
            )
            return response.status_code, response.json()["id"]
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(submit, range(20)))
    assert {job_id for _, job_id in results} == {results[0][1]}
    assert sorted(status for status, _ in results).count(202) == 1
    assert Job.objects.filter(tenant=alice.tenant).count() == 1


def test_a_batch_is_accepted_whole_in_order(alice, run_worker):
    jobs = [{**QUICK, "args": [i, i]} for i in range(5)]
    response = alice.client.post(
        "/api/v1/jobs/batch", data=json.dumps({"jobs": jobs}), content_type="application/json"
    )
    assert response.status_code == 202
    ids = response.json()["ids"]
    assert len(ids) == 5 and [j["id"] for j in response.json()["jobs"]] == ids
    run_worker()
    assert [Job.objects.get(pk=i).result for i in ids] == [0, 2, 4, 6, 8]


def test_a_batch_with_one_bad_job_is_refused_whole(alice, settings):
    jobs = [QUICK, {**QUICK, "timeout_ms": 10**9}, QUICK]
    response = alice.client.post(
        "/api/v1/jobs/batch", data=json.dumps({"jobs": jobs}), content_type="application/json"
    )
    assert response.status_code == 400
    assert "1" in json.dumps(response.json()["error"])
    too_many = alice.client.post(
        "/api/v1/jobs/batch",
        data=json.dumps({"jobs": [QUICK] * (settings.BATCH_MAX_JOBS + 1)}),
        content_type="application/json",
    )
    assert too_many.status_code == 400
    assert Job.objects.count() == 0
