"""The "job finished" signal that wakes a waiting ``POST …?wait=N``, and the waiting itself.

Finishing a job (in the lifecycle layer, after its commit) sets a done flag and
publishes on the job's channel, in the same Redis round trip as the rest of what an
attempt's end tells Redis. A waiter subscribes, then checks the flag (a job that
finished before it listened has left it), then waits for the message. Redis may
lose either: at the deadline PostgreSQL decides. Correctness never depends on this
module; latency does."""

from __future__ import annotations

import asyncio
import time

from asgiref.sync import sync_to_async

from .models import FINISHED, Job

DONE_CHANNEL = "lambdasite:job-done:{}"
DONE_KEY = "lambdasite:job-done-flag:{}"
DONE_KEY_TTL_S = 120


def announce(pipe, job_id) -> None:
    """Queue on ``pipe``: the job is finished (flag for late waiters, message for early ones)."""
    pipe.set(DONE_KEY.format(job_id), "1", ex=DONE_KEY_TTL_S)
    pipe.publish(DONE_CHANNEL.format(job_id), "1")


_async_redis: dict = {}


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


def _status_of(job_id) -> str | None:
    return Job.objects.filter(pk=job_id).values_list("status", flat=True).first()


async def wait_finished(job_id, seconds: float) -> bool:
    """Whether the job finished within ``seconds`` (True as soon as it does)."""
    conn = _redis_async()
    pubsub = conn.pubsub()
    try:
        await pubsub.subscribe(DONE_CHANNEL.format(job_id))
        # finished before we listened? the flag is set with the notification, and costs no trip
        # through Django's sync thread (if Redis lost it, the wait ends with a database check)
        if await conn.exists(DONE_KEY.format(job_id)):
            return True
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=min(remaining, 1.0))
            if message is not None:
                return True
        return await sync_to_async(_status_of)(job_id) in FINISHED
    except Exception:  # noqa: BLE001 - Redis trouble: fall back to one last look at the database
        return await sync_to_async(_status_of)(job_id) in FINISHED
    finally:
        await pubsub.aclose()
