"""One Redis client (and connection pool) per process and URL.

django-rq's ``get_connection()`` builds a new client, with a new connection and
handshake, on every call (~4 ms here); the job path talks to Redis several times
per job, so every module uses this cached, thread-safe client instead.
"""

from __future__ import annotations

import random
import socket
import threading

import redis
from django.conf import settings
from rq import Queue

_clients: dict[str, redis.Redis] = {}
_lock = threading.Lock()


def redis_url() -> str:
    return settings.RQ_QUEUES[settings.RQ_QUEUE]["URL"]


def dead_peer_options() -> dict:
    """TCP options that end a connection to an unanswering Redis within seconds (a host cut off from
    the network), instead of the kernel's hours: keepalive probes for idle and blocked reads, a user
    timeout for unacknowledged writes. Waiting on BLPOP is not affected: the probes are answered."""
    options = {
        socket.TCP_KEEPIDLE: settings.KEEPALIVE_IDLE_S,
        socket.TCP_KEEPINTVL: settings.KEEPALIVE_INTERVAL_S,
        socket.TCP_KEEPCNT: 3,
    }
    if hasattr(socket, "TCP_USER_TIMEOUT"):  # the probes' sum (settings.py says why never less)
        options[socket.TCP_USER_TIMEOUT] = settings.DB_DEAD_PEER_S * 1000
    return options


def get_redis() -> redis.Redis:
    url = redis_url()
    client = _clients.get(url)
    if client is None:
        with _lock:
            client = _clients.get(url)
            if client is None:
                client = redis.Redis.from_url(
                    url,
                    health_check_interval=30,
                    socket_keepalive=True,
                    socket_keepalive_options=dead_peer_options(),
                )
                _clients[url] = client
    return client


def generation(key: str, *, connect=None) -> bytes | bool:
    """The value of a cache's generation counter, or False (do not cache: Redis is away).

    A process reads it before reading what it caches and reuses its copy while the value is unchanged;
    every change bumps it (INCR) after its commit. A missing counter (a fresh or flushed Redis) starts
    at a random value, so nothing cached before the flush can match it."""
    try:
        conn = (connect or get_redis)()
        value = conn.get(key)
        if value is None:
            conn.set(key, random.getrandbits(62), nx=True)
            value = conn.get(key)
        return value if value is not None else False
    except Exception:  # noqa: BLE001 - no cache without Redis
        return False


def get_queue(name: str | None = None) -> Queue:
    """The jobs queue, or another of Lambdasite's queues by name (``build_queue_name()``)."""
    return Queue(name or settings.RQ_QUEUE, connection=get_redis(), default_timeout=3600)


def build_queue_name() -> str:
    """Function builds: workers take them before jobs (deploys are rare, and invocations wait on them)."""
    return f"{settings.RQ_QUEUE}-builds"
