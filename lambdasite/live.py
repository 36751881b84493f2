"""Live updates to dashboard pages over the Channels layer (Redis pub/sub), from any process.

Publishing never slows or fails the caller: ``publish`` puts the event on an
in-process queue and returns; one daemon thread sends them in order, a batch at a
time in two pipelined round trips. Each event carries a sequence number per group (a
Redis INCR), so a page that sees a gap, or reconnects, re-fetches state from the
database. If the queue overflows, the dropped groups get a ``resync`` event later,
with a fresh sequence number, so no page stays wrong.

Groups: ``tenant.<id>`` and ``job.<uuid>`` carry job events (``jobs/events.py``);
``user.<id>`` carries ``access`` notices that make a user's open sockets re-check
whether they may still watch (logout, password change, membership changes).
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading

from django.conf import settings

from .threads import ProcessThread

log = logging.getLogger("lambdasite.events")

SEQ_KEY = "lambdasite:live:seq:{group}"
SEQ_TTL_S = 86400


def user_group(user_id) -> str:
    return f"user.{user_id}"


def notify_user(user_id) -> None:
    """The user's access changed: their open websockets re-check it (call after commit)."""
    publish(user_group(user_id), {"kind": "access"})


def publish(group: str, event: dict) -> None:
    if not settings.LIVE_EVENTS:
        return
    _publisher().put(group, event)


def current_seq(conn, group: str) -> int:
    value = conn.get(SEQ_KEY.format(group=group))
    return int(value) if value else 0


def flush(timeout: float = 5.0) -> bool:
    """Wait until every event published so far has been sent (tests and shutdown)."""
    pub = _publisher.current()
    return pub.drain(timeout) if pub is not None else True


def stop(timeout: float = 2.0) -> None:
    """Send what is queued (up to ``timeout``), then end the publisher thread. Run at exit: a
    short-lived process (a management command) delivers its last events, and no daemon thread is
    left for the interpreter to kill mid-call during its shutdown."""
    pub = _publisher.current()
    if pub is None or not pub.is_alive():
        return
    pub.drain(timeout)
    try:
        pub.queue.put(_STOP, timeout=timeout)
    except queue.Full:
        return
    pub.join(timeout)


_STOP = ("", None)  # the queue item that ends the publisher


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
            while len(batch) < 500 and batch[-1] is not _STOP:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            stopping = batch[-1] is _STOP
            if stopping:
                batch.pop()
            if batch:
                self._send_batch(layer, conn, batch)
            if stopping:
                return

    def _send_batch(self, layer, conn, batch: list[tuple[str, dict]]) -> None:
        taken = len(batch)
        with self.lock:
            dropped, self.dropped = self.dropped, set()
        batch += [(group, {"kind": "resync"}) for group in dropped]
        try:
            self._send(layer, conn, batch)
        except Exception:  # noqa: BLE001 - Redis away: pages fall back to polling and re-fetch
            log.warning(
                "live events not sent",
                exc_info=True,
                extra={"event": "live_events_failed", "count": len(batch)},
            )
        with self.lock:
            self.pending -= taken
            self.lock.notify_all()

    @staticmethod
    def _send(layer, conn, batch: list[tuple[str, dict]]) -> None:
        """At most two round trips per batch, whatever its size: which groups anyone watches and the
        sequence numbers, then the publishes to the watched groups only.

        A group_send on Channels' Redis pub/sub layer is one PUBLISH of the layer's serialized
        message to the group's channel; doing the same in a pipeline saves a round trip per
        event (the consumer tests receive these through the real layer). A group is watched when
        its channel has a subscriber (``PUBSUB NUMSUB``: the layer subscribes when a socket joins).
        An event for an unwatched group still takes its sequence number but is never serialized
        or sent: a page that starts watching later reads the sequence and re-fetches its state
        after subscribing, so it cannot miss what happened before."""
        channels = list(dict.fromkeys(group_channel(group) for group, _ in batch))
        with conn.pipeline(transaction=False) as pipe:
            pipe.pubsub_numsub(*channels)
            for group, _ in batch:
                key = SEQ_KEY.format(group=group)
                pipe.incr(key)
                pipe.expire(key, SEQ_TTL_S)
            replies = pipe.execute()
        watched = {_text(channel) for channel, count in replies[0] if count}
        sends = [
            (group, event, seq)
            for (group, event), seq in zip(batch, replies[1::2], strict=True)
            if group_channel(group) in watched
        ]
        if not sends:
            return
        with conn.pipeline(transaction=False) as pipe:
            for group, event, seq in sends:
                pipe.publish(
                    group_channel(group),
                    layer.serialize({"type": "live.event", "seq": int(seq), "event": event}),
                )
            pipe.execute()


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def group_channel(group: str) -> str:
    """The Redis channel of a Channels group on RedisPubSubChannelLayer (its _get_group_channel_name)."""
    prefix = settings.CHANNEL_LAYERS["default"].get("CONFIG", {}).get("prefix", "asgi")
    return f"{prefix}__group__{group}"


_publisher = ProcessThread(Publisher)  # this process's one publisher
atexit.register(stop)
