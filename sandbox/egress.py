"""The door: the only way out of a cell. One proxy per worker process, one Unix socket per cell.

A cell keeps network ``none``. When a job's egress is not ``none``, its cell is created with a
directory of this proxy mounted at ``/run/lambdasite/egress``; the runner relays a loopback port in
the cell to the socket there, and the job's process is pointed at that port (``HTTP_PROXY`` and
friends). Who is on the other end is known from the socket alone: the worker binds a cell's door to
the attempt that runs in it (tenant, job, attempt, policy, caps) before the job starts and unbinds
it after; nothing the job sends names it, and a door that is not bound refuses everything.

What the proxy does, and why:

* It answers ``CONNECT host:port`` and absolute-URI plain HTTP requests only. It resolves names
  itself (cells have no DNS), checks *every* address of the answer against the deny table and the
  platform's own services (``sandbox.netpolicy``), and connects to the exact address it checked,
  so a name whose answer changes between two lookups (DNS rebinding) reaches only what was checked.
  Literal addresses are read as the C resolver reads them (``2130706433``, ``0x7f.1``, ``127.1``)
  and refused unless canonical.
* ``CONNECT`` to port 443: the TLS ClientHello is read before any byte reaches the target, and its
  SNI must be the host the job asked for (an IP literal needs no SNI only if the policy names that
  address); an encrypted ClientHello (ECH) is refused, since it hides the name. ``CONNECT`` to port
  80 carries plain HTTP, and gets the plain HTTP rule.
* Plain HTTP: the ``Host`` header must be the request's host (no virtual-host smuggling onto an
  allowed address); the request is rewritten to origin form with ``Connection: close``, one request
  per connection; its body is framed (``Content-Length`` or chunked, never both) so nothing past it
  reaches the target unchecked. ``Upgrade`` is refused.
* Caps per attempt: connections, connect time, bytes (both ways, cut mid-transfer: "byte cap"), and
  an optional ``budget(tenant, job, attempt)`` hook giving the bytes the tenant may still move this
  month ("monthly egress budget"). Every connection is recorded (allowed or denied, why, bytes,
  start, duration) and handed to the worker when the door is unbound (``DoorUse``, then
  ``RunResult.connections``); past ``MAX_RECORDS`` an attempt's connections are only counted,
  with their bytes (``RunResult.connections_unrecorded``).
* Every refusal gets the same ``403`` before any connection is tried, so a job cannot tell an
  address that is refused from one that does not answer, or probe the worker's network.

Plain Python and threads (a thread per connection, two while tunnelling), no Django."""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import logging
import os
import shutil
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .egress_policy import allows, is_hostname, names_address, split_host_port
from .exceptions import SandboxError
from .netpolicy import NetPolicy, literal_address
from .spec import Connection, DoorUse, Egress

log = logging.getLogger("lambdasite.egress")

DOOR_MOUNT = "/run/lambdasite/egress"  # where a cell sees its door's directory
SOCKET_NAME = "proxy.sock"
MAX_HEAD_BYTES = 16384
MAX_HELLO_BYTES = 65536
MAX_SOCKET_PATH = 107  # bytes of a Unix socket's path (sun_path, with its NUL)
MAX_RECORDS = 1000  # per attempt; connections past it are counted (DoorUse.unrecorded), with their bytes
CHUNK = 65536

REFUSED = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
UNREACHABLE = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
ESTABLISHED = b"HTTP/1.1 200 Connection Established\r\n\r\n"
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization", b"proxy-authenticate", b"te"}
)
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")

Resolve = Callable[[str, int], list[str]]
Budget = Callable[[str, str, int], int | None]


class Refusal(Exception):
    """A request the proxy refuses; the message is the reason recorded (the job sees only 403)."""


# -- parsing ------------------------------------------------------------------------------------


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


# -- bindings and doors -------------------------------------------------------------------------


class _Record:
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
        self.records: list[_Record] = []
        self.unrecorded = 0
        self.sockets: set[socket.socket] = set()
        self.threads: set[threading.Thread] = set()
        self.closed = False
        self.lock = threading.Lock()

    def admit(self, record: _Record, sock: socket.socket) -> bool:
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


