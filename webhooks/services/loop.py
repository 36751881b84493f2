"""The delivery process's loop: claiming is continuous. Up to ``workers`` sends run at once, and a
free slot is filled as soon as a send ends (or within ``poll_s`` when new deliveries become due), so
a slow receiver holds one slot for at most its attempt's deadline while the others keep going; which
deliveries fill the slots is the claim's business (turns between tenants, a cap per tenant)."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from django.conf import settings
from django.db import close_old_connections, connection

from .delivery import claim, fanout, send
from .retention import deliveries_purge

log = logging.getLogger("lambdasite.webhooks")


def _send(delivery_id) -> None:
    try:
        send(delivery_id)
    except Exception:  # noqa: BLE001 - only the record can fail here (the database): the lease expires
        log.exception("delivery attempt not recorded", extra={"delivery": str(delivery_id)})
    finally:
        connection.close()


class _Housekeeping:
    def __init__(self) -> None:
        self.purged_at = 0.0

    def __call__(self) -> None:
        close_old_connections()
        if time.monotonic() - self.purged_at >= settings.RETENTION_INTERVAL_S:
            self.purged_at = time.monotonic()
            deliveries_purge(batch=settings.RETENTION_BATCH)  # finished and past retention
        fanout()


def deliveries_run(*, stop: threading.Event, workers: int, poll_s: float, once: bool = False) -> None:
    """Fan out and send until ``stop`` is set (``once``: one claim, wait for its sends, return)."""
    in_flight: set[Future] = set()
    housekeeping = _Housekeeping()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="webhook") as pool:
        while not stop.is_set():
            try:
                housekeeping()
                for delivery_id in claim(limit=workers - len(in_flight)):
                    in_flight.add(pool.submit(_send, delivery_id))
            except Exception:  # noqa: BLE001 - a database outage must not end the loop
                log.exception("webhook pass failed")
            if once:
                wait(in_flight)
                return
            if in_flight:
                _, in_flight = wait(in_flight, timeout=poll_s, return_when=FIRST_COMPLETED)
            else:
                stop.wait(poll_s)
