"""The live-events adapter: the one place that uses channels_redis internals (it pipelines the
layer's PUBLISHes itself, for speed). These tests fail the day the library changes what the
adapter relies on: the layer's channel name for a group, and its message format."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from lambdasite import live

pytestmark = pytest.mark.django_db


def test_the_publishers_channel_names_are_the_layers():
    """The publisher pipelines PUBLISHes itself; its channel names must be the layer's own."""

    async def names():
        layer = get_channel_layer()._get_layer()
        return [layer._get_group_channel_name(group) for group in ("tenant.1", "job.x", "user.7")]

    assert async_to_sync(names)() == [
        live.group_channel("tenant.1"),
        live.group_channel("job.x"),
        live.group_channel("user.7"),
    ]


def test_a_message_the_publisher_sends_arrives_through_the_layers_own_api():
    """Sent by the adapter's pipeline, received by group_add + receive: the layer's serialisation."""
    layer = get_channel_layer()
    publisher = live.Publisher()

    async def scenario():
        channel = await layer.new_channel()
        await layer.group_add("job.pinned", channel)
        publisher.start()
        publisher.put("job.pinned", {"kind": "status", "status": "queued"})
        message = await layer.receive(channel)
        await layer.group_discard("job.pinned", channel)
        return message

    message = async_to_sync(scenario)()
    assert message["type"] == "live.event" and message["event"] == {"kind": "status", "status": "queued"}
    assert isinstance(message["seq"], int) and message["seq"] >= 1


def test_events_go_only_to_groups_someone_watches_and_keep_their_sequence(settings):
    """An unwatched group's event is never sent (a pattern listener, which is not a watcher, sees
    nothing), yet takes its sequence number; once a socket joins, events flow with the next one."""
    import time

    import redis

    conn = redis.Redis.from_url(settings.REDIS_URL)
    spy = conn.pubsub()
    spy.psubscribe(live.group_channel("job.watch-*"))
    spy.get_message(timeout=1)  # the psubscribe confirmation
    layer = get_channel_layer()
    publisher = live.Publisher()
    publisher.start()
    group = f"job.watch-{time.monotonic_ns()}"
    before = live.current_seq(conn, group)

    publisher.put(group, {"kind": "status", "status": "queued"})
    assert publisher.drain(5)
    assert spy.get_message(timeout=0.5) is None  # nobody watches: nothing was published
    assert live.current_seq(conn, group) == before + 1

    async def watch_and_receive():
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        publisher.put(group, {"kind": "status", "status": "running"})
        message = await layer.receive(channel)
        await layer.group_discard(group, channel)
        return message

    message = async_to_sync(watch_and_receive)()
    assert message["event"]["status"] == "running" and message["seq"] == before + 2
    seen = spy.get_message(timeout=2)
    assert seen is not None and seen["type"] == "pmessage"
    spy.close()


def test_stopping_sends_what_is_queued_and_ends_the_thread(settings):
    """What runs at exit: a short-lived process's last events are sent, and no publisher thread is
    left for the interpreter to kill mid-call while it shuts down. The next publish starts one again."""
    from lambdasite import live
    from lambdasite.redis_client import get_redis

    settings.LIVE_EVENTS = True
    before = live.current_seq(get_redis(), "tenant.stop-test")
    for _ in range(3):
        live.publish("tenant.stop-test", {"kind": "status"})
    publisher = live._publisher.current()
    live.stop()
    assert not publisher.is_alive() and publisher.pending == 0
    assert live.current_seq(get_redis(), "tenant.stop-test") == before + 3  # all three were sent
    live.publish("tenant.stop-test", {"kind": "status"})
    assert live._publisher.current() is not publisher and live.flush(5)
    assert live.current_seq(get_redis(), "tenant.stop-test") == before + 4