class Door:
    """A cell's door: a directory holding the socket, mounted into that cell only."""

    def __init__(self, proxy: EgressProxy, name: str, directory: str, mount_source: str) -> None:
        self.proxy, self.name = proxy, name
        self.directory = directory
        self.mount_source = mount_source  # what the engine binds at DOOR_MOUNT
        self.path = os.path.join(directory, SOCKET_NAME)
        self.binding: Binding | None = None
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(64)
        self.open = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=proxy._accept, args=(self,), name=f"egress-{name}", daemon=True)

    @property
    def mount(self) -> dict:
        """The engine's ``volumes`` entry for this door."""
        return {self.mount_source: {"bind": DOOR_MOUNT, "mode": "ro"}}


# -- the proxy ------------------------------------------------------------------------------------


class EgressProxy:
    """The worker's egress proxy: open a door per cell, bind it to each attempt, read what it did."""

    def __init__(
        self,
        *,
        directory: str,
        policy: NetPolicy | None = None,
        host_directory: str = "",
        resolve: Resolve | None = None,
        budget: Budget | None = None,
        max_connections: int = 256,
        max_bytes: int = 256 << 20,
        max_open_per_door: int = 64,
        connect_timeout_s: float = 10.0,
        head_timeout_s: float = 10.0,
        idle_timeout_s: float = 300.0,
        resolve_timeout_s: float = 5.0,
        lookups_per_tenant: int = 4,
    ) -> None:
        os.makedirs(directory, mode=0o711, exist_ok=True)
        self.directory = directory
        self.host_directory = host_directory  # the same directory as the engine sees it (in a container)
        self.policy = policy or NetPolicy()
        self.resolve = resolve or _getaddrinfo
        self.budget = budget
        self.max_connections = max_connections
        self.max_bytes = max_bytes
        self.max_open_per_door = max_open_per_door
        self.connect_timeout_s = connect_timeout_s
        self.head_timeout_s = head_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.resolve_timeout_s = resolve_timeout_s
        # getaddrinfo cannot be interrupted: a lookup outliving its timeout holds its thread until the
        # system resolver gives up, so a tenant may have only a few running, and its further lookups
        # wait for one of them within their own timeout (its slow names cannot take every thread)
        self._resolver = concurrent.futures.ThreadPoolExecutor(32, thread_name_prefix="egress-dns")
        self.lookups_per_tenant = lookups_per_tenant
        self._lookups: collections.Counter = collections.Counter()
        self._lookups_changed = threading.Condition()
        self._doors: dict[str, Door] = {}
        self._lock = threading.Lock()
        self._sweep()

    def _sweep(self) -> None:
        """Remove the doors a dead worker left in the directory (nothing listens on their sockets);
        another live worker's doors sharing it answer and are kept."""
        for name in os.listdir(self.directory):
            path = os.path.join(self.directory, name, SOCKET_NAME)
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
            except (ConnectionRefusedError, FileNotFoundError):
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
            except OSError:
                pass
            finally:
                probe.close()

    # -- doors ------------------------------------------------------------------------

    def open_door(self, name: str, uid: int | None = None) -> Door:
        """A door for cell ``name``: its directory (owned by ``uid``, the cell's runner, when this
        process may chown) and a listening socket nobody is bound to yet."""
        directory = os.path.join(self.directory, name)
        if len(os.path.join(directory, SOCKET_NAME).encode()) > MAX_SOCKET_PATH:
            raise SandboxError(
                f"EGRESS_DIR {self.directory} is too long for a socket path", code="egress_unavailable"
            )
        os.mkdir(directory, 0o700)
        mount_source = os.path.join(self.host_directory, name) if self.host_directory else directory
        try:
            door = Door(self, name, directory, mount_source)
        except OSError:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        try:
            if uid is None:
                raise PermissionError
            os.chown(door.path, uid, uid)
            os.chmod(door.path, 0o600)
            os.chown(directory, uid, uid)
        except (PermissionError, OverflowError):
            os.chmod(directory, 0o755)  # not root: only this cell mounts the directory anyway
            os.chmod(door.path, 0o666)
        with self._lock:
            self._doors[name] = door
        door.thread.start()
        return door

    def close_door(self, door: Door) -> None:
        self.unbind(door)
        with self._lock:
            self._doors.pop(door.name, None)
        with contextlib.suppress(OSError):
            door.listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            door.listener.close()
        door.thread.join(timeout=5)
        shutil.rmtree(door.directory, ignore_errors=True)

    def bind(self, door: Door, *, tenant: str, job: str, attempt: int, egress: Egress) -> Binding:
        """The attempt that owns ``door`` from now on (until :meth:`unbind`)."""
        budget_left = None
        if self.budget is not None:
            try:
                budget_left = self.budget(tenant, job, attempt)
            except Exception:  # noqa: BLE001 - a budget that cannot be read allows nothing
                log.exception("reading the egress budget failed")
                budget_left = 0
        binding = Binding(
            tenant=tenant,
            job=job,
            attempt=attempt,
            egress=egress,
            max_connections=self.max_connections,
            max_bytes=self.max_bytes,
            budget_left=budget_left,
        )
        old, door.binding = door.binding, binding
        if old is not None:
            old.close(0.0)
        return binding

    def unbind(self, door: Door, wait_s: float = 1.0) -> DoorUse:
        """End the attempt's use of ``door``: its connections are cut; -> what it did (the
        connections recorded, in order, and those only counted)."""
        binding, door.binding = door.binding, None
        return binding.close(wait_s) if binding is not None else DoorUse()

    def close(self) -> None:
        with self._lock:
            doors = list(self._doors.values())
        for door in doors:
            self.close_door(door)
        self._resolver.shutdown(wait=False, cancel_futures=True)

    # -- connections --------------------------------------------------------------------

    def _accept(self, door: Door) -> None:
        while True:
            try:
                client, _ = door.listener.accept()
            except OSError:
                return
            with door.lock:
                crowded = door.open >= self.max_open_per_door
                if not crowded:
                    door.open += 1
            if crowded:
                _refuse(client)
                continue
            threading.Thread(target=self._serve, args=(door, client), name="egress-conn", daemon=True).start()

    def _serve(self, door: Door, client: socket.socket) -> None:
        binding = door.binding  # the identity comes from the socket this arrived on, nothing else
        record = _Record()
        try:
            if binding is None or not binding.admit(record, client):
                client.settimeout(self.head_timeout_s)
                _Stream(client).read_head()  # the request is read, as any refused one is
                _refuse(client)
                return
            self._handle(binding, client, record)
        except Refusal as refusal:
            record.end("denied", str(refusal))
            _refuse(client, sent_ok=record.tunnel)
        except OSError as exc:
            record.end(None, record.reason or f"ended: {exc.strerror or type(exc).__name__}")
        finally:
            record.end()
            for sock in (record.upstream, client):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.close()
            if binding is not None:
                binding.done()
            with door.lock:
                door.open -= 1
            if record.verdict == "denied" and record.reason:
                log.info(
                    "egress refused %s:%s: %s",
                    record.host,
                    record.port,
                    record.reason,
                    extra={"event": "egress_refused", "tenant": binding.tenant, "job_id": binding.job},
                )

    def _handle(self, binding: Binding, client: socket.socket, record: _Record) -> None:
        client.settimeout(self.head_timeout_s)
        stream = _Stream(client)
        head = stream.read_head()
        if head is None:
            raise Refusal("malformed request")
        request = parse_head(head)
        record.host, record.port = request.host, request.port
        if binding.connections > binding.max_connections:
            raise Refusal("connection cap")
        if binding.bytes >= binding.max_bytes:
            raise Refusal(binding.cap_reason())
        addresses = self._check(binding, request)
        if request.connect and request.port == 80:
            client.sendall(ESTABLISHED)
            record.tunnel = True
            head = stream.read_head()
            if head is None:
                raise Refusal("malformed request")
            request = parse_head(head, tunnel_host=(request.host, request.port))
        if not request.connect:
            self._plain_http(binding, stream, request, addresses, record)
            return
        client.sendall(ESTABLISHED)
        record.tunnel = True
        if request.port == 443:
            first = self._read_hello(binding, stream, request)
        else:
            first = stream.take_buffer()
        upstream = self._connect(binding, addresses, request.port, record)
        self._tunnel(binding, client, upstream, first, record)

    def _check(self, binding: Binding, request: Request) -> list[str]:
        """The policy's and the table's verdict on a request: the addresses it may connect to."""
        host, port = request.host, request.port
        egress = binding.egress
        if not allows(egress.mode, egress.allow, host, port):
            raise Refusal("not on the egress allowlist" if egress.mode == "allowlist" else "egress is off")
        literal = literal_address(host)
        if literal is not None:
            address, canonical = literal
            why = self.policy.check(address, port)
            if why is not None:
                raise Refusal(why)
            if not canonical:
                raise Refusal(f"a non-canonical address literal (means {address})")
            return [address]
        if not is_hostname(host):
            raise Refusal("not a host name")
        why = self.policy.check_name(host, port)
        if why is not None:
            raise Refusal(why)
        addresses = self._lookup(binding, host, port)
        for address in addresses:
            why = self.policy.check(address, port)
            if why is not None:
                raise Refusal(f"{why} ({address})")
        return addresses

    def _lookup(self, binding: Binding, host: str, port: int) -> list[str]:
        tenant = binding.tenant
        deadline = time.monotonic() + self.resolve_timeout_s
        with self._lookups_changed:
            while self._lookups[tenant] >= self.lookups_per_tenant:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Refusal(f"{self.lookups_per_tenant} of this tenant's names are still resolving")
                self._lookups_changed.wait(remaining)
            self._lookups[tenant] += 1

        def done() -> None:
            with self._lookups_changed:
                self._lookups[tenant] -= 1
                if not self._lookups[tenant]:
                    del self._lookups[tenant]
                self._lookups_changed.notify_all()

        def lookup() -> list[str]:
            try:
                return self.resolve(host, port)
            finally:
                done()

        try:
            future = self._resolver.submit(lookup)
        except RuntimeError:  # the proxy is closing
            done()
            raise Refusal("the name does not resolve") from None
        try:
            found = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except concurrent.futures.TimeoutError:
            raise Refusal("the name did not resolve in time") from None
        except (OSError, UnicodeError, ValueError, RuntimeError):
            raise Refusal("the name does not resolve") from None
        addresses = list(dict.fromkeys(a.split("%", 1)[0] for a in found))
        if not addresses:
            raise Refusal("the name does not resolve")
        return addresses

    def _read_hello(self, binding: Binding, stream: _Stream, request: Request) -> bytes:
        """The ClientHello of a CONNECT to 443, whose name must be the host asked for."""
        stream.sock.settimeout(self.head_timeout_s)
        while True:
            hello = client_hello(stream.buffer)
            if hello is not None:
                break
            if len(stream.buffer) > MAX_HELLO_BYTES or not stream.fill():
                raise Refusal("no TLS ClientHello")
        if hello.ech:
            raise Refusal("encrypted ClientHello (ECH) hides the server name")
        literal = literal_address(request.host)
        if literal is not None and names_address(binding.egress.allow, literal[0], request.port):
            return stream.take_buffer()
        if hello.sni != request.host:
            raise Refusal(f"TLS server name {hello.sni or '(none)'} is not the CONNECT host")
        return stream.take_buffer()

    def _connect(self, binding: Binding, addresses: list[str], port: int, record: _Record) -> socket.socket:
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

    def _tunnel(
        self, binding: Binding, client: socket.socket, upstream: socket.socket, first: bytes, record: _Record
    ) -> None:
        if first:
            self._send(binding, upstream, first, record, up=True)
        other = threading.Thread(
            target=self._pump,
            args=(binding, upstream, client, record, False),
            name="egress-pump",
            daemon=True,
        )
        other.start()
        self._pump(binding, client, upstream, record, True)
        other.join()

    def _send(self, binding: Binding, sink: socket.socket, data: bytes, record: _Record, *, up: bool) -> bool:
        allowed = binding.spend(len(data), up=up)
        if allowed:
            sink.sendall(data[:allowed] if allowed < len(data) else data)
            if up:
                record.sent += allowed
            else:
                record.received += allowed
        if allowed < len(data):
            record.end("denied", binding.cap_reason())
            return False
        return True

    def _pump(
        self, binding: Binding, source: socket.socket, sink: socket.socket, record: _Record, up: bool
    ) -> None:
        try:
            source.settimeout(self.idle_timeout_s)
            sink.settimeout(self.idle_timeout_s)
            while True:
                data = source.recv(CHUNK)
                if not data:
                    with contextlib.suppress(OSError):
                        sink.shutdown(socket.SHUT_WR)
                    return
                if not self._send(binding, sink, data, record, up=up):
                    break
        except OSError:
            pass
        for sock in (source, sink):  # one direction ended badly or hit the cap: end both
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _plain_http(
        self, binding: Binding, stream: _Stream, request: Request, addresses: list[str], record: _Record
    ) -> None:
        """One plain HTTP request: checked, rewritten to origin form, its body framed, the answer relayed."""
        if not host_matches(request):
            raise Refusal("the Host header is not the request's host")
        if request.header(b"upgrade"):
            raise Refusal("Upgrade is not relayed")
        framing, length = body_framing(request)
        upstream = self._connect_plain(binding, addresses, request, stream, record)
        if not self._send(binding, upstream, origin_head(request), record, up=True):
            return
        answer = threading.Thread(
            target=self._answer,
            args=(binding, upstream, stream.sock, record),
            name="egress-pump",
            daemon=True,
        )
        answer.start()
        stream.sock.settimeout(self.idle_timeout_s)
        try:
            for piece in stream.body(framing, length):
                if not self._send(binding, upstream, piece, record, up=True):
                    break
        except Refusal as refusal:
            record.end("denied", str(refusal))
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # the target answered and closed before the whole body: its answer is still relayed
        answer.join()

    def _answer(
        self, binding: Binding, upstream: socket.socket, client: socket.socket, record: _Record
    ) -> None:
        """Relay a plain HTTP answer, its head saying ``Connection: close`` (the connection ends with it)."""
        stream = _Stream(upstream)
        try:
            upstream.settimeout(self.idle_timeout_s)
            while True:
                head = stream.read_head()
                if head is None:
                    break
                status = head[9:12]
                if not self._send(binding, client, closing_head(head), record, up=False):
                    return
                if not (status.startswith(b"1") and status != b"101"):
                    break
            if stream.buffer and not self._send(binding, client, stream.take_buffer(), record, up=False):
                return
        except OSError:
            return
        self._pump(binding, upstream, client, record, False)

    def _connect_plain(
        self, binding: Binding, addresses: list[str], request: Request, stream: _Stream, record: _Record
    ) -> socket.socket:
        try:
            return self._connect(binding, addresses, request.port, record)
        except OSError:
            if not record.tunnel:
                with contextlib.suppress(OSError):
                    stream.sock.sendall(UNREACHABLE)
            raise


