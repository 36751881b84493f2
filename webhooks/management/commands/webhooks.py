"""The delivery process: fans events out to deliveries and sends them, WEBHOOK_WORKERS at a time,
claiming continuously (``webhooks/services/loop.py``).

Run one or more (each claims deliveries under a lease, so they never send the same one at once)."""

from __future__ import annotations

import logging
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from webhooks.services.loop import deliveries_run

log = logging.getLogger("lambdasite.webhooks")


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
        deliveries_run(stop=stop, workers=settings.WEBHOOK_WORKERS, poll_s=settings.WEBHOOK_POLL_S, once=once)
