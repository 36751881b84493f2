"""The "job finished" signal that wakes a waiting ``POST …?wait=N``, and the waiting itself.

Finishing a job (in the lifecycle layer, after its durable commit) sets a done flag
and publishes on the job's channel, in the same Redis round trip as the rest of what
an attempt's end tells Redis. Each web process (each event loop) holds ONE pattern
subscription to every job's channel and a map of job id -> waiting futures: a waiter
registers its future, then checks the flag (a job that finished before it registered
has left it), then awaits the future. No connection is opened per request (opening
and closing a subscription per ``?wait`` cost ~3 ms of CPU). Redis may lose either
signal: at the deadline PostgreSQL decides; if the subscription itself breaks, the
waiters poll PostgreSQL until it is back. Correctness never depends on this module;
latency does."""

from __future__ import annotations

import asyncio
import time

from lambdasite.fasthttp import in_thread

from .models import FINISHED, Job

DONE_CHANNEL = "lambdasite:job-done:{}"
DONE_KEY = "lambdasite:job-done-flag:{}"
DONE_KEY_TTL_S = 120
BODY_KEY_TTL_S = 20  # a waiter registers right after its submit: the body is kept briefly (size x rate)


def announce(pipe, job_id, body: bytes | None = None) -> None:
    """Queue on ``pipe``: the job is finished (flag for late waiters, message for early ones). With
    ``body`` (the finished job as the API shows it), a waiter answers without reading PostgreSQL."""
    if body:
        pipe.set(DONE_KEY.format(job_id), body, ex=BODY_KEY_TTL_S)
        pipe.publish(DONE_CHANNEL.format(job_id), body)
    else:
        pipe.set(DONE_KEY.format(job_id), "1", ex=DONE_KEY_TTL_S)
        pipe.publish(DONE_CHANNEL.format(job_id), "1")


def _done(value: bytes) -> bool | bytes:
    return True if value == b"1" else value


_async_redis: dict = {}
_listeners: dict = {}
POLL_WITHOUT_SUBSCRIPTION_S = 0.5


def _redis_async():
    """One asyncio Redis client per event loop (the ASGI server runs one; tests make many)."""
    import redis.asyncio

    from lambdasite.redis_client import redis_url

    loop = asyncio.get_running_loop()
    client = _async_redis.get(loop)
    if client is None:
        for old in [other for other in _async_redis if other.is_closed()]:
            del _async_redis[old]
        client = _async_redis[loop] = redis.asyncio.Redis.from_url(redis_url())
    return client


class _DoneListener:
    """The event loop's one subscription to every job's completion channel."""

    def __init__(self) -> None:
        self.waiters: dict[str, set[asyncio.Future]] = {}
        self.ready: asyncio.Future | None = None
        self.task: asyncio.Task | None = None

    async def subscribed(self) -> bool:
        """Start (or restart) the subscription; -> whether it is listening now."""
        if self.task is None or self.task.done():
            loop = asyncio.get_running_loop()
            self.ready = loop.create_future()
            self.task = loop.create_task(self._listen(self.ready))
        try:
            return await asyncio.wait_for(asyncio.shield(self.ready), timeout=2.0)
        except TimeoutError:
            return False

    async def _listen(self, ready: asyncio.Future) -> None:
        pubsub = _redis_async().pubsub()
        try:
            await pubsub.psubscribe(DONE_CHANNEL.format("*"))
            # listening only once Redis confirms: a waiter that then checks the flag cannot miss both
            while (confirmation := await pubsub.get_message(timeout=2.0)) is None:
                pass
            ready.set_result(confirmation["type"] == "psubscribe")
            async for message in pubsub.listen():
                if message["type"] == "pmessage":
                    job_id = message["channel"].rsplit(b":", 1)[-1].decode()
                    for future in self.waiters.pop(job_id, ()):
                        if not future.done():  # a timed-out waiter's future is cancelled
                            future.set_result(_done(message["data"]))
        except Exception:  # noqa: BLE001 - Redis away: waiters poll PostgreSQL, the next one resubscribes
            pass
        finally:
            if not ready.done():
                ready.set_result(False)
            for futures in self.waiters.values():
                for future in futures:
                    if not future.done():
                        future.set_result(False)
            self.waiters.clear()
            try:
                await pubsub.aclose()
            except Exception:  # noqa: BLE001 - a connection that broke cannot be closed cleanly: dropped
                pass

    def register(self, job_id: str) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(job_id, set()).add(future)
        return future

    def forget(self, job_id: str, future: asyncio.Future) -> None:
        futures = self.waiters.get(job_id)
        if futures is not None:
            futures.discard(future)
            if not futures:
                del self.waiters[job_id]


def _listener() -> _DoneListener:
    loop = asyncio.get_running_loop()
    listener = _listeners.get(loop)
    if listener is None:
        for old in [other for other in _listeners if other.is_closed()]:
            del _listeners[old]
        listener = _listeners[loop] = _DoneListener()
    return listener


def _status_of(job_id) -> str | None:
    return Job.objects.filter(pk=job_id).values_list("status", flat=True).first()


async def _finished_in_database(job_id) -> bool:
    # on a thread of the API's pool, whose connection goes back to the pool afterwards
    return await in_thread(_status_of, job_id) in FINISHED


async def wait_finished(job_id, seconds: float) -> bool | bytes:
    """Whether the job finished within ``seconds``, as soon as it does: its published body (bytes of
    JSON) when the finishing worker sent one, else True; False if it did not finish in time."""
    job_id = str(job_id)
    deadline = time.monotonic() + seconds
    listener = _listener()
    future = None
    try:
        if await listener.subscribed():
            future = listener.register(job_id)
            # finished before we registered? the flag is set with the notification
            flag = await _redis_async().get(DONE_KEY.format(job_id))
            if flag is not None:
                return _done(flag)
            try:
                remaining = max(0.0, deadline - time.monotonic())
                if done := await asyncio.wait_for(future, timeout=remaining):
                    return done
            except TimeoutError:
                return await _finished_in_database(job_id)
    except Exception:  # noqa: BLE001 - Redis trouble: PostgreSQL answers
        pass
    finally:
        if future is not None:
            listener.forget(job_id, future)
    # no subscription: poll PostgreSQL until the deadline (rare: Redis is away)
    while True:
        if await _finished_in_database(job_id):
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        await asyncio.sleep(min(POLL_WITHOUT_SUBSCRIPTION_S, remaining))
