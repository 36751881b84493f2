"""Moving an admitted connection's bytes: connect to an address that was checked, then relay a
``CONNECT`` tunnel or one plain HTTP exchange (its body framed, its answer closing the connection),
every byte counted against the attempt's caps and cut where they run out."""

from __future__ import annotations

import contextlib
import socket
import threading

from .accounting import Binding, Record
from .heads import Request, closing_head, origin_head, plain_rule
from .refusal import Refusal
from .stream import CHUNK, Stream

UNREACHABLE = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class Relay:
    """One connection of an attempt, from its connect to its end (a thread each way while tunnelling)."""

    def __init__(self, binding: Binding, record: Record, *, connect_timeout_s: float, idle_timeout_s: float):
        self.binding, self.record = binding, record
        self.connect_timeout_s = connect_timeout_s
        self.idle_timeout_s = idle_timeout_s

    def connect(self, addresses: list[str], port: int) -> socket.socket:
        """The first of ``addresses`` (each checked already) that answers on ``port``, else OSError."""
        binding, record = self.binding, self.record
        last = None
        for address in addresses:
            record.address = address
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            if not binding.track(sock):
                sock.close()
                raise OSError("the job ended")
            sock.settimeout(self.connect_timeout_s)
            try:
                sock.connect((address, port))
            except OSError as exc:
                sock.close()
                last = exc
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            record.verdict, record.upstream = "allowed", sock
            return sock
        record.verdict = "allowed"
        reason = (
            "timed out" if isinstance(last, TimeoutError) else (getattr(last, "strerror", "") or "refused")
        )
        record.reason = f"unreachable ({reason})"
        raise OSError(record.reason)

    def tunnel(self, client: socket.socket, upstream: socket.socket, first: bytes) -> None:
        if first:
            self._send(upstream, first, up=True)
        other = threading.Thread(
            target=self._pump, args=(upstream, client, False), name="egress-pump", daemon=True
        )
        other.start()
        self._pump(client, upstream, True)
        other.join()

    def plain_http(self, stream: Stream, request: Request, addresses: list[str]) -> None:
        """One plain HTTP request: checked, rewritten to origin form, its body framed, the answer relayed."""
        record = self.record
        framing, length = plain_rule(request)
        upstream = self._connect_plain(addresses, request, stream)
        if not self._send(upstream, origin_head(request), up=True):
            return
        answer = threading.Thread(
            target=self._answer, args=(upstream, stream.sock), name="egress-pump", daemon=True
        )
        answer.start()
        stream.sock.settimeout(self.idle_timeout_s)
        try:
            for piece in stream.body(framing, length):
                if not self._send(upstream, piece, up=True):
                    break
        except Refusal as refusal:
            record.end("denied", str(refusal))
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # the target answered and closed before the whole body: its answer is still relayed
        answer.join()

    def _send(self, sink: socket.socket, data: bytes, *, up: bool) -> bool:
        allowed = self.binding.spend(len(data), up=up)
        if allowed:
            sink.sendall(data[:allowed] if allowed < len(data) else data)
            if up:
                self.record.sent += allowed
            else:
                self.record.received += allowed
        if allowed < len(data):
            self.record.end("denied", self.binding.cap_reason())
            return False
        return True

    def _pump(self, source: socket.socket, sink: socket.socket, up: bool) -> None:
        try:
            source.settimeout(self.idle_timeout_s)
            sink.settimeout(self.idle_timeout_s)
            while True:
                data = source.recv(CHUNK)
                if not data:
                    with contextlib.suppress(OSError):
                        sink.shutdown(socket.SHUT_WR)
                    return
                if not self._send(sink, data, up=up):
                    break
        except OSError:
            pass
        for sock in (source, sink):  # one direction ended badly or hit the cap: end both
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _answer(self, upstream: socket.socket, client: socket.socket) -> None:
        """Relay a plain HTTP answer, its head saying ``Connection: close`` (the connection ends with it)."""
        stream = Stream(upstream)
        try:
            upstream.settimeout(self.idle_timeout_s)
            while True:
                head = stream.read_head()
                if head is None:
                    break
                status = head[9:12]
                if not self._send(client, closing_head(head), up=False):
                    return
                if not (status.startswith(b"1") and status != b"101"):
                    break
            if stream.buffer and not self._send(client, stream.take_buffer(), up=False):
                return
        except OSError:
            return
        self._pump(upstream, client, False)

    def _connect_plain(self, addresses: list[str], request: Request, stream: Stream) -> socket.socket:
        try:
            return self.connect(addresses, request.port)
        except OSError:
            if not self.record.tunnel:
                with contextlib.suppress(OSError):
                    stream.sock.sendall(UNREACHABLE)
            raise
