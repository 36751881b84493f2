"""The scheduler process: the reconciler loop that keeps PostgreSQL and Redis in agreement.

Every RECONCILE_INTERVAL_S it queues retries that fell due, re-dispatches jobs
that PostgreSQL says are waiting but Redis lost (FLUSHALL, restart, a crash
between commit and enqueue), and retries attempts whose lease expired (a
worker that died); for functions, it re-enqueues builds whose worker died and
settles invocations held for a build that has ended; it moves delayed runs whose
time has come into their tenant's line, and fires due schedules; every
RETENTION_INTERVAL_S it deletes, in small batches, finished jobs older than their
tenant's retention (jobs.services.retention). Running two of
them is safe: every step is a compare-and-set or takes its rows with SKIP LOCKED,
and a schedule's tick has a unique run.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections
from django.utils import timezone

from functions.services.builds import builds_reconcile
from jobs.services.overflow import next_due, overflow_pass
from jobs.services.reconcile import fill_due_tenants, heartbeat, reconcile
from jobs.services.retention import jobs_purge
from schedules.services.ticks import schedules_tick

log = logging.getLogger("lambdasite.scheduler")


class Command(BaseCommand):
    help = "Run the reconciler: due retries, lost dispatches and expired leases."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=None)
        parser.add_argument("--once", action="store_true", help="one pass, then exit")

    def handle(self, *args, interval: float | None, once: bool, **options):
        from jobs.worker import relax_commit_durability

        relax_commit_durability()
        interval = interval or settings.RECONCILE_INTERVAL_S
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        log.info("reconciler starting", extra={"event": "scheduler_start"})
        purged_at = 0.0
        while not stop.is_set():
            started = time.monotonic()
            try:
                close_old_connections()
                counts = {**reconcile(), **builds_reconcile(), **schedules_tick()}
                if any(counts.values()):
                    log.info("reconciled", extra={"event": "reconciled", **counts})
                heartbeat(interval)
                if started - purged_at >= settings.RETENTION_INTERVAL_S:
                    purged_at = started
                    purged = jobs_purge(batch=settings.RETENTION_BATCH)
                    if purged.jobs:
                        log.info(
                            "expired jobs purged",
                            extra={"event": "purged", "jobs": purged.jobs, "attempts": purged.attempts,
                                   "log_lines": purged.log_lines, "connections": purged.connections},
                        )  # fmt: skip
            except Exception:  # noqa: BLE001 - a database or Redis outage must not end the loop
                log.exception("reconcile pass failed")
            if once:
                return
            _until_next_pass(stop, started + interval)


def _until_next_pass(stop: threading.Event, next_pass: float, clock=time.monotonic) -> None:
    """Wait for the next pass; meanwhile, wake when a job placed with overflow pools has waited its
    after_wait_s and run the overflow pass for it (a job overflows at its wait, not up to a tick
    later)."""
    while not stop.is_set():
        wake = next_pass
        try:
            due = next_due(now=timezone.now())
            if due is not None:
                wake = min(next_pass, clock() + max(0.0, (due - timezone.now()).total_seconds()) + 0.01)
        except Exception:  # noqa: BLE001 - the full pass runs at its tick anyway
            log.exception("reading the next overflow failed")
        if stop.wait(max(0.0, wake - clock())) or clock() >= next_pass:
            return
        try:
            counts = overflow_pass(now=timezone.now())
            if any(counts.values()):
                log.info("overflowed", extra={"event": "reconciled", **counts})
                if counts.get("replaced"):  # jobs re-placed while waiting: to their new pool now
                    fill_due_tenants(now=timezone.now(), overflow_only=True)
        except Exception:  # noqa: BLE001 - as the pass: never end the loop
            log.exception("overflow pass failed")
        finally:
            close_old_connections()
