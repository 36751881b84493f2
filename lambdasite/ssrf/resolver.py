"""Name resolution for webhooks that no one tenant can exhaust.

``getaddrinfo`` cannot be interrupted: a lookup that outlives its timeout still holds its thread until
the system resolver gives up (tens of seconds for a name server that never answers). So each lookup
runs on a thread of a bounded pool, the caller waits at most the timeout, and the thread is counted
against its owner (a tenant) until it really ends: an owner with ``per_owner`` lookups still running
is refused at once, without queueing, and a full pool refuses everyone at once rather than making
them wait behind stuck lookups. One tenant's slow names can then hold ``per_owner`` threads, never
the resolver."""

from __future__ import annotations

import collections
import concurrent.futures
import socket
import threading

MAX_THREADS = 64  # lookups running at once in this process, all owners together


class Busy(Exception):
    """No lookup was started: the owner (or the whole resolver) has too many running."""


class Resolver:
    def __init__(self, *, max_threads: int = MAX_THREADS) -> None:
        self.max_threads = max_threads
        self._pool = concurrent.futures.ThreadPoolExecutor(max_threads, thread_name_prefix="webhook-dns")
        self._lock = threading.Lock()
        self._running: collections.Counter = collections.Counter()

    def running(self, owner=None) -> int:
        with self._lock:
            return self._running[owner] if owner is not None else sum(self._running.values())

    def lookup(self, host: str, port: int, *, owner, per_owner: int, timeout: float) -> list:
        """getaddrinfo(host, port) for ``owner``; TimeoutError after ``timeout`` s, Busy if refused."""
        with self._lock:
            if self._running[owner] >= per_owner:
                raise Busy(f"{per_owner} of this tenant's names are still resolving")
            if sum(self._running.values()) >= self.max_threads:
                raise Busy("the resolver is busy")
            self._running[owner] += 1
        future = self._pool.submit(self._run, host, port, owner)
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError from None

    def _run(self, host: str, port: int, owner) -> list:
        try:
            return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        finally:
            with self._lock:
                self._running[owner] -= 1
                if not self._running[owner]:
                    del self._running[owner]


resolver = Resolver()
