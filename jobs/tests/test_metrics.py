"""Per-pool metrics in the exposition Prometheus reads, from real PostgreSQL and Redis."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from conftest import TEST_POOL_WORKER
from jobs import pools
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
    assert found[("lambdasite_pool_queue_wait_seconds", (("pool", "eu"), ("quantile", "0.5")))] == 0.2
    assert found[("lambdasite_pool_queue_wait_seconds", (("pool", "eu"), ("quantile", "0.95")))] == 0.29
    # a pool where nothing started in the window has no quantiles (not a made-up zero)
    assert not [
        key for key in found if key[0] == "lambdasite_pool_queue_wait_seconds" and ("pool", "burst") in key[1]
    ]


def test_with_no_worker_and_no_job_the_default_pool_is_still_there(db):
    found = scrape()
    assert found[("lambdasite_pool_workers", (("pool", "default"),))] == 0
    assert found[("lambdasite_pool_jobs", (("pool", "default"), ("state", "queued")))] == 0
