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

from functions.services.builds import builds_reconcile
from jobs.services.reconcile import heartbeat, reconcile
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
            stop.wait(max(0.0, interval - (time.monotonic() - started)))
