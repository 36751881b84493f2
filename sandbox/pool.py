"""The cell pool: cells started, handed to a job, taken back or removed; their keys and doors.

The pool lives in the worker process (workers run jobs in-process, not in a
forked work-horse), so a warm cell outlives the job that started it. A cell
serves one tenant and one limit profile for its whole life; a spare is a
started container no job has touched, bound to the first tenant that takes it.
With ``reuse="never"`` every job gets a container of its own, destroyed after
the job; spares still hide the start cost from the job that takes them.

A job with egress runs in a cell with a door to the worker's egress proxy (``egress``), bound to
the attempt while it runs; a job holding secrets runs in a cell keyed by their revisions, so a
rotation never reaches a cell that loaded the old value, and a function's cells holding an older
revision are retired when the new one is asked for. Neither kind comes from the blank spares.

Which idle cells and spares stay between jobs, and the maintenance thread that tops them up, are
in :mod:`sandbox.warmth` (the pool's base class).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import docker
from docker.errors import DockerException

from . import cgroups
from .capacity import Arrivals, Budget
from .cell import Cell, OnOutput
from .egress import EgressProxy
from .exceptions import SandboxError
from .images import image_tag
from .spec import DoorUse, Limits, RunResult, RunSpec
from .sweep import owner_labels
from .warmth import Warmth

log = logging.getLogger("lambdasite.sandbox")
REUSE_MODES = ("tenant", "never")
REMOVALS_AT_ONCE = 16  # container removals in flight when the pool closes


class Sandbox(Warmth):
    def __init__(
        self,
        *,
        reuse: str = "tenant",
        idle_ttl_s: float = 300.0,
        max_idle_cells: int | None = None,
        budget: Budget | None = None,
        spare_profiles: tuple[tuple[str, Limits], ...] = (),
        spares_per_profile: int = 1,
        spares_max: int | None = None,
        starts_at_once: int = 8,
        sweep_interval_s: float = 10.0,
        client: docker.DockerClient | None = None,
        provision_source: Callable[[], list[tuple[RunSpec, int]]] | None = None,
        provision_interval_s: float = 10.0,
        idle_cpu_max_ms: float = 0.0,
        on_idle_cpu: Callable[[str, float, int], None] | None = None,
        on_warm: Callable[[str, float, int], None] | None = None,
        provision_changed: Callable[[], bool] | None = None,
        egress: EgressProxy | None = None,
    ) -> None:
        if reuse not in REUSE_MODES:
            raise ValueError(f"reuse must be one of {REUSE_MODES}, not {reuse!r}")
        self.reuse = reuse
        self.idle_ttl_s = idle_ttl_s
        # idle cells and spares are bounded by memory: what the budget leaves beside the running jobs'
        # limits (``budget``), and optionally by a count (``max_idle_cells``, None: memory alone)
        self.max_idle_cells = max_idle_cells
        self.budget = budget
        self.spare_profiles = tuple(spare_profiles)
        self.spares_per_profile = spares_per_profile
        # spares per profile follow how fast jobs needing a new cell arrive, between these two
        self.arrivals = Arrivals(minimum=spares_per_profile, maximum=max(spares_max or 0, spares_per_profile))
        self.sweep_interval_s = sweep_interval_s
        self._client = client
        self._lock = threading.Lock()
        self._idle: dict[tuple, list[Cell]] = {}
        self._lru: OrderedDict[Cell, None] = OrderedDict()  # every idle cell, least recently used first
        # container starts at once: past a few, the engine only gets slower for every one of them
        self._starts = threading.BoundedSemaphore(max(1, starts_at_once))
        self._starter = ThreadPoolExecutor(
            max_workers=max(1, starts_at_once), thread_name_prefix="cell-start"
        )
        self._wake = threading.Event()  # a spare was taken: refill now, not at the next tick
        self._spares: dict[tuple, list[Cell]] = {}
        self._busy: set[Cell] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._doomed: queue.Queue = queue.Queue()
        # deployed functions' warm cells kept ready: cell key -> (spec, how many)
        self.provision_source = provision_source
        self.provision_interval_s = provision_interval_s
        self._provisioned: dict[tuple, tuple[RunSpec, int]] = {}
        self._provision_read = 0.0
        self._reaper: threading.Thread | None = None
        # tenant code running between jobs: an idle cell that used more CPU than this is retired, and
        # on_idle_cpu(tenant, cpu_ms, memory_mb) told (to bill it); 0 turns the check off
        self.idle_cpu_max_ms = idle_cpu_max_ms
        self.on_idle_cpu = on_idle_cpu
        # every cell started and initialised for a function outside a job: on_warm(tenant, seconds, memory_mb)
        self.on_warm = on_warm
        # asked on every maintenance pass: true re-reads the provision source now (a warm-up was asked for)
        self.provision_changed = provision_changed
        # the worker's egress proxy: cells of jobs with egress get a door to it
        self.egress = egress
        self.pool_id = uuid.uuid4().hex[:12]
        self._labels = {**owner_labels(), "lambdasite.pool": self.pool_id}

    # -- public ------------------------------------------------------------

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            try:
                # a connection per thread talking to the engine at once (starts, removals, attaches)
                self._client = docker.from_env(timeout=30, max_pool_size=32)
                self._client.ping()
            except (DockerException, OSError) as exc:
                self._client = None
                raise SandboxError(f"Docker engine unreachable: {exc}", code="engine_unavailable") from exc
        return self._client

    def run(
        self, spec: RunSpec, on_output: OnOutput | None = None, cancel: threading.Event | None = None
    ) -> RunResult:
        """Run one job. Setting ``cancel`` stops it within ~0.25 s (the cell is then discarded)."""
        t0 = time.monotonic()
        self._check_egress(spec)
        cell = self._acquire(spec)
        if not cell.await_clean():
            # the previous job's cleanup failed or changed the cell: it is retired, never reused
            log.warning("cell %s retired after its last job: %s", cell.name, "; ".join(cell.problems))
            self._release(cell, spec)
            cell = self._acquire(spec, fresh=True)
        start_ms = (time.monotonic() - t0) * 1000.0
        try:
            self._bind(cell, spec)
            result = cell.execute(spec, on_output, cancel)
        except BaseException:
            cell.retire()
            raise
        finally:
            door = self._unbind(cell)
            self._release(cell, spec)
        return replace(
            result, start_ms=start_ms, secret_revisions=spec.secret_revisions(), **door.result_fields()
        )

    def _check_egress(self, spec: RunSpec) -> None:
        if spec.egress.enabled and self.egress is None:
            raise SandboxError("this worker has no egress proxy", code="egress_unavailable")

    def _bind(self, cell: Cell, spec: RunSpec, *, warming: bool = False) -> None:
        """The cell's door serves this attempt (the proxy knows it from the socket alone)."""
        if cell.door is None:
            return
        labels = spec.labels
        self.egress.bind(
            cell.door,
            tenant=spec.tenant,
            job="" if warming else str(labels.get("lambdasite.job", "")),
            attempt=0 if warming else int(labels.get("lambdasite.attempt", 0) or 0),
            egress=spec.egress,
        )

    def _unbind(self, cell: Cell) -> DoorUse:
        if cell.door is None:
            return DoorUse()
        return self.egress.unbind(cell.door)

    def warm(self, spec: RunSpec) -> dict | None:
        """Start a cell for a deployed function and initialise its module, ready for the function's
        next job (kept like any idle cell); -> None, or the initialisation's error."""
        if spec.function is None:
            raise ValueError("only a deployed function's cells can be warmed")
        started = time.monotonic()
        self._check_egress(spec)
        cell = self._acquire(spec, fresh=True)
        try:
            self._bind(cell, spec, warming=True)  # a module's initialisation may use the door
            error = cell.warm(spec)
        except BaseException:
            cell.retire()
            raise
        finally:
            door = self._unbind(cell)
            self._release(cell, spec)
            if door.count:
                log.info("warming %s used the door %d times", cell.name, door.count)
            if self.on_warm is not None:
                try:
                    self.on_warm(spec.tenant, time.monotonic() - started, spec.limits.memory_mb)
                except Exception:  # noqa: BLE001 - billing must not stop the pool
                    log.exception("reporting a warm-up failed")
        return error

    def stats(self) -> dict:
        with self._lock:
            return {
                "reuse": self.reuse,
                "warm_cells": len(self._lru) + len(self._busy),
                "idle_cells": len(self._lru),
                "busy_cells": len(self._busy),
                "spares": sum(len(v) for v in self._spares.values()),
                "provisioned_cells": sum(
                    len([c for c in self._idle.get(key, []) if not c.broken]) for key in self._provisioned
                ),
            }

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._starter.shutdown(wait=True)
        with self._lock:
            cells = list(self._lru) + [c for v in self._spares.values() for c in v]
            self._idle.clear()
            self._lru.clear()
            self._spares.clear()
        for cell in cells:
            cell.retire()
            self._doomed.put(cell)
        self.flush()

    def flush(self) -> None:
        """Remove every retired cell's container now (normally the reaper thread does it), side by
        side: a worker holding hundreds of warm cells must be gone within its stop grace."""
        doomed = []
        while True:
            try:
                doomed.append(self._doomed.get_nowait())
            except queue.Empty:
                break
        if doomed:
            try:
                with ThreadPoolExecutor(
                    max_workers=REMOVALS_AT_ONCE, thread_name_prefix="cell-remove"
                ) as pool:
                    list(pool.map(lambda cell: cell.destroy(), doomed))
            finally:
                for _ in doomed:
                    self._doomed.task_done()
        self._doomed.join()  # and those the reaper thread is removing right now

    def _discard(self, cell: Cell) -> None:
        """Retire a cell at once and remove its container in the background, off the job's path."""
        cell.retire()
        self._doomed.put(cell)
        if self._reaper is None or not self._reaper.is_alive():
            self._reaper = threading.Thread(target=self._reap_loop, name="sandbox-reaper", daemon=True)
            self._reaper.start()

    def _reap_loop(self) -> None:
        while True:
            try:
                cell = self._doomed.get(timeout=5)
            except queue.Empty:
                return
            try:
                cell.destroy()
            finally:
                self._doomed.task_done()

    def set_provisioned(self, targets: list[tuple[RunSpec, int]]) -> None:
        """Keep ``n`` warm cells (module initialised) for each function spec; others are not kept."""
        wanted = {
            _cell_key(spec, (spec.runtime, spec.limits.profile())): (spec, n) for spec, n in targets if n > 0
        }
        with self._lock:
            self._provisioned = wanted

    def provisioned_cells(self) -> int:
        with self._lock:
            return sum(len([c for c in self._idle.get(key, []) if not c.broken]) for key in self._provisioned)

    # -- internals ---------------------------------------------------------

    def _new_cell(
        self, runtime: str, limits: Limits, layer: str | None = None, spec: RunSpec | None = None
    ) -> Cell:
        secrets = None
        if spec is not None and spec.secrets:
            secrets = (spec.job_uid, sum(len(s.value.encode("utf-8", "surrogatepass")) for s in spec.secrets))
        cell = Cell(self.client, runtime, image_tag(runtime), limits, self._labels, layer, secrets=secrets)
        if spec is not None and spec.egress.enabled:
            cell.door = self.egress.open_door(cell.name, uid=spec.job_uid - 1)  # the runner's uid relays
        with self._starts:
            return cell.start()

    def _acquire(self, spec: RunSpec, *, fresh: bool = False) -> Cell:
        profile = (spec.runtime, spec.limits.profile())
        cell = None
        stale: list[Cell] = []
        with self._lock:
            if fresh:
                pass
            elif self.reuse == "tenant":
                key = _cell_key(spec, profile)
                idle = self._idle.get(key, [])
                while idle and cell is None:
                    candidate = idle.pop()
                    self._lru.pop(candidate, None)
                    cell = None if candidate.broken else candidate
                if key in self._idle and not idle:
                    del self._idle[key]  # no empty lists: stats and rotation read every entry
            if spec.function is not None and spec.secrets:
                stale = self._rotated(_cell_key(spec, profile))
            if cell is None and not fresh and _blank(spec):  # spares have no layer, door or secrets
                self.arrivals.record()  # a job that needs a new cell: what spares are sized by
                spares = self._spares.get(profile, [])
                if spares:
                    cell = spares.pop(0)
                    self._wake.set()
            if cell is not None:
                self._busy.add(cell)
            # the worker admitted this job's memory: idle cells beyond what is left go now
            stale += self._evict_over_capacity()
        for old in stale:
            self._discard(old)
        if cell is None:
            cell = self._new_cell(spec.runtime, spec.limits, _layer(spec), spec)
            with self._lock:
                self._busy.add(cell)
        cell.key = _cell_key(spec, profile)
        return cell

    def _rotated(self, key: tuple) -> list[Cell]:
        """Caller holds the lock: idle cells of the same function version holding older secret
        revisions (a rotation happened); taken out of the pool, to be discarded."""
        stale = []
        for other in [k for k in self._idle if k[:-1] == key[:-1] and k[-1] != key[-1]]:
            stale += self._idle.pop(other)
        for cell in stale:
            self._lru.pop(cell, None)
        return stale

    def _release(self, cell: Cell, spec: RunSpec) -> None:
        evicted: list[Cell] = []
        with self._lock:
            self._busy.discard(cell)
            keep = self.reuse == "tenant" and not cell.broken and not self._stop.is_set()
            if keep:
                self._idle.setdefault(_cell_key(spec, cell.profile), []).append(cell)
                self._lru[cell] = None  # the most recently used
            evicted = self._evict_over_capacity()
        if keep and self.idle_cpu_max_ms:
            # the counter as the job left it: what the cell uses from now on is not a job's
            cell.idle_cpu_ns = cgroups.cpu_ns(cell.id)
        if not keep:
            self._discard(cell)
        for old in evicted:
            self._discard(old)


def _cell_key(spec: RunSpec, profile: tuple) -> tuple:
    """A warm cell serves one tenant (and the uid it was bound to), one limit profile and, for a
    deployed function, one version of it (whose module it has loaded); with a door or without;
    and the secrets it was given (names and revisions: a rotation needs another cell). The
    secrets come last: :meth:`Sandbox._rotated` compares the rest."""
    function = spec.function.key if spec.function else None
    secrets = tuple(sorted((s.name, s.secret, s.revision) for s in spec.secrets))
    return (spec.tenant, spec.job_uid, profile, function, spec.egress.enabled, secrets)


def _blank(spec: RunSpec) -> bool:
    """Whether a blank spare can serve this job: no dependency layer, no door, no secrets."""
    return _layer(spec) is None and not spec.egress.enabled and not spec.secrets


def _layer(spec: RunSpec) -> str | None:
    return spec.function.layer if spec.function else None
