"""lambdasite.caching: the bounded, generation-checked cache and the best-effort call."""

from __future__ import annotations

import logging

from lambdasite.caching import MISSING, Cache, best_effort


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_is_good_until_it_is_too_old():
    clock = Clock()
    cache = Cache(max_age_s=2.0, clock=clock)
    cache.put("k", "v")
    clock.now += 1.9
    assert cache.get("k") == "v"
    clock.now += 0.1
    assert cache.get("k") is MISSING


def test_an_entry_is_good_only_for_the_generation_it_was_read_after():
    cache = Cache()
    cache.put("k", "v", generation=b"7")
    assert cache.get("k", generation=b"7") == "v"
    assert cache.get("k", generation=b"8") is MISSING


def test_no_generation_means_no_cache():
    cache = Cache()
    cache.put("k", "v", generation=False)
    assert len(cache) == 0
    cache.put("k", "v", generation=b"1")
    assert cache.get("k", generation=False) is MISSING


def test_a_full_cache_starts_again_and_a_zero_age_keeps_nothing():
    cache = Cache(max_entries=2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("b", 3)  # replacing a key does not clear
    assert cache.get("a") == 1
    cache.put("c", 4)
    assert cache.get("a") is MISSING and cache.get("c") == 4 and len(cache) == 1
    ages = [0.0]
    off = Cache(max_age_s=lambda: ages[0])
    off.put("a", 1)
    assert off.get("a") is MISSING


def test_get_or_load_loads_once():
    cache, loads = Cache(), []
    for _ in range(3):
        assert cache.get_or_load("k", lambda: loads.append(1) or "v") == "v"
    assert loads == [1]


def test_best_effort_logs_and_swallows(caplog):
    def broken():
        raise ConnectionError("away")

    with caplog.at_level(logging.WARNING, logger="lambdasite"):
        assert best_effort("telling redis", broken) is None
    assert "telling redis failed" in caplog.text and "ConnectionError" in caplog.text
    assert best_effort("adding", lambda a, b: a + b, 2, 3) == 5
