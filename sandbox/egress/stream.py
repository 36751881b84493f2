"""A socket as the door reads it: with a buffer, so that a request's head, its framed body and
what is left over for a tunnel each come out whole, and nothing past a body is read as part of it."""

from __future__ import annotations

import socket

from .heads import MAX_HEAD_BYTES
from .refusal import Refusal

CHUNK = 65536


class Stream:
    """A socket read with a buffer: heads, bodies, and what is left over for a tunnel."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def fill(self) -> bool:
        data = self.sock.recv(CHUNK)
        self.buffer += data
        return bool(data)

    def take_buffer(self) -> bytes:
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def read_head(self) -> bytes | None:
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self.buffer[: end + 4])
                del self.buffer[: end + 4]
                return head
            if len(self.buffer) > MAX_HEAD_BYTES or not self.fill():
                return None

    def _line(self) -> bytes:
        while True:
            end = self.buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buffer[: end + 2])
                del self.buffer[: end + 2]
                return line
            if len(self.buffer) > MAX_HEAD_BYTES or not self.fill():
                raise Refusal("malformed request body")

    def _exactly(self, n: int):
        while n > 0:
            if not self.buffer and not self.fill():
                raise Refusal("request body cut short")
            piece = bytes(self.buffer[:n])
            del self.buffer[: len(piece)]
            n -= len(piece)
            yield piece

    def body(self, framing: str, length: int):
        """The request body's bytes as they come, framing included (nothing after it)."""
        if framing == "length":
            yield from self._exactly(length)
        elif framing == "chunked":
            while True:
                line = self._line()
                size_text = line.split(b";", 1)[0].strip()
                if (
                    not size_text
                    or len(size_text) > 16
                    or any(c not in b"0123456789abcdefABCDEF" for c in size_text)
                ):
                    raise Refusal("malformed chunked body")
                yield line
                size = int(size_text, 16)
                if size == 0:
                    while True:  # trailers, up to the blank line
                        trailer = self._line()
                        yield trailer
                        if trailer == b"\r\n":
                            return
                yield from self._exactly(size)
                crlf = self._line()
                if crlf != b"\r\n":
                    raise Refusal("malformed chunked body")
                yield crlf
