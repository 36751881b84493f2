"""The pool's idle cells bounded by memory: least recently used first, provisioned cells last,
spares within what is left, room made when running jobs need it. Cells are stand-ins (no engine):
what is tested is the pool's bookkeeping, the real cells are the Docker tests' business."""

from __future__ import annotations

import itertools
import time

import pytest

import sandbox
from sandbox import Limits, RunResult, RunSpec
from sandbox.capacity import Budget

_ids = itertools.count()


class FakeCell:
    """What the pool asks of a cell, without a container."""

    def __init__(self, runtime: str, limits: Limits) -> None:
        self.runtime, self.limits = runtime, limits
        self.profile = (runtime, limits.profile())
        self.name = f"fake-{next(_ids)}"
        self.id = self.name
        self.key = None
        self.door = None
        self.broken = False
        self.destroyed = False
        self.idle_cpu_ns = None
        self.last_used = time.monotonic()

    def await_clean(self) -> bool:
        return not self.broken

    def execute(self, spec, on_output=None, cancel=None) -> RunResult:
        self.last_used = time.monotonic()
        return RunResult(status="succeeded", result=spec.tenant)

    def retire(self) -> None:
        self.broken = True

    def destroy(self) -> None:
        self.retire()
        self.destroyed = True


@pytest.fixture
def make_pool(monkeypatch):
    pools = []

    def make(**options) -> sandbox.Sandbox:
        pool = sandbox.Sandbox(reuse="tenant", **options)
        pool.started = []

        def new_cell(runtime, limits, layer=None, spec=None) -> FakeCell:
            pool.started.append(FakeCell(runtime, limits))
            return pool.started[-1]

        monkeypatch.setattr(pool, "_new_cell", new_cell)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close()


def run(pool: sandbox.Sandbox, tenant: str) -> RunResult:
    return pool.run(RunSpec(runtime="python", code="def main():\n    return 1\n", tenant=tenant))


def idle_tenants(pool: sandbox.Sandbox) -> set[str]:
    return {cell.key[0] for cell in pool._lru}


def test_it_keeps_as_many_idle_cells_as_the_memory_holds_and_drops_the_least_recently_used(make_pool):
    pool = make_pool(budget=Budget(budget_mb=120, max_inflight=10, idle_cell_mb=12))  # room for 10
    for i in range(12):
        assert run(pool, f"t{i}").status == "succeeded"
    pool.flush()
    assert pool.stats()["idle_cells"] == 10
    assert idle_tenants(pool) == {f"t{i}" for i in range(2, 12)}  # t0 and t1 went first
    assert [c.destroyed for c in pool.started[:2]] == [True, True]
    run(pool, "t2")  # used again: now the most recent
    run(pool, "t12")
    assert "t2" in idle_tenants(pool) and "t3" not in idle_tenants(pool)


def test_running_jobs_take_the_room_of_idle_cells(make_pool):
    budget = Budget(budget_mb=120, max_inflight=10, idle_cell_mb=12)
    pool = make_pool(budget=budget)
    for i in range(10):
        run(pool, f"t{i}")
    assert pool.stats()["idle_cells"] == 10
    assert budget.admit(60)  # a job the worker admitted: 60 MB less for idle cells
    run(pool, "t9")  # its acquire makes the room
    pool.flush()
    assert pool.stats()["idle_cells"] == 5
    assert idle_tenants(pool) == {"t5", "t6", "t7", "t8", "t9"}


def test_provisioned_cells_are_evicted_last(make_pool):
    pool = make_pool(budget=Budget(budget_mb=36, max_inflight=10, idle_cell_mb=12))  # room for 3
    kept = RunSpec(runtime="python", code="", tenant="kept")
    run(pool, "kept")
    pool.set_provisioned([(kept, 1)])
    for tenant in ("a", "b", "c", "d"):
        run(pool, tenant)
    assert "kept" in idle_tenants(pool)
    assert idle_tenants(pool) == {"kept", "c", "d"}


def test_a_count_cap_still_applies_when_given(make_pool):
    pool = make_pool(max_idle_cells=2)
    for tenant in ("a", "b", "c"):
        run(pool, tenant)
    assert idle_tenants(pool) == {"b", "c"}


def test_spares_fill_what_the_memory_leaves_and_grow_with_arrivals(make_pool):
    limits = Limits()
    pool = make_pool(
        budget=Budget(budget_mb=60, max_inflight=10, idle_cell_mb=12),  # room for 5
        spare_profiles=(("python", limits),),
        spares_per_profile=1,
        spares_max=8,
    )
    pool.maintain()
    assert pool.stats()["spares"] == 1
    for i in range(20):  # a burst of new tenants: each takes a spare or starts a cell
        pool.run(RunSpec(runtime="python", code="", tenant=f"new{i}", limits=limits))
    assert pool.arrivals.target() == 4  # 20 arrivals in 10 s, for the next 2 s
    pool.flush()
    assert pool.stats()["idle_cells"] + pool.stats()["spares"] <= 5
    pool.maintain()
    pool.flush()
    # spares (any new tenant's) push the least recently used idle cells (one tenant's each) out
    assert pool.stats()["spares"] == 4
    assert pool.stats()["idle_cells"] == 1 and idle_tenants(pool) == {"new19"}