class _Stream:
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


def closing_head(head: bytes) -> bytes:
    """A response head without hop-by-hop connection headers, saying ``Connection: close``."""
    lines = head[:-4].split(b"\r\n")
    kept = [lines[0]] + [
        line
        for line in lines[1:]
        if line.split(b":", 1)[0].strip().lower() not in (b"connection", b"keep-alive")
    ]
    return b"\r\n".join([*kept, b"Connection: close"]) + b"\r\n\r\n"


def _refuse(sock: socket.socket, sent_ok: bool = False) -> None:
    """The same answer to every refusal (or, inside an established tunnel, the connection's end).
    What the client still sends is read for a moment, so that closing does not reset the
    connection before the client has read the answer."""
    with contextlib.suppress(OSError):
        if not sent_ok:
            sock.sendall(REFUSED)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(0.5)
            drained = 0
            while drained < MAX_HEAD_BYTES * 4:
                chunk = sock.recv(CHUNK)
                if not chunk:
                    break
                drained += len(chunk)
    with contextlib.suppress(OSError):
        sock.close()


def table_resolver(table: Mapping[str, Sequence[str]]) -> Resolve:
    """A resolver answering from ``table`` alone, a name not in it not resolving: the system tests'
    names for a worker's proxy (EGRESS_TEST_HOSTS). Its answers pass the deny table like any other."""
    names = {name.lower(): list(addresses) for name, addresses in table.items()}

    def resolve(host: str, port: int) -> list[str]:
        if host not in names:
            raise OSError(f"{host}: not in the name table")
        return list(names[host])

    return resolve


def _getaddrinfo(host: str, port: int) -> list[str]:
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
