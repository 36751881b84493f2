"""Run one Lambdasite worker: an RQ worker whose jobs run in the sandbox's warm cells.

``manage.py worker`` is a job worker (the jobs queue: jobs, invocations, warm-ups);
``manage.py worker --builds`` a build worker (function builds only). Builds have their own
processes so that a deploy, however slow its dependencies, never holds a job worker."""

from __future__ import annotations

import functools
import logging
import resource
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

import sandbox
from functions.tasks import ProvisionWatch, provisioned_specs
from jobs import metrics
from jobs import pools as pools_live
from jobs.execution import attempts_hand_back, worker_name
from jobs.pools import parse_names as parse_pools
from jobs.worker import (
    SandboxWorker,
    relax_commit_durability,
    sandbox_configure,
    worker_budget,
    worker_queues,
)
from lambdasite.caching import best_effort

log = logging.getLogger("lambdasite.worker")


class Command(BaseCommand):
    help = "Run a worker that executes queued jobs in Docker sandboxes (--builds: function builds only)."

    def add_arguments(self, parser):
        parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
        parser.add_argument(
            "--builds", action="store_true", help="a build worker: take function builds only, never jobs"
        )
        parser.add_argument(
            "--pools",
            default=None,
            help="the worker pools a job worker serves, comma-separated (default: WORKER_POOLS, 'default')",
        )

    def handle(self, *args, burst: bool = False, builds: bool = False, pools: str | None = None, **options):
        try:
            served = [] if builds else parse_pools(pools or settings.WORKER_POOLS)
        except ValueError as exc:
            raise CommandError(f"--pools / WORKER_POOLS: {exc}") from exc
        relax_commit_durability()
        _raise_open_files_limit()  # every cell holds a socket: hundreds of cells, hundreds of descriptors
        role = "builds" if builds else "jobs"
        budget = worker_budget()
        pool = sandbox_configure(spares=not builds, budget=budget)
        removed = sandbox.sweep_orphans(pool.client)
        if removed:
            log.warning("removed %d orphaned sandbox containers", len(removed))
        if not burst and not builds:
            # functions' provisioned and warmed cells: this worker's share of those of the pools it serves
            pool.provision_source = functools.partial(provisioned_specs, pools=served)
            pool.provision_changed = ProvisionWatch()  # a warm-up asked for: read the targets now
            pool.start_maintenance()  # spares, idle reaping, provisioned cells, orphans of dead workers
        queues = worker_queues(builds=builds, pools=served)
        worker = SandboxWorker(
            queues,
            connection=queues[0].connection,
            name=worker_name().replace(":", "-"),
            budget=budget,
            hand_back=attempts_hand_back,
        )
        log.info(
            "worker starting",
            extra={
                "worker": worker.name,
                "event": "worker_start",
                "role": role,
                "pools": ",".join(served),
                **budget.snapshot(),
            },
        )
        stop_beating = threading.Event()
        beat = threading.Thread(
            target=_beat, args=(worker.name, role, pool, stop_beating), kwargs={"pools": served}, daemon=True
        )
        beat.start()
        try:
            worker.work(burst=burst, with_scheduler=False, logging_level="WARNING")
        finally:
            stop_beating.set()
            beat.join(timeout=5)
            _safely(lambda: metrics.worker_gone(role=role, name=worker.name))
            if served:
                _safely(lambda: pools_live.gone(worker=worker.name, pools=served))
            pool.close()


def _raise_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            log.warning("could not raise the open files limit above %d", soft)


def _safely(fn) -> None:
    # Redis away: the heartbeat expires on its own, and the next beat writes it again
    best_effort("writing the heartbeat", fn)


def _slots(budget: dict) -> dict:
    return {"inflight": budget["inflight"], "max_inflight": budget["max_inflight"]}


def _beat(
    name: str, role: str, pool, stop: threading.Event, clock=time.monotonic, pools: list[str] = ()
) -> None:
    """Every WORKER_HEARTBEAT_S, from its own thread (a long job does not stop it): this worker's
    heartbeat, expiring after three missed beats (the fleet's count of live workers); its warm
    cells and spares, for /metrics (summed over workers there); and, every LAYER_GC_INTERVAL_S,
    the removal of dependency layers no version uses."""
    from django.db import close_old_connections

    from functions.services.layers import layers_collect

    every = settings.WORKER_HEARTBEAT_S
    last_gc = None  # the first beat collects
    while True:
        _safely(lambda: metrics.worker_beat(role=role, name=name, ttl_s=3 * every))
        if pools:  # the pools this worker serves are alive as long as it beats (jobs.pools)
            _safely(lambda: pools_live.beat(worker=name, pools=list(pools), ttl_s=3 * every))
        if role == "jobs":
            budget = pool.budget.snapshot() if pool.budget else {"inflight": 0, "max_inflight": 1}
            # the job slots it offers its pools: the overflow pass's room (jobs.services.overflow)
            stats = {**pool.stats(), **_slots(budget), "pools": list(pools)}
            metrics.publish_pool(name, stats, ttl_s=3 * every)
        if last_gc is None or clock() - last_gc > settings.LAYER_GC_INTERVAL_S:
            last_gc = clock()
            try:
                layers_collect(client=pool.client)
            except Exception:  # noqa: BLE001 - the next pass tries again
                log.exception("collecting dependency layers failed")
            finally:
                close_old_connections()
        if stop.wait(every):
            return
