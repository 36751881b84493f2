"""A proxy request's head as the door reads it: ``CONNECT host:port`` or absolute-URI plain HTTP,
parsed one way only; the ``Host`` rule, the origin-form rewrite, the body's framing, and the answer's
head as it is relayed. Pure functions of bytes."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..egress_policy import split_host_port
from .refusal import Refusal

MAX_HEAD_BYTES = 16384
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization", b"proxy-authenticate", b"te"}
)
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass
class Request:
    """A proxy request's first line and headers."""

    method: str
    host: str  # lower case, no brackets, no final dot
    port: int
    path: str = ""  # origin form, for plain HTTP
    version: str = "HTTP/1.1"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    @property
    def connect(self) -> bool:
        return self.method == "CONNECT"

    def header(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key.lower() == name]


def parse_head(head: bytes, *, tunnel_host: tuple[str, int] | None = None) -> Request:
    """A request head (up to and with its blank line) -> Request, else Refusal.

    ``tunnel_host``: inside a ``CONNECT host:80`` tunnel, an origin-form request for that host."""
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise Refusal("malformed request") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise Refusal("malformed request")
    method, target, version = parts
    if not method or not all(ord(c) in _TOKEN for c in method):
        raise Refusal("malformed request")
    if any(ord(c) < 33 or ord(c) > 126 for c in target):
        raise Refusal("malformed request")
    headers = _headers(lines[1:])
    if method == "CONNECT":
        if tunnel_host is not None:
            raise Refusal("malformed request")
        parsed = split_host_port(target)
        if parsed is None:
            raise Refusal("malformed request")
        return Request(method, parsed[0], parsed[1], version=version, headers=headers)
    if tunnel_host is not None and target.startswith("/"):
        return Request(method, tunnel_host[0], tunnel_host[1], target, version, headers)
    parts = urlsplit(target)
    try:
        port = parts.port or 80
    except ValueError:
        raise Refusal("malformed request") from None
    if parts.scheme != "http" or not parts.hostname:
        raise Refusal("not an absolute http:// request (HTTPS goes through CONNECT)")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.hostname.lower().removesuffix(".")
    request = Request(method, host, port, path, version, headers)
    if tunnel_host is not None and (host, port) != tunnel_host:
        raise Refusal("a request for another host inside a tunnel")
    return request


def _headers(lines: list[str]) -> list[tuple[bytes, bytes]]:
    headers = []
    for line in lines:
        if not line:
            continue
        name, sep, value = line.partition(":")
        # no obsolete line folding, no space before the colon: one reading of every header
        if not sep or not name or not all(ord(c) in _TOKEN for c in name):
            raise Refusal("malformed request")
        headers.append((name.encode(), value.strip(" \t").encode()))
    return headers


def host_matches(request: Request) -> bool:
    """Plain HTTP: exactly one Host header, naming the request's host (and its port, if not 80)."""
    values = request.header(b"host")
    if len(values) != 1:
        return False
    given = values[0].decode("ascii", "replace").lower()
    if given.startswith("["):
        host, _, rest = given[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            return False
    else:
        host, _, port = given.partition(":")
    host = host.removesuffix(".")
    if port and (not port.isdigit() or int(port) != request.port):
        return False
    if not port and request.port != 80:
        return False
    return host == request.host


def origin_head(request: Request) -> bytes:
    """The request as sent upstream: origin form, no hop-by-hop or proxy headers, ``Connection: close``."""
    named = {
        v.strip().lower().encode()
        for value in request.header(b"connection")
        for v in value.decode().split(",")
    }
    lines = [f"{request.method} {request.path} {request.version}".encode()]
    for name, value in request.headers:
        if name.lower() in HOP_BY_HOP or name.lower() in named:
            continue
        lines.append(name + b": " + value)
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def body_framing(request: Request) -> tuple[str, int]:
    """("none" | "length" | "chunked", length) of a request's body, else Refusal (smuggling shapes)."""
    encodings = request.header(b"transfer-encoding")
    lengths = request.header(b"content-length")
    if encodings:
        if lengths or len(encodings) != 1 or encodings[0].strip().lower() != b"chunked":
            raise Refusal("ambiguous request body")
        return "chunked", 0
    if lengths:
        if len(set(lengths)) != 1 or not lengths[0].isdigit() or len(lengths[0]) > 18:
            raise Refusal("ambiguous request body")
        return "length", int(lengths[0])
    return "none", 0


def plain_rule(request: Request) -> tuple[str, int]:
    """The plain HTTP rule: the ``Host`` header names the request's host, no ``Upgrade``, a body
    framed one way. -> its framing (``body_framing``), else Refusal."""
    if not host_matches(request):
        raise Refusal("the Host header is not the request's host")
    if request.header(b"upgrade"):
        raise Refusal("Upgrade is not relayed")
    return body_framing(request)


def closing_head(head: bytes) -> bytes:
    """A response head without hop-by-hop connection headers, saying ``Connection: close``."""
    lines = head[:-4].split(b"\r\n")
    kept = [lines[0]] + [
        line
        for line in lines[1:]
        if line.split(b":", 1)[0].strip().lower() not in (b"connection", b"keep-alive")
    ]
    return b"\r\n".join([*kept, b"Connection: close"]) + b"\r\n\r\n"
