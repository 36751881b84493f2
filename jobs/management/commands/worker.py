"""Run one Lambdasite worker: an RQ worker whose jobs run in the sandbox's warm cells."""

from __future__ import annotations

import logging
import threading
import time

from django.core.management.base import BaseCommand

import sandbox
from functions.tasks import provisioned_specs
from jobs.execution import worker_name
from jobs.worker import SandboxWorker, relax_commit_durability, sandbox_configure
from lambdasite.redis_client import build_queue_name, get_queue

log = logging.getLogger("lambdasite.worker")


class Command(BaseCommand):
    help = "Run a worker that executes queued jobs in Docker sandboxes."

    def add_arguments(self, parser):
        parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")

    def handle(self, *args, burst: bool = False, **options):
        relax_commit_durability()
        pool = sandbox_configure()
        removed = sandbox.sweep_orphans(pool.client)
        if removed:
            log.warning("removed %d orphaned sandbox containers", len(removed))
        if not burst:
            pool.provision_source = (
                provisioned_specs  # functions' provisioned warm cells, this worker's share
            )
            pool.start_maintenance()  # spares, idle reaping, provisioned cells, orphans of dead workers
        queue = get_queue()
        # builds first: deploys are rare, and invocations of a building version wait for them
        queues = [get_queue(build_queue_name()), queue]
        worker = SandboxWorker(queues, connection=queue.connection, name=worker_name().replace(":", "-"))
        log.info("worker starting", extra={"worker": worker.name, "event": "worker_start"})
        stop_publishing = threading.Event()
        threading.Thread(target=_publish_pool, args=(worker.name, pool, stop_publishing), daemon=True).start()
        try:
            worker.work(burst=burst, with_scheduler=False, logging_level="WARNING")
        finally:
            stop_publishing.set()
            pool.close()


def _publish_pool(name: str, pool, stop: threading.Event) -> None:
    """Warm cells and spares of this worker, for /metrics (summed over workers there); and, every
    LAYER_GC_INTERVAL_S, the removal of dependency layers no version uses."""
    from django.conf import settings
    from django.db import close_old_connections

    from functions.services.layers import layers_collect
    from jobs import metrics

    last_gc = 0.0
    while not stop.wait(5):
        metrics.publish_pool(name, pool.stats(), ttl_s=15)
        if time.monotonic() - last_gc > settings.LAYER_GC_INTERVAL_S:
            last_gc = time.monotonic()
            try:
                layers_collect(client=pool.client)
            except Exception:  # noqa: BLE001 - the next pass tries again
                log.exception("collecting dependency layers failed")
            finally:
                close_old_connections()
