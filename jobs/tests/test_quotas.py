"""Tenancy against real PostgreSQL, Redis and Docker: rate limits, concurrency, fairness,
compute budget, roles, suspension, usage and cost."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Membership
from accounts.services import api_key_issue, membership_set, user_get_or_create
from jobs import billing
from jobs.models import Attempt, Job
from jobs.tests.test_chaos import Stack, wait_until

pytestmark = [pytest.mark.django_db(transaction=True)]

QUICK = {"runtime": "python", "code": "def main():\n    return 1\n"}
ROOT = Path(__file__).resolve().parents[2]


def client_for(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def test_fifty_concurrent_submissions_against_ten_per_minute_admit_exactly_ten(alice):
    alice.tenant.quota.submissions_per_minute = 10
    alice.tenant.quota.save()

    def submit(_):
        try:
            response = client_for(alice.key).post(
                "/api/v1/jobs", data=json.dumps(QUICK), content_type="application/json"
            )
            return response.status_code, response.get("Retry-After"), response.json()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(submit, range(50)))
    accepted = [r for r in results if r[0] == 202]
    refused = [r for r in results if r[0] == 429]
    assert len(accepted) == 10 and len(refused) == 40
    assert all(r[2]["error"]["code"] == "rate_limited" and int(r[1]) >= 1 for r in refused)
    assert Job.objects.filter(tenant=alice.tenant).count() == 10


def test_a_refused_submission_says_when_to_come_back(alice):
    alice.tenant.quota.submissions_per_minute = 1
    alice.tenant.quota.save()
    assert alice.post_job(QUICK).status_code == 202
    refused = alice.post_job(QUICK)
    assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json()["error"]["details"]["retry_after"] == int(refused["Retry-After"])


@pytest.mark.docker
def test_a_concurrency_limit_of_two_is_never_exceeded(alice, settings):
    alice.tenant.quota.max_concurrency = 2
    alice.tenant.quota.save()
    stack = Stack(settings.REDIS_URL)
    try:
        stack.start("reconciler", "scheduler")
        for name in ("a", "b", "c"):
            stack.start(f"worker-{name}", "worker")
        code = {"runtime": "python", "code": "import time\ndef main():\n    time.sleep(1)\n    return 1\n"}
        ids = [alice.post_job(code).json()["id"] for _ in range(20)]
        peak, done = 0, 0
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            peak = max(peak, Job.objects.filter(tenant=alice.tenant, status="running").count())
            done = Job.objects.filter(pk__in=ids, status="succeeded").count()
            if done == 20:
                break
            time.sleep(0.05)
    finally:
        stack.stop()
    assert done == 20
    assert peak == 2  # three workers, but never more than the tenant's two at once


@pytest.mark.docker
def test_a_flooding_tenant_does_not_delay_another_tenants_job(alice, bob, settings):
    alice.tenant.quota.max_concurrency = 2  # the worker count
    alice.tenant.quota.submissions_per_minute = 10_000
    alice.tenant.quota.save()
    stack = Stack(settings.REDIS_URL)
    try:
        stack.start("reconciler", "scheduler")
        stack.start("worker-a", "worker")
        stack.start("worker-b", "worker")
        flood = {"runtime": "python", "code": "import time\ndef main():\n    time.sleep(0.2)\n    return 1\n"}
        body = {"jobs": [flood] * 100}
        for _ in range(2):
            assert (
                alice.client.post(
                    "/api/v1/jobs/batch", data=json.dumps(body), content_type="application/json"
                ).status_code
                == 202
            )
        assert wait_until(
            lambda: Job.objects.filter(tenant=alice.tenant, status="succeeded").count() >= 4,
            timeout=30,
            step=0.05,
        )
        job_id = bob.post_job(QUICK).json()["id"]
        assert wait_until(lambda: Job.objects.get(pk=job_id).started_at is not None, timeout=10, step=0.02)
        job = Job.objects.get(pk=job_id)
        delay = (job.started_at - job.created_at).total_seconds()
        waiting = Job.objects.filter(tenant=alice.tenant, status__in=["queued", "dispatched"]).count()
    finally:
        stack.stop()
    (ROOT / "var").mkdir(exist_ok=True)
    (ROOT / "var" / "fairness.txt").write_text(
        f"tenant B's job started {delay * 1000:.0f} ms after submission, behind {waiting} "
        f"waiting jobs of tenant A\n"
    )
    assert waiting > 100  # A's flood was still there
    assert delay < 1.0, delay


def test_a_spent_budget_is_429_until_raised_in_admin(alice, client, redis_conn):
    quota = alice.tenant.quota
    quota.monthly_gb_seconds = 0.001
    quota.save()
    job = alice.post_job(QUICK).json()
    Attempt.objects.create(
        job_id=job["id"],
        number=1,
        started_at=timezone.now(),
        status="succeeded",
        billed_ms=100,
        gb_seconds=0.0125,
    )
    with redis_conn.pipeline() as pipe:  # what finishing an attempt tells Redis after its commit
        billing.add_usage(pipe, tenant_id=alice.tenant.id, gb_seconds=0.0125)
        pipe.execute()
    refused = alice.post_job(QUICK)
    assert refused.status_code == 429
    redis_conn.flushdb()  # the cached sum is gone: PostgreSQL answers, and seeds it again
    assert alice.post_job(QUICK).status_code == 429
    assert (
        float(redis_conn.get(billing.USAGE_KEY.format(tenant=alice.tenant.id, period=billing.usage_period())))
        == 0.0125
    )
    error = refused.json()["error"]
    assert error["code"] == "quota_exceeded" and "resets_at" in error["details"]
    _, resets_at = billing.billing_period()
    assert abs(int(refused["Retry-After"]) - (resets_at - timezone.now()).total_seconds()) < 5
    get_user_model().objects.create_superuser("op@example.com", "op@example.com", "pw")
    client.login(username="op@example.com", password="pw")
    form = {f.name: getattr(quota, f.name) for f in quota._meta.fields if f.name not in ("id", "tenant")}
    form["allowed_pools"] = ""  # (a form's empty field: every pool)
    form.update(tenant=alice.tenant.pk, monthly_gb_seconds=100)
    assert client.post(f"/admin/accounts/quota/{quota.pk}/change/", form).status_code == 302
    assert alice.post_job(QUICK).status_code == 202  # no restart needed


def test_a_viewer_key_cannot_submit_and_a_read_key_cannot_cancel(alice):
    viewer = user_get_or_create(email="v@acme.test", password="x")
    membership_set(tenant=alice.tenant, user=viewer, role=Membership.Role.VIEWER)
    viewer_key = api_key_issue(tenant=alice.tenant, name="viewer's", created_by=viewer).plaintext
    response = client_for(viewer_key).post(
        "/api/v1/jobs", data=json.dumps(QUICK), content_type="application/json"
    )
    assert response.status_code == 403 and response.json()["error"]["code"] == "read_only_key"
    assert client_for(viewer_key).get("/api/v1/jobs").status_code == 200
    job_id = alice.post_job(QUICK).json()["id"]
    read_key = api_key_issue(tenant=alice.tenant, name="ro", scope="read", operator=True).plaintext
    assert client_for(read_key).post(f"/api/v1/jobs/{job_id}/cancel").status_code == 403
    assert client_for(read_key).delete(f"/api/v1/jobs/{job_id}").status_code == 403
    member = user_get_or_create(email="m@acme.test", password="x")
    membership_set(tenant=alice.tenant, user=member, role=Membership.Role.MEMBER)
    member_key = api_key_issue(tenant=alice.tenant, name="member's", created_by=member).plaintext
    assert client_for(member_key).post(f"/api/v1/jobs/{job_id}/cancel").status_code == 202


def test_a_suspended_tenant_gets_403_and_its_waiting_jobs_stay_waiting(alice):
    alice.tenant.quota.max_concurrency = 1
    alice.tenant.quota.save()
    ids = [alice.post_job(QUICK).json()["id"] for _ in range(3)]
    call_command("quota_set", alice.tenant.slug, "--suspend")
    response = alice.client.get("/api/v1/jobs")
    assert response.status_code == 403 and response.json()["error"]["code"] == "tenant_suspended"
    Job.objects.filter(pk=ids[0]).update(status="succeeded")  # a slot frees...
    from jobs.services.reconcile import reconcile

    reconcile()
    assert sorted(Job.objects.filter(pk__in=ids[1:]).values_list("status", flat=True)) == [
        "queued",
        "queued",
    ]  # ...but nothing moves
    call_command("quota_set", alice.tenant.slug, "--resume")
    reconcile()
    assert Job.objects.filter(pk__in=ids[1:], status="dispatched").count() == 1


def test_usage_and_cost_match_hand_computed_values(alice, settings):
    settings.PRICE_PER_GB_SECOND = 0.0000166667
    settings.PRICE_PER_MILLION_REQUESTS = 0.20
    now = timezone.now()
    a = alice.post_job({**QUICK, "memory_mb": 128}).json()["id"]
    b = alice.post_job({**QUICK, "memory_mb": 512}).json()["id"]
    # 128 MB for 1000.2 ms -> billed 1001 ms; 512 MB for 250 ms, twice (a retry)
    from jobs.billing import billed_ms, gb_seconds

    assert billed_ms(1000.2) == 1001 and billed_ms(0.3) == 1
    assert gb_seconds(128, 1001) == pytest.approx(0.125 * 1.001)
    for job_id, number, mb, ms in ((a, 1, 128, 1001), (b, 1, 512, 250), (b, 2, 512, 250)):
        Attempt.objects.create(
            job_id=job_id,
            number=number,
            started_at=now,
            status="succeeded",
            billed_ms=ms,
            gb_seconds=gb_seconds(mb, ms),
        )
    usage = alice.client.get("/api/v1/usage").json()
    expected_gbs = 0.125 * 1.001 + 2 * 0.5 * 0.25
    assert usage["gb_seconds"]["used"] == pytest.approx(expected_gbs, abs=1e-6)
    assert usage["gb_seconds"]["left"] == pytest.approx(
        alice.tenant.quota.monthly_gb_seconds - expected_gbs, abs=1e-6
    )
    assert usage["requests"] == 3
    assert usage["cost"]["compute"] == pytest.approx(expected_gbs * 0.0000166667, rel=1e-6)
    assert usage["cost"]["requests"] == pytest.approx(3 * 0.20 / 1_000_000, rel=1e-6)
    assert usage["cost"]["total"] == pytest.approx(expected_gbs * 0.0000166667 + 0.6e-6, rel=1e-6)
    assert usage["jobs"]["total"] == 2 and usage["billed_ms"] == 1501
    assert usage["limits"]["max_concurrency"] == alice.tenant.quota.max_concurrency
    assert usage["concurrency"]["limit"] == alice.tenant.quota.max_concurrency


@pytest.mark.docker
def test_each_job_shows_its_billed_duration_gb_seconds_and_cost(alice, run_worker):
    job_id = alice.post_job({**QUICK, "memory_mb": 256}).json()["id"]
    run_worker()
    job = alice.client.get(f"/api/v1/jobs/{job_id}").json()
    import math

    assert job["billed_ms"] == max(1, math.ceil(job["duration_ms"]))
    assert job["gb_seconds"] == pytest.approx(0.25 * job["billed_ms"] / 1000)
    assert job["cost"] == pytest.approx(job["gb_seconds"] * 0.0000166667 + 0.2 / 1_000_000, rel=1e-3)
    assert job["attempt_history"][0]["billed_ms"] == job["billed_ms"]


def test_stats_over_a_window(alice):
    now = timezone.now()
    for status, runtime, run, wait in (
        ("succeeded", "python", 10, 1),
        ("succeeded", "node", 30, 3),
        ("failed", "python", 20, 2),
    ):
        job = alice.post_job({**QUICK, "runtime": runtime}).json()["id"]
        Job.objects.filter(pk=job).update(status=status, duration_ms=run, queue_wait_ms=wait)
    stats = alice.client.get("/api/v1/stats", {"since": (now - timedelta(minutes=10)).isoformat()}).json()
    assert stats["jobs"] == 3 and stats["by_status"] == {"succeeded": 2, "failed": 1}
    assert stats["by_runtime"] == {"python": 2, "node": 1}
    assert stats["success_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert stats["run_ms"]["p50"] == 20 and stats["queue_wait_ms"]["p50"] == 2
    assert stats["jobs_per_minute"] == pytest.approx(0.3, abs=0.01)
    assert alice.client.get("/api/v1/stats", {"since": "yesterday"}).status_code == 400


def test_operators_commands(db, capsys):
    call_command("tenant_create", "hooli")
    call_command(
        "quota_set",
        "hooli",
        "--max-concurrency",
        "7",
        "--per-minute",
        "99",
        "--gb-seconds",
        "12.5",
        "--max-timeout-ms",
        "9000",
        "--max-memory-mb",
        "256",
    )
    call_command(
        "user_create", "gavin@hooli.test", "--password", "pw", "--tenant", "hooli", "--role", "viewer"
    )
    from accounts.models import Tenant

    quota = Tenant.objects.get(slug="hooli").quota
    assert (
        quota.max_concurrency,
        quota.submissions_per_minute,
        quota.monthly_gb_seconds,
        quota.max_timeout_ms,
        quota.max_memory_mb,
    ) == (7, 99, 12.5, 9000, 256)
    assert Membership.objects.get(user__username="gavin@hooli.test").role == "viewer"


@pytest.mark.parametrize(
    "since, status",
    [("2000-01-01T00:00:00+23:59", 200), ("0001-01-01T00:00:00+05:00", 400), ("2999-01-01T00:00:00Z", 400)],
)
def test_odd_since_values_are_handled(alice, since, status):
    response = alice.client.get("/api/v1/stats", {"since": since})
    assert response.status_code == status
    if status == 400:
        assert response.json()["error"]["code"] == "validation_error"


def test_admission_is_one_redis_call_once_the_budget_is_cached_and_a_spent_budget_takes_no_token(alice):
    from accounts import ratelimit
    from jobs.exceptions import QuotaExceeded
    from jobs.services.admission import tenant_admit
    from lambdasite.redis_client import get_redis

    tenant_admit(tenant=alice.tenant)  # the first seeds the budget's counter from PostgreSQL
    conn = get_redis()
    sent = []
    real = conn.execute_command

    def counting(*args, **kwargs):
        sent.append(args[0])
        return real(*args, **kwargs)

    conn.execute_command = counting
    try:
        tenant_admit(tenant=alice.tenant)
    finally:
        del conn.execute_command
    assert sent == ["EVALSHA"]  # the budget and the bucket in one script

    bucket = ratelimit.tenant_bucket(alice.tenant)
    per_minute = alice.tenant.quota.submissions_per_minute
    conn.set(billing.usage_key(alice.tenant.id), repr(alice.tenant.quota.monthly_gb_seconds))  # spent
    left = ratelimit.peek(bucket=bucket, per_minute=per_minute)
    with pytest.raises(QuotaExceeded):
        tenant_admit(tenant=alice.tenant)
    assert ratelimit.peek(bucket=bucket, per_minute=per_minute) >= left  # refused without a token taken


def test_a_jobs_default_limits_are_the_platforms_within_its_quota(alice, settings):
    """One home for the rule every edge uses (submit, invoke, the runtimes page, the editor)."""
    settings.JOB_DEFAULT_TIMEOUT_MS, settings.JOB_DEFAULT_MEMORY_MB = 5000, 128
    quota = alice.tenant.quota
    quota.max_timeout_ms, quota.max_memory_mb = 3000, 512
    assert (quota.default_timeout_ms(), quota.default_memory_mb()) == (3000, 128)
