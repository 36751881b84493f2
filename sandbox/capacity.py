"""The host's memory budget: how many jobs a worker runs at once, how many idle cells it keeps.

A job is admitted only while the memory limits of the jobs running beside it, plus its own, stay
within the worker's share of the host's budget (``HOST_MEMORY_BUDGET_MB``, by default three
quarters of the host's memory or of its cgroup's limit, split between the ``WORKERS_PER_HOST``
job-worker processes of the host). A limit is what a job may use, not what it uses: summing limits
is what makes the kernel's OOM killer a job's verdict, never a neighbour's. Idle cells and spares
use what is left (``idle_cell_mb`` each, measured: a runner waiting for its next job) and go first,
least recently used first, when running jobs need the room; ``warm_reserve_mb`` of the share is
never given to jobs, so a host running all it can still keeps that many cells warm for the next
ones (without it, a full host evicted every idle cell and the next wave of jobs started cold).

Plain Python (no Django): the worker, the pool and their tests share it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

BUDGET_SHARE = 0.75  # of the host's memory: the rest is the engine's, the shims', PostgreSQL's, the OS's
MAX_INFLIGHT_CEILING = 1024  # threads, cells and sockets of one process: beyond this, run another worker
CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def host_memory_mb(meminfo: str = "/proc/meminfo", cgroup_limits: tuple[str, ...] = CGROUP_LIMITS) -> int:
    """The memory this process may count on: the host's total, or its cgroup's limit when lower."""
    total_mb = 0
    try:
        for line in Path(meminfo).read_text().splitlines():
            if line.startswith("MemTotal:"):
                total_mb = int(line.split()[1]) // 1024
                break
    except (OSError, ValueError, IndexError):
        total_mb = 0
    for path in cgroup_limits:
        try:
            raw = Path(path).read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < (1 << 60):  # "max" or a near-2^63 number: no limit
            limit_mb = int(raw) // (1024 * 1024)
            total_mb = min(total_mb, limit_mb) if total_mb else limit_mb
    return total_mb or 4096  # unreadable: a small host's worth, never zero


def default_budget_mb(total_mb: int | None = None) -> int:
    return int((total_mb if total_mb is not None else host_memory_mb()) * BUDGET_SHARE)


def worker_share_mb(budget_mb: int, workers_per_host: int) -> int:
    """One job-worker process's share of the host's budget."""
    return max(1, budget_mb // max(1, workers_per_host))


def default_warm_reserve_mb(share_mb: int) -> int:
    """The part of a worker's share kept for warm cells whatever runs: a tenth."""
    return share_mb // 10


def default_max_inflight(share_mb: int, smallest_job_mb: int) -> int:
    """As many of the smallest jobs as the share holds: memory, not this cap, is the real bound."""
    return max(1, min(MAX_INFLIGHT_CEILING, share_mb // max(1, smallest_job_mb)))


class Budget:
    """One worker process's share: the jobs it runs (count and memory limits) and its idle cells'
    allowance. Thread-safe: job threads admit and release, the pool asks how many cells it may keep."""

    def __init__(
        self, *, budget_mb: int, max_inflight: int, idle_cell_mb: int = 12, warm_reserve_mb: int = 0
    ) -> None:
        self.budget_mb = budget_mb
        self.jobs_mb = max(1, budget_mb - max(0, warm_reserve_mb))  # what running jobs may hold
        self.max_inflight = max(1, max_inflight)
        self.idle_cell_mb = max(1, idle_cell_mb)
        self.running_mb = 0
        self.inflight = 0
        self._released = 0  # a counter: waiters for "any release" compare it
        self._cond = threading.Condition()

    def _fits(self, memory_mb: int) -> bool:
        if self.inflight >= self.max_inflight:
            return False
        # a job larger than the whole share still runs, alone: refusing it forever would strand it
        return self.inflight == 0 or self.running_mb + memory_mb <= self.jobs_mb

    def room_for(self, memory_mb: int) -> bool:
        with self._cond:
            return self._fits(memory_mb)

    def wait_for_room(self, memory_mb: int, timeout: float) -> bool:
        """Wait up to ``timeout`` until a job of ``memory_mb`` would fit (without taking the room)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._fits(memory_mb), timeout)

    def admit(self, memory_mb: int, timeout: float = 0.0) -> bool:
        """Take the room for one job of ``memory_mb``, waiting up to ``timeout`` for it."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._fits(memory_mb), timeout):
                return False
            self.inflight += 1
            self.running_mb += memory_mb
            return True

    def release(self, memory_mb: int) -> None:
        with self._cond:
            self.inflight -= 1
            self.running_mb -= memory_mb
            self._released += 1
            self._cond.notify_all()

    def wait_released(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for any job to end (room may have come)."""
        with self._cond:
            seen = self._released
            return self._cond.wait_for(lambda: self._released != seen, timeout)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no job runs (a graceful stop)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.inflight == 0, timeout)

    def idle_cells_allowed(self) -> int:
        """How many idle cells and spares fit beside the running jobs' limits."""
        with self._cond:
            return max(0, (self.budget_mb - self.running_mb) // self.idle_cell_mb)

    def snapshot(self) -> dict:
        with self._cond:
            return {
                "budget_mb": self.budget_mb,
                "running_mb": self.running_mb,
                "inflight": self.inflight,
                "max_inflight": self.max_inflight,
            }


class Arrivals:
    """How fast jobs arrive that need a new cell (a tenant, a profile no idle cell serves): the
    spares kept are what arrives while one is being started, so a burst of new tenants finds them
    ready, and a quiet host keeps only ``minimum``."""

    def __init__(
        self,
        *,
        minimum: int,
        maximum: int,
        window_s: float = 10.0,
        horizon_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.minimum, self.maximum = minimum, max(minimum, maximum)
        self.window_s, self.horizon_s = window_s, horizon_s
        self.clock = clock
        self._seen: deque[float] = deque()
        self._lock = threading.Lock()

    def record(self) -> None:
        with self._lock:
            self._seen.append(self.clock())
            self._forget()

    def _forget(self) -> None:
        edge = self.clock() - self.window_s
        while self._seen and self._seen[0] < edge:
            self._seen.popleft()

    def target(self) -> int:
        """Spares to keep per profile: the arrivals of the next ``horizon_s`` at the recent rate."""
        with self._lock:
            self._forget()
            rate = len(self._seen) / self.window_s
        return min(self.maximum, max(self.minimum, math.ceil(rate * self.horizon_s)))
