"""Figures per worker pool against real PostgreSQL and Redis: GET /api/v1/pools counts one tenant's
jobs only, lists what its quota allows, and counts live workers from their heartbeats."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey
from accounts.services import api_key_issue
from conftest import TEST_POOL_WORKER
from jobs import metrics, pool_stats, pools
from jobs.models import Job

CODE = "def main():\n    return 1\n"


@pytest.fixture(autouse=True)
def only_the_workers_a_test_beats(redis_conn):
    """Live workers here are the heartbeats each test writes: not the suite's stand-in worker of the
    default pool (conftest), which every other test needs for its jobs to be dispatched."""
    pools.gone(worker=TEST_POOL_WORKER, pools=[pools.DEFAULT_POOL])


def make_job(persona, *, pool: str, status: str, started_s_ago: float | None = None, wait_ms=None) -> Job:
    """A job row placed in ``pool``; ``started_s_ago`` and ``wait_ms``: when it started and how long
    it had waited."""
    started = timezone.now() - timedelta(seconds=started_s_ago) if started_s_ago is not None else None
    if wait_ms is not None:  # what the claim of its first attempt records (lifecycle.job_claim)
        metrics.observe_queue_wait(pool, wait_ms / 1000, now=started.timestamp())
    return Job.objects.create(
        tenant=persona.tenant,
        runtime="python",
        code=CODE,
        timeout_ms=5000,
        memory_mb=128,
        status=status,
        pool=pool,
        home_pool=pool,
        started_at=started,
        queue_wait_ms=wait_ms,
    )


def beat(worker: str, *pool_names: str) -> None:
    pools.beat(worker=worker, pools=list(pool_names), ttl_s=30)


def get_pools(persona) -> list[dict]:
    response = persona.client.get("/api/v1/pools")
    assert response.status_code == 200, response.content
    return response.json()["pools"]


def test_it_counts_this_tenants_jobs_per_pool_and_live_workers_from_heartbeats(alice, bob):
    beat("w1", "default", "eu")
    beat("w2", "eu")
    make_job(alice, pool="eu", status="queued")
    make_job(alice, pool="eu", status="retrying")
    make_job(alice, pool="eu", status="running", started_s_ago=30, wait_ms=100.0)
    make_job(alice, pool="eu", status="succeeded", started_s_ago=60, wait_ms=300.0)
    make_job(alice, pool="eu", status="succeeded", started_s_ago=600, wait_ms=90_000.0)  # before the window
    make_job(alice, pool="default", status="dispatched")
    for _ in range(3):  # another tenant's load is never counted
        make_job(bob, pool="eu", status="queued")
        make_job(bob, pool="eu", status="running", started_s_ago=10, wait_ms=50_000.0)

    assert get_pools(alice) == [
        {
            "name": "default",
            "workers": 1,
            "allowed": True,
            "queued": 0,
            "in_flight": 1,
            "wait_ms": {"p50": None, "p95": None},
        },
        {
            "name": "eu",
            "workers": 2,
            "allowed": True,
            "queued": 2,
            "in_flight": 1,
            "wait_ms": {"p50": 200.0, "p95": 290.0},  # of 100 and 300: the one of ten minutes ago left out
        },
    ]
    bob_eu = next(p for p in get_pools(bob) if p["name"] == "eu")
    assert (bob_eu["queued"], bob_eu["in_flight"], bob_eu["wait_ms"]["p50"]) == (3, 3, 50_000.0)


def test_a_pool_outside_allowed_pools_shows_only_while_it_holds_the_tenants_jobs(alice):
    """A pool the quota does not allow is not offered; one that still holds jobs placed before the
    quota changed shows with ``allowed`` false."""
    beat("w1", "default")
    beat("w2", "eu")
    beat("w3", "gpu")
    alice.tenant.quota.allowed_pools = ["default"]
    alice.tenant.quota.save()
    make_job(alice, pool="eu", status="queued")

    listed = {p["name"]: (p["allowed"], p["workers"], p["queued"]) for p in get_pools(alice)}
    assert listed == {"default": (True, 1, 0), "eu": (False, 1, 1)}


def test_a_pool_whose_workers_stopped_beating_is_not_live(alice):
    pools.beat(worker="gone", pools=["eu"], ttl_s=15, now=time.time() - 60)  # expired 45 s ago
    beat("w1", "default")
    assert [p["name"] for p in get_pools(alice)] == ["default"]
    make_job(alice, pool="eu", status="queued")  # still listed for its job, with no live worker
    assert {p["name"]: p["workers"] for p in get_pools(alice)} == {"default": 1, "eu": 0}


def test_a_read_key_may_look_and_no_key_may_not(alice):
    beat("w1", "default")
    issued = api_key_issue(tenant=alice.tenant, name="ro", created_by=alice.user, scope=ApiKey.Scope.READ)
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    assert [p["name"] for p in reader.get("/api/v1/pools").json()["pools"]] == ["default"]
    assert APIClient().get("/api/v1/pools").status_code == 401


def test_the_platforms_figures_count_every_tenant_and_the_rq_queue(alice, bob):
    beat("w1", "default", "eu")
    make_job(alice, pool="eu", status="queued")
    make_job(bob, pool="eu", status="running", started_s_ago=5, wait_ms=40.0)
    pools.queue("eu").enqueue("jobs.tasks.run_job", "00000000-0000-0000-0000-000000000000", 1)

    found = {p["name"]: p for p in pool_stats.platform_pools()}
    assert set(found) == {"default", "eu"}
    eu = found["eu"]
    assert (eu["workers"], eu["queue_depth"], eu["queued"], eu["in_flight"]) == (["w1"], 1, 1, 1)
    assert eu["started"] == 1
    assert 40.0 / 1.25 <= eu["wait_ms"]["p50"] <= eu["wait_ms"]["p95"] <= 40.0 * 1.25  # one 25% bucket
    assert found["default"]["queue_depth"] == 0


@pytest.mark.parametrize("minutes_ago", [4, 6])
def test_the_wait_window_is_five_minutes(alice, minutes_ago):
    now = timezone.now()
    make_job(alice, pool="eu", status="succeeded", started_s_ago=minutes_ago * 60, wait_ms=10.0)
    waits = {p["name"]: p["wait_ms"]["p50"] for p in pool_stats.tenant_pools(tenant=alice.tenant, now=now)}
    assert waits == ({"eu": 10.0} if minutes_ago < 5 else {})


def test_the_schema_describes_the_answer(db):
    schema = APIClient().get("/api/schema/?format=json").json()
    answer = schema["paths"]["/api/v1/pools"]["get"]["responses"]["200"]["content"]["application/json"]
    pool = schema["components"]["schemas"][answer["schema"]["$ref"].rsplit("/", 1)[1]]["properties"]["pools"]
    fields = schema["components"]["schemas"][pool["items"]["$ref"].rsplit("/", 1)[1]]["properties"]
    assert set(fields) == {"name", "workers", "allowed", "queued", "in_flight", "wait_ms"}
