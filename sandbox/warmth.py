"""What the cell pool keeps between jobs: idle cells expired or evicted, spares sized, provisioned cells.

The pool (:class:`sandbox.pool.Sandbox`) starts, hands out, takes back and removes cells; this part
decides which of the cells it holds between jobs stay, and tops them up. Idle cells and spares live
in the memory that the worker's :class:`~sandbox.capacity.Budget` leaves beside the running jobs'
limits (and within ``max_idle_cells``, if set): over it, the least recently used idle cell goes first,
a provisioned one last, then the spares. Spares per profile follow :class:`~sandbox.capacity.Arrivals`
(how fast jobs needing a new cell come). An idle cell whose tenant code burns CPU between jobs, or
that has waited ``idle_ttl_s``, is retired; provisioned cells never expire and are started again
when missing.

A mixin, so that the pool keeps one set of state behind one lock: it reads the pool's attributes
(declared below) and calls back its ``_new_cell``, ``_discard``, ``warm`` and ``set_provisioned``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

import docker

from . import cgroups
from .capacity import Arrivals, Budget
from .cell import Cell
from .exceptions import SandboxError
from .spec import Limits, RunSpec
from .sweep import sweep_orphans

log = logging.getLogger("lambdasite.sandbox")


class Warmth:
    """The pool's upkeep of what it keeps warm: one pass (``maintain``) and the thread that runs it."""

    # the pool's state, set in Sandbox.__init__; the cell maps are guarded by _lock
    client: docker.DockerClient
    idle_ttl_s: float
    max_idle_cells: int | None
    budget: Budget | None
    spare_profiles: tuple[tuple[str, Limits], ...]
    arrivals: Arrivals
    sweep_interval_s: float
    provision_source: Callable[[], list[tuple[RunSpec, int]]] | None
    provision_interval_s: float
    provision_changed: Callable[[], bool] | None
    idle_cpu_max_ms: float
    on_idle_cpu: Callable[[str, float, int], None] | None
    _lock: threading.Lock
    _idle: dict[tuple, list[Cell]]
    _lru: OrderedDict[Cell, None]
    _spares: dict[tuple, list[Cell]]
    _busy: set[Cell]
    _provisioned: dict[tuple, tuple[RunSpec, int]]
    _provision_read: float
    _starter: ThreadPoolExecutor
    _stop: threading.Event
    _wake: threading.Event
    _thread: threading.Thread | None

    def start_maintenance(self, interval_s: float = 1.0) -> None:
        """Refill spares and reap idle cells in a background thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._maintain_loop, args=(interval_s,), name="sandbox-pool", daemon=True
        )
        self._thread.start()

    def maintain(self) -> None:
        """One maintenance pass: drop expired idle cells and cells whose tenant code ran while idle,
        top up spares and provisioned cells."""
        now = time.monotonic()
        expired = []
        with self._lock:
            idle = list(self._lru)
        burning = {c for c in idle if self._burning(c)}
        with self._lock:
            for key, cells in list(self._idle.items()):
                ttl = float("inf") if key in self._provisioned else self.idle_ttl_s
                keep = [c for c in cells if now - c.last_used < ttl and not c.broken and c not in burning]
                expired += [c for c in cells if c not in keep]
                if keep:
                    self._idle[key] = keep
                else:
                    del self._idle[key]
            for cell in expired:
                self._lru.pop(cell, None)
            expired += self._evict_over_capacity()
        for cell in expired:
            self._discard(cell)
        self._refill_spares()
        self._provision()

    def _burning(self, cell: Cell) -> bool:
        """Has this idle cell used more CPU than it may since its last job ended? (Reported once.)"""
        if not self.idle_cpu_max_ms or cell.idle_cpu_ns is None:
            return False
        used = cgroups.cpu_ns(cell.id)
        if used is None:
            return False
        burnt_ms = (used - cell.idle_cpu_ns) / 1e6
        if burnt_ms <= self.idle_cpu_max_ms:
            return False
        log.warning("cell %s used %.0f ms of CPU while idle: retired", cell.name, burnt_ms)
        if self.on_idle_cpu is not None and cell.key is not None:
            try:
                self.on_idle_cpu(str(cell.key[0]), burnt_ms, cell.limits.memory_mb)
            except Exception:  # noqa: BLE001 - billing must not stop the pool
                log.exception("reporting a cell's idle CPU failed")
        cell.idle_cpu_ns = None
        return True

    def _refill_spares(self) -> None:
        """Top up each spare profile to what arrivals ask for, started side by side (bounded by the
        start gate), within the memory left beside the running jobs. A spare serves any new tenant,
        an idle cell one tenant: spares push the least recently used idle cells out, not the reverse."""
        target = self.arrivals.target()
        starts = []
        for runtime, limits in self.spare_profiles:
            key = (runtime, limits.profile())
            with self._lock:
                spares = sum(len(v) for v in self._spares.values())
                missing = min(target - len(self._spares.get(key, [])), self._idle_allowed() - spares)
            starts += [(runtime, limits, key)] * max(missing, 0)
        if not starts or self._stop.is_set():
            return
        wait([self._starter.submit(self._start_spare, *start) for start in starts])

    def _start_spare(self, runtime: str, limits: Limits, key: tuple) -> None:
        if self._stop.is_set():
            return
        try:
            cell = self._new_cell(runtime, limits)
        except SandboxError as exc:
            log.warning("starting a spare failed: %s", exc)
            return
        with self._lock:
            self._spares.setdefault(key, []).append(cell)
            evicted = self._evict_over_capacity()
        for old in evicted:
            self._discard(old)

    def _idle_allowed(self) -> int:
        allowed = self.budget.idle_cells_allowed() if self.budget is not None else 1 << 30
        if self.max_idle_cells is not None:
            allowed = min(allowed, self.max_idle_cells)
        return allowed

    def _provision(self) -> None:
        due = time.monotonic() - self._provision_read > self.provision_interval_s
        if self.provision_source is not None and (
            due or (self.provision_changed is not None and self.provision_changed())
        ):
            self._provision_read = time.monotonic()
            self.set_provisioned(self.provision_source())
        with self._lock:
            targets = list(self._provisioned.items())
            busy = [c.key for c in self._busy]
        for key, (spec, n) in targets:
            with self._lock:
                have = len([c for c in self._idle.get(key, []) if not c.broken]) + busy.count(key)
            for _ in range(max(n - have, 0)):
                if self._stop.is_set():
                    return
                self.warm(spec)

    def _evict_over_capacity(self) -> list[Cell]:
        """Caller holds the lock: take out the idle cells (least recently used first) and then the
        spares that the memory left beside the running jobs (and the count, if set) cannot hold."""
        over = len(self._lru) + sum(len(v) for v in self._spares.values()) - self._idle_allowed()
        if over <= 0:
            return []
        # provisioned cells are what an operator asked to keep: evicted last
        order = [c for c in self._lru if c.key not in self._provisioned]
        order += [c for c in self._lru if c.key in self._provisioned]
        evicted = order[:over]
        for cell in evicted:
            del self._lru[cell]
            cells = self._idle.get(cell.key, [])
            if cell in cells:
                cells.remove(cell)
            if not cells:
                self._idle.pop(cell.key, None)
        for cells in self._spares.values():  # still over: spares are the next to go
            while cells and len(evicted) < over:
                evicted.append(cells.pop())
        return evicted

    def _maintain_loop(self, interval_s: float) -> None:
        last_sweep = 0.0
        while not self._stop.is_set():
            try:
                self.maintain()
                if time.monotonic() - last_sweep > self.sweep_interval_s:
                    sweep_orphans(self.client)
                    last_sweep = time.monotonic()
            except SandboxError as exc:
                log.warning("sandbox maintenance: %s", exc)
            except Exception:  # noqa: BLE001 - the pool thread must not die
                log.exception("sandbox maintenance failed")
            self._wake.wait(interval_s)
            self._wake.clear()
