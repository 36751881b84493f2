"""Worker pools exist while a live worker serves them: names, queues and the expiring heartbeats
(jobs.pools), against the suite's real Redis."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from conftest import TEST_POOL_WORKER
from jobs import pools


@pytest.fixture(autouse=True)
def only_the_workers_a_test_beats(redis_conn):
    """These tests count heartbeats: not the suite's stand-in worker of the default pool (conftest)."""
    pools.gone(worker=TEST_POOL_WORKER, pools=[pools.DEFAULT_POOL])
    pools.forget_live()


@pytest.mark.parametrize("raw", ["default", "eu", "eu-west-1", "a", "x" * 32])
def test_a_valid_pool_name_is_accepted(raw):
    assert pools.parse_names(raw) == [raw]


@pytest.mark.parametrize("raw", ["", "EU", "1eu", "-eu", "eu_west", "eu west", "x" * 33, "é"])
def test_a_bad_pool_name_is_refused_by_name(raw):
    with pytest.raises(ValueError, match="pool"):
        pools.parse_names(raw)


def test_a_list_of_pools_keeps_its_order_and_drops_repeats():
    assert pools.parse_names(" eu, default ,eu") == ["eu", "default"]
    assert pools.parse_names(["burst", "eu"]) == ["burst", "eu"]


@override_settings(RQ_QUEUE="jobs")
def test_the_default_pool_keeps_the_jobs_queue_and_others_get_their_own():
    assert pools.queue_name("default") == "jobs"
    assert pools.queue_name("eu") == "jobs.eu"
    assert pools.queue("eu").key == "rq:queue:jobs.eu"


def test_a_pool_is_live_while_a_worker_beats_for_it_and_dead_after_its_ttl(redis_conn):
    pools.beat(worker="w1", pools=["default", "eu"], ttl_s=3, now=1000.0)
    pools.beat(worker="w2", pools=["eu"], ttl_s=3, now=1001.0)
    assert pools.live_workers(now=1002.0) == {"default": ["w1"], "eu": ["w1", "w2"]}
    assert pools.live_workers(now=1003.5) == {"eu": ["w2"]}  # w1 missed its beats
    assert pools.live_workers(now=1004.5) == {}


def test_a_worker_that_stops_leaves_its_pools_at_once(redis_conn):
    pools.beat(worker="w1", pools=["default", "eu"], ttl_s=60)
    pools.beat(worker="w2", pools=["default"], ttl_s=60)
    pools.gone(worker="w1", pools=["default", "eu"])
    assert pools.live_workers() == {"default": ["w2"]}


def test_a_flushed_redis_is_healed_by_the_next_beat(redis_conn):
    pools.beat(worker="w1", pools=["eu"], ttl_s=60)
    redis_conn.flushdb()
    assert pools.live_workers() == {}
    pools.beat(worker="w1", pools=["eu"], ttl_s=60)
    assert pools.live_workers() == {"eu": ["w1"]}


def test_the_live_names_are_read_again_only_after_the_cache_time(redis_conn):
    now = [0.0]
    cache = pools._LiveCache(clock=lambda: now[0])
    pools.beat(worker="w1", pools=["eu"], ttl_s=60)
    assert cache.names() == {"eu"}
    pools.beat(worker="w2", pools=["burst"], ttl_s=60)
    now[0] = pools.LIVE_CACHE_S / 2
    assert cache.names() == {"eu"}  # still the copy read at 0
    now[0] = pools.LIVE_CACHE_S
    assert cache.names() == {"eu", "burst"}
    pools.gone(worker="w1", pools=["eu"])
    cache.forget()
    assert cache.names() == {"burst"}


def test_the_worker_command_refuses_a_bad_pool_before_starting_anything():
    with pytest.raises(CommandError, match="--pools"):
        call_command("worker", "--pools", "eu,Bad Pool")
