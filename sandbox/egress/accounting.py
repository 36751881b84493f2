"""What an attempt may spend through its door and what it did: its caps (connections, bytes both
ways, the monthly budget), each connection's record, and the ``DoorUse`` handed back when the door
is unbound. Past ``MAX_RECORDS`` an attempt's connections are only counted, with their bytes."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

from ..spec import Connection, DoorUse, Egress

MAX_RECORDS = 1000  # per attempt; connections past it are counted (DoorUse.unrecorded), with their bytes

Budget = Callable[[str, str, int], int | None]  # (tenant, job, attempt) -> bytes left this month, or None


class Record:
    """A connection while it lasts; ``final()`` makes the Connection recorded for the attempt."""

    def __init__(self) -> None:
        self.host, self.port, self.address = "", 0, ""
        self.verdict, self.reason = "denied", ""
        self.sent = self.received = 0
        self.tunnel = False  # "200 Connection Established" was sent: a refusal now just ends it
        self.upstream: socket.socket | None = None
        self.started_at = time.time()
        self.t0 = time.monotonic()
        self.ended: float | None = None

    def end(self, verdict: str | None = None, reason: str | None = None) -> None:
        if self.ended is None:
            self.ended = time.monotonic()
            if verdict is not None:
                self.verdict = verdict
            if reason is not None:
                self.reason = reason

    def final(self) -> Connection:
        ended = self.ended if self.ended is not None else time.monotonic()
        return Connection(
            host=self.host,
            port=self.port,
            address=self.address,
            verdict=self.verdict,
            reason=self.reason,
            bytes_sent=self.sent,
            bytes_received=self.received,
            started_at=self.started_at,
            duration_ms=round((ended - self.t0) * 1000.0, 3),
        )


class Binding:
    """One attempt on one door: its identity, policy, caps, what it has used and its records."""

    def __init__(
        self,
        *,
        tenant: str,
        job: str,
        attempt: int,
        egress: Egress,
        max_connections: int,
        max_bytes: int,
        budget_left: int | None,
    ) -> None:
        self.tenant, self.job, self.attempt, self.egress = tenant, job, attempt, egress
        self.max_connections = max_connections
        self.max_bytes = max_bytes if budget_left is None else max(0, min(max_bytes, budget_left))
        self.budget_bound = budget_left is not None and budget_left < max_bytes
        self.connections = 0
        self.bytes = 0
        self.sent = self.received = 0  # every connection's, recorded or not
        self.records: list[Record] = []
        self.unrecorded = 0
        self.sockets: set[socket.socket] = set()
        self.threads: set[threading.Thread] = set()
        self.closed = False
        self.lock = threading.Lock()

    def admit(self, record: Record, sock: socket.socket) -> bool:
        """Count a new connection; False once the door is unbound."""
        with self.lock:
            if self.closed:
                return False
            self.connections += 1
            self.sockets.add(sock)
            self.threads.add(threading.current_thread())
            if len(self.records) < MAX_RECORDS:
                self.records.append(record)
            else:
                self.unrecorded += 1
            return True

    def track(self, sock: socket.socket) -> bool:
        with self.lock:
            if self.closed:
                return False
            self.sockets.add(sock)
            return True

    def spend(self, n: int, *, up: bool) -> int:
        """How many of ``n`` bytes may still pass (both directions count towards the cap)."""
        with self.lock:
            allowed = max(0, min(n, self.max_bytes - self.bytes))
            self.bytes += allowed
            if up:
                self.sent += allowed
            else:
                self.received += allowed
            return allowed

    def cap_reason(self) -> str:
        return "monthly egress budget" if self.budget_bound else "byte cap"

    def done(self) -> None:
        with self.lock:
            self.threads.discard(threading.current_thread())

    def close(self, wait_s: float) -> DoorUse:
        with self.lock:
            self.closed = True
            sockets, threads = list(self.sockets), list(self.threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + wait_s
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self.lock:
            records = tuple(r.final() for r in self.records)
            sent, received = self.sent, self.received
        return DoorUse(
            connections=records,
            unrecorded=self.unrecorded,
            unrecorded_bytes_sent=max(0, sent - sum(r.bytes_sent for r in records)),
            unrecorded_bytes_received=max(0, received - sum(r.bytes_received for r in records)),
        )
