"""The TLS ClientHello a ``CONNECT`` to port 443 must open with, read before any byte reaches the
target: its server name (SNI) must be the host the job asked for, and an encrypted ClientHello
(ECH), which hides the name, is refused."""

from __future__ import annotations

import struct

from ..egress_policy import names_address
from ..netpolicy import literal_address
from .refusal import Refusal
from .stream import Stream

MAX_HELLO_BYTES = 65536


class TLSHello:
    """What a ClientHello says: its server name (or None) and whether it hides the real one (ECH)."""

    def __init__(self, sni: str | None, ech: bool) -> None:
        self.sni, self.ech = sni, ech


def client_hello(data: bytes) -> TLSHello | None:
    """Parse a TLS ClientHello from the start of a connection; None while more bytes are needed,
    Refusal if it is not one."""
    handshake = bytearray()
    offset = 0
    while True:
        if len(data) < offset + 5:
            return None
        kind, major, length = data[offset], data[offset + 1], struct.unpack_from(">H", data, offset + 3)[0]
        if kind != 0x16 or major != 3:
            raise Refusal("not a TLS ClientHello")
        if len(data) < offset + 5 + length:
            return None
        handshake += data[offset + 5 : offset + 5 + length]
        offset += 5 + length
        if len(handshake) >= 4:
            if handshake[0] != 1:
                raise Refusal("not a TLS ClientHello")
            size = int.from_bytes(handshake[1:4], "big")
            if size > MAX_HELLO_BYTES:
                raise Refusal("TLS ClientHello too large")
            if len(handshake) >= 4 + size:
                return _hello_fields(bytes(handshake[4 : 4 + size]))


def _hello_fields(body: bytes) -> TLSHello:
    try:
        pos = 2 + 32  # version, random
        pos += 1 + body[pos]  # session id
        pos += 2 + struct.unpack_from(">H", body, pos)[0]  # cipher suites
        pos += 1 + body[pos]  # compression methods
        if pos == len(body):
            return TLSHello(None, False)
        end = pos + 2 + struct.unpack_from(">H", body, pos)[0]
        pos += 2
        sni, ech = None, False
        while pos + 4 <= end:
            ext, size = struct.unpack_from(">HH", body, pos)
            data = body[pos + 4 : pos + 4 + size]
            pos += 4 + size
            if ext == 0xFE0D:
                ech = True
            elif ext == 0:
                names = data[2 : 2 + struct.unpack_from(">H", data, 0)[0]]
                if len(names) < 3 or names[0] != 0:
                    raise Refusal("malformed TLS server name")
                sni = names[3 : 3 + struct.unpack_from(">H", names, 1)[0]].decode("ascii").lower()
    except (IndexError, struct.error, UnicodeDecodeError):
        raise Refusal("malformed TLS ClientHello") from None
    return TLSHello(sni.removesuffix(".") if sni else None, ech)


def read_hello(stream: Stream, *, host: str, port: int, allow: tuple[str, ...]) -> bytes:
    """Read the ClientHello of a ``CONNECT host:port`` whose name must be ``host`` (an address
    literal needs none if ``allow`` names that address). -> the bytes read, to be sent on."""
    while True:
        hello = client_hello(stream.buffer)
        if hello is not None:
            break
        if len(stream.buffer) > MAX_HELLO_BYTES or not stream.fill():
            raise Refusal("no TLS ClientHello")
    if hello.ech:
        raise Refusal("encrypted ClientHello (ECH) hides the server name")
    literal = literal_address(host)
    if literal is not None and names_address(allow, literal[0], port):
        return stream.take_buffer()
    if hello.sni != host:
        raise Refusal(f"TLS server name {hello.sni or '(none)'} is not the CONNECT host")
    return stream.take_buffer()
