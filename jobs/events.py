"""Live events for the dashboard: job status changes and batches of log lines.

Every process that changes a job (web, workers, the reconciler) publishes here,
after the change is committed. Events go through the Channels layer (Redis
pub/sub) to two groups: ``tenant.<id>`` (every job of a tenant: the jobs list and
the overview) and ``job.<uuid>`` (one job: its detail page and log pane).

Publishing never slows or fails a job: ``publish`` puts the event on an
in-process queue and returns; one daemon thread sends them in order, a batch at a
time in two pipelined round trips. Each event carries a sequence number per group (a Redis INCR), so
a page that sees a gap, or reconnects, re-fetches state from the database. If the
queue overflows, the dropped groups get a ``resync`` event later, with a fresh
sequence number, so no page stays wrong. The database stays the truth; events only
say "look again" quickly.
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from django.conf import settings

log = logging.getLogger("lambdasite.events")

SEQ_KEY = "lambdasite:live:seq:{group}"
SEQ_TTL_S = 86400
MAX_LOG_EVENT_BYTES = 64 * 1024  # larger batches are split; the page can always fetch the rest


def tenant_group(tenant_id) -> str:
    return f"tenant.{tenant_id}"


def job_group(job_id) -> str:
    return f"job.{job_id}"


def status_changed(*, job_id, tenant_id, status: str, attempt: int | None = None, runtime: str | None = None) -> None:
    """A job's status changed (call after commit). Goes to the job's group and the tenant's group."""
    event = {"kind": "status", "job": str(job_id), "status": status}
    if attempt is not None:
        event["attempt"] = attempt
    if runtime is not None:
        event["runtime"] = runtime
    publish(job_group(job_id), event)
    publish(tenant_group(tenant_id), event)


def job_deleted(*, job_id, tenant_id) -> None:
    status_changed(job_id=job_id, tenant_id=tenant_id, status="deleted")


def log_lines(*, job_id, lines: list[dict]) -> None:
    """Stored log lines (dicts with seq, attempt, stream, ts, text), split into events of bounded size."""
    batch: list[dict] = []
    size = 0
    for line in lines:
        line_size = len(line["text"]) + 64
        if batch and size + line_size > MAX_LOG_EVENT_BYTES:
            publish(job_group(job_id), {"kind": "logs", "job": str(job_id), "lines": batch})
            batch, size = [], 0
        batch.append(line)
        size += line_size
    if batch:
        publish(job_group(job_id), {"kind": "logs", "job": str(job_id), "lines": batch})


def publish(group: str, event: dict) -> None:
    if not settings.LIVE_EVENTS:
        return
    _publisher().put(group, event)


def current_seq(conn, group: str) -> int:
    value = conn.get(SEQ_KEY.format(group=group))
    return int(value) if value else 0


def flush(timeout: float = 5.0) -> bool:
    """Wait until every event published so far has been sent (tests and shutdown)."""
    pub = _instance
    return pub.drain(timeout) if pub is not None else True


class Publisher(threading.Thread):
    def __init__(self, maxsize: int = 10000) -> None:
        super().__init__(name="live-events", daemon=True)
        self.queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self.dropped: set[str] = set()
        self.lock = threading.Condition()
        self.pending = 0  # queued, not yet sent

    def put(self, group: str, event: dict) -> None:
        with self.lock:
            self.pending += 1
        try:
            self.queue.put_nowait((group, event))
        except queue.Full:
            with self.lock:
                self.pending -= 1  # a resync for the group replaces it
                self.dropped.add(group)

    def drain(self, timeout: float) -> bool:
        with self.lock:
            return self.lock.wait_for(lambda: self.pending <= 0, timeout)

    def run(self) -> None:
        import redis
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        conn = redis.Redis.from_url(settings.REDIS_URL)
        while True:
            batch = [self.queue.get()]
            while len(batch) < 500:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            taken = len(batch)
            with self.lock:
                dropped, self.dropped = self.dropped, set()
            batch += [(group, {"kind": "resync"}) for group in dropped]
            try:
                self._send(layer, conn, batch)
            except Exception:  # noqa: BLE001 - Redis away: pages fall back to polling and re-fetch
                log.warning("live events not sent", exc_info=True, extra={"event": "live_events_failed", "count": len(batch)})
            with self.lock:
                self.pending -= taken
                self.lock.notify_all()

    @staticmethod
    def _send(layer, conn, batch: list[tuple[str, dict]]) -> None:
        """Two round trips per batch, whatever its size: the sequence numbers, then the publishes.

        A group_send on Channels' Redis pub/sub layer is one PUBLISH of the layer's serialized
        message to the group's channel; doing the same in a pipeline saves a round trip per
        event (the consumer tests receive these through the real layer)."""
        with conn.pipeline(transaction=False) as pipe:
            for group, _ in batch:
                key = SEQ_KEY.format(group=group)
                pipe.incr(key)
                pipe.expire(key, SEQ_TTL_S)
            replies = pipe.execute()
        with conn.pipeline(transaction=False) as pipe:
            for (group, event), seq in zip(batch, replies[::2]):
                pipe.publish(group_channel(group), layer.serialize({"type": "live.event", "seq": int(seq), "event": event}))
            pipe.execute()


def group_channel(group: str) -> str:
    """The Redis channel of a Channels group on RedisPubSubChannelLayer (its _get_group_channel_name)."""
    prefix = settings.CHANNEL_LAYERS["default"].get("CONFIG", {}).get("prefix", "asgi")
    return f"{prefix}__group__{group}"


_instance: Publisher | None = None
_instance_lock = threading.Lock()


def _publisher() -> Publisher:
    global _instance
    if _instance is None or not _instance.is_alive():
        with _instance_lock:
            if _instance is None or not _instance.is_alive():
                _instance = Publisher()
                _instance.start()
    return _instance


def event_for_line(line: Any) -> dict:
    """The wire form of a stored LogLine."""
    return {"seq": line.seq, "attempt": line.attempt, "stream": line.stream, "ts": line.ts.isoformat(), "text": line.text}
