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

The package's modules, each a part of that: ``heads`` (a request's head and the HTTP rules),
``stream`` (reading a socket), ``tls`` (the ClientHello), ``destinations`` (the policy and the deny
table on a host and its addresses), ``names`` (lookups), ``accounting`` (an attempt's caps and
records), ``doors`` (a cell's socket), ``relay`` (moving the bytes), and this one: the proxy, its
doors and their bindings, and each connection from its head to its refusal or its relay.

Plain Python and threads (a thread per connection, two while tunnelling), no Django."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import threading

from ..netpolicy import NetPolicy
from ..spec import DoorUse, Egress
from .accounting import Binding, Budget, Record
from .destinations import destinations
from .doors import Door, door_make, doors_sweep
from .heads import MAX_HEAD_BYTES, parse_head
from .names import Lookups, Resolve, system_resolve
from .refusal import Refusal
from .relay import Relay
from .stream import CHUNK, Stream
from .tls import read_hello

log = logging.getLogger("lambdasite.egress")

REFUSED = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
ESTABLISHED = b"HTTP/1.1 200 Connection Established\r\n\r\n"


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
        self.resolve = resolve or system_resolve
        self.budget = budget
        self.max_connections = max_connections
        self.max_bytes = max_bytes
        self.max_open_per_door = max_open_per_door
        self.connect_timeout_s = connect_timeout_s
        self.head_timeout_s = head_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.resolve_timeout_s = resolve_timeout_s
        self.lookups_per_tenant = lookups_per_tenant
        self._lookups = Lookups()
        self._doors: dict[str, Door] = {}
        self._lock = threading.Lock()
        doors_sweep(directory)

    # -- doors ------------------------------------------------------------------------

    def open_door(self, name: str, uid: int | None = None) -> Door:
        """A door for cell ``name``: its directory (owned by ``uid``, the cell's runner, when this
        process may chown) and a listening socket nobody is bound to yet."""
        door = door_make(
            self,
            name=name,
            directory=self.directory,
            host_directory=self.host_directory,
            uid=uid,
            accept=self._accept,
        )
        with self._lock:
            self._doors[name] = door
        door.thread.start()
        return door

    def close_door(self, door: Door) -> None:
        self.unbind(door)
        with self._lock:
            self._doors.pop(door.name, None)
        door.remove()

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
        self._lookups.close()

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
                refuse(client)
                continue
            threading.Thread(target=self._serve, args=(door, client), name="egress-conn", daemon=True).start()

    def _serve(self, door: Door, client: socket.socket) -> None:
        binding = door.binding  # the identity comes from the socket this arrived on, nothing else
        record = Record()
        try:
            if binding is None or not binding.admit(record, client):
                client.settimeout(self.head_timeout_s)
                Stream(client).read_head()  # the request is read, as any refused one is
                refuse(client)
                return
            self._handle(binding, client, record)
        except Refusal as refusal:
            record.end("denied", str(refusal))
            refuse(client, sent_ok=record.tunnel)
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

    def _handle(self, binding: Binding, client: socket.socket, record: Record) -> None:
        client.settimeout(self.head_timeout_s)
        stream = Stream(client)
        head = stream.read_head()
        if head is None:
            raise Refusal("malformed request")
        request = parse_head(head)
        record.host, record.port = request.host, request.port
        if binding.connections > binding.max_connections:
            raise Refusal("connection cap")
        if binding.bytes >= binding.max_bytes:
            raise Refusal(binding.cap_reason())
        lookup = functools.partial(self._lookup, binding.tenant)
        addresses = destinations(request, egress=binding.egress, policy=self.policy, lookup=lookup)
        if request.connect and request.port == 80:
            client.sendall(ESTABLISHED)
            record.tunnel = True
            head = stream.read_head()
            if head is None:
                raise Refusal("malformed request")
            request = parse_head(head, tunnel_host=(request.host, request.port))
        relay = Relay(
            binding, record, connect_timeout_s=self.connect_timeout_s, idle_timeout_s=self.idle_timeout_s
        )
        if not request.connect:
            relay.plain_http(stream, request, addresses)
            return
        client.sendall(ESTABLISHED)
        record.tunnel = True
        if request.port == 443:
            stream.sock.settimeout(self.head_timeout_s)
            first = read_hello(stream, host=request.host, port=request.port, allow=binding.egress.allow)
        else:
            first = stream.take_buffer()
        upstream = relay.connect(addresses, request.port)
        relay.tunnel(client, upstream, first)

    def _lookup(self, tenant: str, host: str, port: int) -> list[str]:
        """The addresses of ``host``, resolved among ``tenant``'s few lookups at a time."""
        return self._lookups.addresses(
            tenant,
            host,
            port,
            resolve=self.resolve,
            timeout_s=self.resolve_timeout_s,
            per_tenant=self.lookups_per_tenant,
        )


def refuse(sock: socket.socket, sent_ok: bool = False) -> None:
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
