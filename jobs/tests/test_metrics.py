"""Per-pool metrics in the exposition Prometheus reads, from real PostgreSQL and Redis."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from conftest import TEST_POOL_WORKER
from jobs import metrics, pool_waits, pools
from jobs.metrics import LambdasiteCollector
from jobs.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def only_the_workers_a_test_beats(redis_conn):
    """Live workers here are the heartbeats each test writes: not the suite's stand-in worker of the
    default pool (conftest), which every other test needs for its jobs to be dispatched."""
    pools.gone(worker=TEST_POOL_WORKER, pools=[pools.DEFAULT_POOL])


def place(persona, pool: str, status: str, *, wait_ms: float | None = None) -> Job:
    started = timezone.now() - timedelta(seconds=30) if wait_ms is not None else None
    if wait_ms is not None:  # what the claim of its first attempt records (lifecycle.job_claim)
        metrics.observe_queue_wait(pool, wait_ms / 1000, now=started.timestamp())
    return Job.objects.create(
        tenant=persona.tenant, runtime="python", code="def main():\n    return 1\n", timeout_ms=5000,
        memory_mb=128, status=status, pool=pool, home_pool=pool, started_at=started, queue_wait_ms=wait_ms,
    )  # fmt: skip


def scrape() -> dict[tuple, float]:
    """(sample name, sorted labels) -> value, as Prometheus parses the text /metrics serves."""
    registry = CollectorRegistry()
    registry.register(LambdasiteCollector())
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("lambdasite_pool_")
    }


def test_every_pool_has_its_workers_queue_jobs_and_recent_waits(alice, bob):
    pools.beat(worker="a", pools=["default", "eu"], ttl_s=30)
    pools.beat(worker="b", pools=["eu"], ttl_s=30)
    place(alice, "eu", "queued")
    place(bob, "eu", "queued")  # every tenant's jobs count here
    place(alice, "eu", "running", wait_ms=100.0)
    place(bob, "eu", "succeeded", wait_ms=300.0)
    place(alice, "burst", "queued")  # a pool with jobs and no worker
    pools.queue("eu").enqueue("jobs.tasks.run_job", "00000000-0000-0000-0000-000000000000", 1)

    found = scrape()
    assert found[("lambdasite_pool_workers", (("pool", "eu"),))] == 2
    assert found[("lambdasite_pool_workers", (("pool", "default"),))] == 1
    assert found[("lambdasite_pool_workers", (("pool", "burst"),))] == 0
    assert found[("lambdasite_pool_queue_depth", (("pool", "eu"),))] == 1
    assert found[("lambdasite_pool_queue_depth", (("pool", "default"),))] == 0
    assert found[("lambdasite_pool_jobs", (("pool", "eu"), ("state", "queued")))] == 2
    assert found[("lambdasite_pool_jobs", (("pool", "eu"), ("state", "in_flight")))] == 1
    assert found[("lambdasite_pool_jobs", (("pool", "burst"), ("state", "queued")))] == 1
    # 100 and 300 ms: quantiles read from 25%-wide buckets, interpolated inside the one they fall in
    p50 = found[("lambdasite_pool_queue_wait_seconds", (("pool", "eu"), ("quantile", "0.5")))]
    p95 = found[("lambdasite_pool_queue_wait_seconds", (("pool", "eu"), ("quantile", "0.95")))]
    assert 0.1 / 1.25 <= p50 <= 0.1 * 1.25
    assert 0.3 / 1.25 <= p95 <= 0.3 * 1.25
    # a pool where nothing started in the window has no quantiles (not a made-up zero)
    assert not [
        key for key in found if key[0] == "lambdasite_pool_queue_wait_seconds" and ("pool", "burst") in key[1]
    ]


def test_with_no_worker_and_no_job_the_default_pool_is_still_there(db):
    found = scrape()
    assert found[("lambdasite_pool_workers", (("pool", "default"),))] == 0
    assert found[("lambdasite_pool_jobs", (("pool", "default"), ("state", "queued")))] == 0


def test_a_pools_waits_are_those_of_the_last_five_minutes(redis_conn):
    now = 1_000_000.0
    for minutes_ago, wait_s in ((0.1, 0.010), (2, 0.020), (4.5, 0.040), (7, 9.0)):
        metrics.observe_queue_wait("eu", wait_s, now=now - minutes_ago * 60)
    n, p50, p95 = pool_waits.pool_waits(now=now)["eu"]
    assert n == 3  # the 9 s wait of 7 minutes ago is out of the window
    assert 20 / 1.25 <= p50 <= 20 * 1.25
    assert 40 / 1.25 <= p95 <= 40 * 1.25
    assert "eu" not in pool_waits.pool_waits(now=now + 7 * 60)  # all of it out of the window now


def test_a_pools_quantiles_are_within_a_bucket_of_the_exact_ones(redis_conn):
    import random
    import statistics

    rng = random.Random(7)
    waits = [rng.lognormvariate(-3, 1.2) for _ in range(2000)]  # a long-tailed spread around 50 ms
    for wait in waits:
        metrics.observe_queue_wait("default", wait, now=500.0)
    _, p50, p95 = pool_waits.pool_waits(now=510.0)["default"]
    cuts = statistics.quantiles(waits, n=100)
    assert abs(p50 / 1000 - cuts[49]) <= 0.125 * cuts[49]
    assert abs(p95 / 1000 - cuts[94]) <= 0.125 * cuts[94]


def test_the_claim_of_a_first_attempt_records_its_wait_in_its_pool(
    alice, redis_conn, django_capture_on_commit_callbacks
):
    from jobs.services import lifecycle

    job = place(alice, "eu", "dispatched")
    with django_capture_on_commit_callbacks(execute=True):
        assert lifecycle.job_claim(job_id=job.pk, worker="w1") is not None
    assert pool_waits.pool_waits()["eu"][0] == 1
    assert "default" not in pool_waits.pool_waits()
