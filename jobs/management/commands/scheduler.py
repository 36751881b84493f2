"""The scheduler process: moves due delayed jobs (retries) onto the queue."""
from __future__ import annotations

import logging
import signal
import threading

import django_rq
from django.conf import settings
from django.core.management.base import BaseCommand
from rq.scheduler import RQScheduler

log = logging.getLogger("lambdasite.scheduler")


class Command(BaseCommand):
    help = "Run the scheduler: enqueue delayed jobs when they fall due."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=1.0)

    def handle(self, *args, interval: float, **options):
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        connection = django_rq.get_connection(settings.RQ_QUEUE)
        rq_scheduler = RQScheduler([settings.RQ_QUEUE], connection=connection, interval=max(1, int(interval)))
        rq_scheduler.register_birth()
        log.info("scheduler starting", extra={"event": "scheduler_start"})
        try:
            while not stop.is_set():
                if rq_scheduler.should_reacquire_locks:
                    rq_scheduler.acquire_locks()
                rq_scheduler.heartbeat()
                rq_scheduler.enqueue_scheduled_jobs()
                stop.wait(interval)
        finally:
            rq_scheduler.stop()
