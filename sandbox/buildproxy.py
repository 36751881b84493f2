"""The builders' only way out: an HTTP proxy on a Unix socket that opens tunnels to the package
indexes and to nothing else.

A builder container has network ``none``: no interface but loopback, no route to the host, its
network or the metadata service. The directory holding this proxy's socket is mounted into it;
the builder's ``egress.py`` forwards a loopback port to the socket and points pip and npm at it.
The proxy accepts ``CONNECT host:port`` (HTTPS) and absolute-form plain HTTP requests only for
the exact ``host:port`` pairs it was given (the configured index, registry and their file hosts); anything
else is refused with the same ``403`` before any connection is tried, so a build log cannot tell
an open port from a closed one, or a host that exists from one that does not. It never follows a
redirect itself (the client does, through the proxy again, so the target is checked again).

Plain Python, no Django: ``sandbox.layers`` starts one per build step and closes it after.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
from collections.abc import Iterable
from urllib.parse import urlsplit

SOCKET_NAME = "proxy.sock"
MAX_HEAD_BYTES = 16384
REFUSED = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
UNREACHABLE = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
ESTABLISHED = b"HTTP/1.1 200 Connection Established\r\n\r\n"

# the hosts an index's pages send pip and npm to for the files themselves
FILE_HOSTS = {"pypi.org": ("files.pythonhosted.org",)}


def allowed_targets(urls: Iterable[str]) -> frozenset[tuple[str, int]]:
    """The ``(host, port)`` pairs the given index URLs need (with the file hosts of the well-known ones)."""
    targets: set[tuple[str, int]] = set()
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            continue
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname.lower()
        targets.add((host, port))
        for extra in FILE_HOSTS.get(host, ()):
            targets.add((extra, port))
    return frozenset(targets)


def parse_target(head: bytes) -> tuple[str, str, int, bytes] | None:
    """``(method, host, port, the head to send upstream)`` of a proxy request, or None if malformed.

    CONNECT's head is not forwarded (b""); a plain request's is rewritten to origin form."""
    try:
        text = head.decode("latin-1")
        request_line, _, rest = text.partition("\r\n")
        method, target, version = request_line.split(" ")
    except ValueError:
        return None
    if not version.startswith("HTTP/1.") or any(ord(c) < 33 or ord(c) > 126 for c in target):
        return None
    if method == "CONNECT":
        host, sep, port = target.rpartition(":")
        if not sep or not port.isascii() or not port.isdigit() or not host or not 0 < int(port) < 65536:
            return None
        return method, host.strip("[]").lower(), int(port), b""
    parts = urlsplit(target)
    if parts.scheme != "http" or not parts.hostname:
        return None
    try:
        port = parts.port or 80
    except ValueError:
        return None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    upstream = f"{method} {path} {version}\r\n{rest}".encode("latin-1")
    return method, parts.hostname.lower(), port, upstream


class BuildProxy:
    """A proxy on ``<directory>/proxy.sock`` for one build step; ``close()`` ends every tunnel."""

    def __init__(
        self,
        allowed: Iterable[tuple[str, int]],
        *,
        base_dir: str | None = None,
        connect_timeout_s: float = 15.0,
        idle_timeout_s: float = 120.0,
    ) -> None:
        self.allowed = frozenset((host.lower(), port) for host, port in allowed)
        self.connect_timeout_s = connect_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.directory = tempfile.mkdtemp(prefix="lambdasite-build-proxy-", dir=base_dir or None)
        os.chmod(self.directory, 0o755)  # the builder's unprivileged user must reach the socket
        self.path = os.path.join(self.directory, SOCKET_NAME)
        self.refused: list[tuple[str, int]] = []  # what was asked and refused, for tests and logs
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        os.chmod(self.path, 0o666)
        self._listener.listen(64)
        self._thread = threading.Thread(target=self._accept, name="build-proxy", daemon=True)
        self._thread.start()

    def __enter__(self) -> BuildProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            open_sockets, self._sockets = list(self._sockets), set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._listener.close()
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            os.rmdir(self.directory)

    # -- internals ---------------------------------------------------------------------------

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._sockets.add(sock)
            return True

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        with contextlib.suppress(OSError):
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._track(client):
                client.close()
                return
            threading.Thread(target=self._serve, args=(client,), name="build-proxy-conn", daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        try:
            client.settimeout(self.connect_timeout_s)
            head, extra = _read_head(client)
            parsed = parse_target(head) if head is not None else None
            if parsed is None:
                client.sendall(BAD_REQUEST)
                return
            method, host, port, upstream_head = parsed
            if (host, port) not in self.allowed:
                self.refused.append((host, port))
                client.sendall(REFUSED)
                return
            try:
                upstream = socket.create_connection((host, port), timeout=self.connect_timeout_s)
            except OSError:
                client.sendall(UNREACHABLE)
                return
            if not self._track(upstream):
                return
            if method == "CONNECT":
                client.sendall(ESTABLISHED)
            else:
                upstream.sendall(upstream_head)
            if extra:
                upstream.sendall(extra)
            client.settimeout(self.idle_timeout_s)
            upstream.settimeout(self.idle_timeout_s)
            other = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
            other.start()
            _pump(client, upstream)
            other.join(self.idle_timeout_s)
        except OSError:
            pass
        finally:
            if upstream is not None:
                self._forget(upstream)
            self._forget(client)


def _read_head(sock: socket.socket) -> tuple[bytes | None, bytes]:
    """The request head up to the blank line (None if too long or cut) and what came after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD_BYTES:
            return None, b""
        chunk = sock.recv(4096)
        if not chunk:
            return None, b""
        data += chunk
    head, _, extra = data.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n", extra


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
