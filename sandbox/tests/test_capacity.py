"""The memory budget: admission by the running jobs' limits, the idle cells' allowance, spares by arrivals."""

from __future__ import annotations

import threading
import time

from sandbox import capacity
from sandbox.capacity import Arrivals, Budget


def test_it_reads_the_host_memory_and_a_lower_cgroup_limit(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24683772 kB\nMemFree:        22107724 kB\n")
    unlimited = tmp_path / "memory.max"
    unlimited.write_text("max\n")
    assert capacity.host_memory_mb(str(meminfo), (str(unlimited),)) == 24683772 // 1024
    limited = tmp_path / "limit_in_bytes"
    limited.write_text(str(2 * 1024**3))
    assert capacity.host_memory_mb(str(meminfo), (str(unlimited), str(limited))) == 2048
    assert capacity.host_memory_mb(str(tmp_path / "absent"), ()) == 4096  # unreadable: never zero


def test_it_sizes_the_default_budget_share_and_cap():
    assert capacity.default_budget_mb(24_000) == 18_000
    assert capacity.worker_share_mb(18_000, 2) == 9_000
    assert capacity.default_max_inflight(9_000, 32) == 281
    assert capacity.default_max_inflight(10_000_000, 32) == capacity.MAX_INFLIGHT_CEILING
    assert capacity.default_max_inflight(10, 32) == 1


def test_it_admits_jobs_while_their_limits_fit_and_never_more():
    budget = Budget(budget_mb=1000, max_inflight=100)
    assert budget.admit(400) and budget.admit(400)
    assert not budget.admit(400)  # 1200 > 1000
    assert budget.admit(200)  # exactly 1000
    assert not budget.room_for(32)
    budget.release(400)
    assert budget.room_for(400) and not budget.room_for(401)
    assert budget.snapshot() == {"budget_mb": 1000, "running_mb": 600, "inflight": 2, "max_inflight": 100}


def test_it_caps_the_count_as_well_as_the_memory():
    budget = Budget(budget_mb=10_000, max_inflight=2)
    assert budget.admit(32) and budget.admit(32)
    assert not budget.admit(32)


def test_a_job_larger_than_the_whole_share_runs_alone_rather_than_never():
    budget = Budget(budget_mb=256, max_inflight=10)
    assert budget.admit(1024)
    assert not budget.admit(32)  # nothing beside it
    budget.release(1024)
    assert budget.admit(32)
    assert not budget.admit(1024)


def test_a_waiting_admission_gets_the_room_a_release_frees():
    budget = Budget(budget_mb=100, max_inflight=10)
    assert budget.admit(100)
    admitted = []
    waiter = threading.Thread(target=lambda: admitted.append(budget.admit(60, timeout=5.0)))
    waiter.start()
    time.sleep(0.05)
    assert admitted == []
    budget.release(100)
    waiter.join(timeout=5)
    assert admitted == [True] and budget.running_mb == 60


def test_wait_released_and_wait_idle_follow_the_jobs_ending():
    budget = Budget(budget_mb=100, max_inflight=10)
    assert not budget.wait_released(timeout=0.01)
    budget.admit(10)
    threading.Timer(0.05, budget.release, args=(10,)).start()
    assert budget.wait_released(timeout=5.0)
    assert budget.wait_idle(timeout=1.0)


def test_idle_cells_get_what_the_running_jobs_leave():
    budget = Budget(budget_mb=120, max_inflight=10, idle_cell_mb=12)
    assert budget.idle_cells_allowed() == 10
    budget.admit(60)
    assert budget.idle_cells_allowed() == 5
    budget.admit(60)
    assert budget.idle_cells_allowed() == 0


def test_spares_follow_how_fast_jobs_needing_a_new_cell_arrive():
    now = [0.0]
    arrivals = Arrivals(minimum=1, maximum=8, window_s=10.0, horizon_s=2.0, clock=lambda: now[0])
    assert arrivals.target() == 1  # quiet: the minimum
    for _ in range(20):  # 2 per second over the window
        arrivals.record()
    assert arrivals.target() == 4  # what arrives in the next 2 s
    for _ in range(200):
        arrivals.record()
    assert arrivals.target() == 8  # never past the maximum
    now[0] = 11.0
    assert arrivals.target() == 1  # the burst is over


def test_the_warm_reserve_is_never_given_to_jobs_and_keeps_cells_warm_on_a_full_host():
    budget = Budget(budget_mb=1000, max_inflight=100, idle_cell_mb=10, warm_reserve_mb=100)
    assert budget.admit(450) and budget.admit(450)
    assert not budget.admit(32)  # 900 of 1000: the rest is the reserve
    assert budget.idle_cells_allowed() == 10  # the reserve holds ten idle cells however full
    assert capacity.default_warm_reserve_mb(18_000) == 1_800
