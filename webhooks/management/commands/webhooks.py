"""The delivery process: fans events out to deliveries and sends them, WEBHOOK_WORKERS at a time.

Run one or more (each claims deliveries under a lease, so they never send the same one at once)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connection

from webhooks.services.delivery import claim, fanout, send
from webhooks.services.retention import deliveries_purge

log = logging.getLogger("lambdasite.webhooks")


def _send(delivery_id) -> None:
    try:
        send(delivery_id)
    except Exception:  # noqa: BLE001 - the lease expires and the delivery is tried again
        log.exception("delivery attempt failed", extra={"delivery": str(delivery_id)})
    finally:
        connection.close()


class Command(BaseCommand):
    help = "Deliver webhooks: fan out events, send due deliveries with retries."

    def add_arguments(self, parser):
        parser.add_argument(
            "--once", action="store_true", help="one pass (fan out, send what is due), then exit"
        )

    def handle(self, *args, once: bool = False, **options):
        stop = threading.Event()
        if not once:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
        log.info("webhook delivery starting", extra={"event": "webhooks_start"})
        purged_at = 0.0
        with ThreadPoolExecutor(max_workers=settings.WEBHOOK_WORKERS, thread_name_prefix="webhook") as pool:
            while not stop.is_set():
                try:
                    close_old_connections()
                    if time.monotonic() - purged_at >= settings.RETENTION_INTERVAL_S:
                        purged_at = time.monotonic()
                        deliveries_purge(batch=settings.RETENTION_BATCH)  # finished and past retention
                    fanout()
                    due = claim(limit=settings.WEBHOOK_WORKERS * 2)
                    list(pool.map(_send, due))
                except Exception:  # noqa: BLE001 - a database outage must not end the loop
                    log.exception("webhook pass failed")
                    due = []
                if once:
                    return
                if not due:
                    stop.wait(settings.WEBHOOK_POLL_S)
