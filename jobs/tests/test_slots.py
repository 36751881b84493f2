"""jobs.slots: which waiting jobs take a slot, and why one does not (pure rules, no database)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from jobs.slots import Candidate, Limits, Slots

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def cand(n: int, function_id=None, key=None, priority: int = 5, round: int = 0) -> Candidate:
    at = T0 + timedelta(seconds=n)
    return Candidate(f"j{n}", function_id, key, priority, at, at, round)


def ids(chosen) -> list[str]:
    return [c.id for c in chosen]


def test_higher_priority_goes_first_then_age():
    slots = Slots(cap=3, functions={})
    chosen = slots.choose([cand(1, priority=1), cand(2, priority=9), cand(3), cand(4)])
    assert ids(chosen) == ["j2", "j3", "j4"]


def test_a_function_ceiling_holds():
    slots = Slots(cap=10, functions={1: Limits("f", 2, 0, "", None)}, in_flight=Counter({(1, None): 1}))
    chosen = slots.choose([cand(1, 1), cand(2, 1), cand(3, 1), cand(4)])
    assert ids(chosen) == ["j1", "j4"]
    assert slots.why_waiting(1, None) is None  # 1/2: it may start
    full = Slots(cap=10, functions=slots.functions, in_flight=Counter({(1, None): 2}))
    assert full.why_waiting(1, None) == "function max_concurrency 2/2"


def test_reserved_slots_are_never_taken_by_others():
    functions = {1: Limits("critical", None, 2, "", None)}
    slots = Slots(cap=4, functions=functions)
    chosen = slots.choose([cand(n) for n in range(10)])
    assert len(chosen) == 2  # 4 - 2 reserved
    busy = Slots(cap=4, functions=functions, in_flight=Counter({(None, None): 2}))
    assert busy.why_waiting(None, None).startswith(
        "function reserved: the tenant's unreserved concurrency 2/2"
    )
    assert ids(busy.choose([cand(20), cand(21, 1), cand(22, 1), cand(23, 1)])) == ["j21", "j22"]


def test_a_reserved_function_may_use_the_unreserved_rest():
    slots = Slots(cap=4, functions={1: Limits("f", None, 1, "", None)})
    assert len(slots.choose([cand(n, 1) for n in range(6)])) == 4


def test_keys_take_turns():
    functions = {1: Limits("sync", None, 0, "$[0].store", 1)}
    slots = Slots(cap=5, functions=functions, in_flight=Counter({(1, "a"): 1}))
    flood = [cand(n, 1, "a", round=1 + n) for n in range(1, 50)]
    chosen = slots.choose([*flood, cand(99, 1, "b", round=1)])
    assert ids(chosen) == ["j99"]  # a's lane is full; b goes at once
    assert slots.why_waiting(1, "a") == "key store=a: 1/1 in use"


def test_the_tenant_cap_is_said_first():
    slots = Slots(cap=2, functions={}, in_flight=Counter({(None, None): 2}))
    assert slots.choose([cand(1)]) == []
    assert slots.why_waiting(None, None) == "tenant concurrency 2/2"
