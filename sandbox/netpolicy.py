"""The one table of addresses nothing the platform sends on behalf of a tenant may reach (webhook
deliveries, a job's egress), the literal spellings of addresses, and the egress proxy's address rule.

Every network is listed here explicitly, with why, instead of trusting ``ipaddress``'s flags (which
change between Python versions: ``fec0::/10`` counts as global, NAT64's ``64:ff9b:1::/48`` did on
older versions). An address is refused by the most specific network that contains it.

Two ways to lift an entry, for development, labs and tests, each bounded:

* ``private`` entries (loopback, RFC 1918, unique local, shared and benchmarking space) are lifted
  for webhooks by ``WEBHOOK_ALLOW_PRIVATE_NETWORKS``;
* for egress, ``EGRESS_ALLOW_CIDRS`` marks ranges reachable, except the ``fixed`` entries, which
  nothing opens: 'this network', loopback, link-local and the cloud metadata addresses, multicast,
  reserved and broadcast space, and every form that embeds or tunnels another address
  (IPv4-mapped and -compatible, SIIT, NAT64, 6to4, Teredo), since each could smuggle a loopback or
  metadata address past the check. The platform's own services (PostgreSQL, Redis, the Docker
  engine, the web server, passed in by the worker) and port 25 are refused whatever the settings.

Plain Python, no Django: ``lambdasite.ssrf`` uses this table for webhooks."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

BLOCKED_PORTS = frozenset({25})  # SMTP: a platform that lets jobs send mail becomes a spam relay


@dataclass(frozen=True)
class Denied:
    network: Network
    why: str
    private: bool  # lifted for webhooks by WEBHOOK_ALLOW_PRIVATE_NETWORKS
    fixed: bool = False  # never opened by EGRESS_ALLOW_CIDRS


PRIVATE, ALWAYS, FIXED = "private", "always", "fixed"


def _table(*rows: tuple[str, str, str]) -> tuple[Denied, ...]:
    return tuple(
        Denied(ipaddress.ip_network(net), why, private=kind == PRIVATE, fixed=kind == FIXED)
        for net, why, kind in rows
    )


TABLE = _table(
    # IPv4
    ("0.0.0.0/8", "'this network' (unspecified)", FIXED),
    ("10.0.0.0/8", "private (RFC 1918)", PRIVATE),
    ("100.64.0.0/10", "shared address space (carrier-grade NAT)", PRIVATE),
    ("100.100.100.200/32", "cloud metadata (Alibaba)", FIXED),
    ("127.0.0.0/8", "loopback", PRIVATE),
    ("169.254.0.0/16", "link-local (cloud metadata at 169.254.169.254)", FIXED),
    ("172.16.0.0/12", "private (RFC 1918)", PRIVATE),
    ("192.0.0.0/24", "IETF protocol assignments", ALWAYS),
    ("192.0.2.0/24", "documentation (TEST-NET-1)", ALWAYS),
    ("192.88.99.0/24", "6to4 relay anycast", FIXED),
    ("192.168.0.0/16", "private (RFC 1918)", PRIVATE),
    ("198.18.0.0/15", "benchmarking", PRIVATE),
    ("198.51.100.0/24", "documentation (TEST-NET-2)", ALWAYS),
    ("203.0.113.0/24", "documentation (TEST-NET-3)", ALWAYS),
    ("224.0.0.0/4", "multicast", FIXED),
    ("240.0.0.0/4", "reserved (and broadcast)", FIXED),
    # IPv6: only global unicast (2000::/3) may be public at all
    ("::/3", "not global unicast", ALWAYS),
    ("::/128", "unspecified", FIXED),
    ("::1/128", "loopback", PRIVATE),
    ("::/96", "IPv4-compatible (embeds an IPv4 address)", FIXED),
    ("::ffff:0:0/96", "IPv4-mapped (embeds an IPv4 address)", FIXED),
    ("::ffff:0:0:0/96", "IPv4-translated (SIIT, embeds an IPv4 address)", FIXED),
    ("64:ff9b::/96", "NAT64 (embeds an IPv4 address)", FIXED),
    ("64:ff9b:1::/48", "local-use NAT64 (embeds an IPv4 address)", FIXED),
    ("100::/64", "discard-only", ALWAYS),
    ("2001::/23", "IETF protocol assignments", ALWAYS),
    ("2001::/32", "Teredo (tunnels an IPv4 address)", FIXED),
    ("2001:db8::/32", "documentation", ALWAYS),
    ("2002::/16", "6to4 (embeds an IPv4 address)", FIXED),
    ("3fff::/20", "documentation", ALWAYS),
    ("4000::/2", "not global unicast", ALWAYS),
    ("5f00::/16", "segment routing (SRv6)", ALWAYS),
    ("8000::/1", "not global unicast", ALWAYS),
    ("fc00::/7", "unique local (private)", PRIVATE),
    ("fd00:ec2::254/128", "cloud metadata (AWS)", FIXED),
    ("fe80::/10", "link-local", FIXED),
    ("fec0::/10", "site-local (deprecated private)", PRIVATE),
    ("ff00::/8", "multicast", FIXED),
)
# loopback is lifted for webhooks in development, but egress never reaches this machine
_NEVER_FOR_EGRESS = ("127.0.0.0/8", "::1/128")


def address(text: str) -> Address:
    return ipaddress.ip_address(text.split("%", 1)[0])  # a link-local answer may carry a zone


def denied(text: str, *, allow_private: bool = False) -> Denied | None:
    """The entry that refuses ``text`` (the most specific that contains it), or None if it may be
    reached. ``allow_private`` lifts the private entries (webhooks in development)."""
    row = entry(address(text))
    if row is None or (row.private and allow_private):
        return None
    return row


def entry(ip: Address) -> Denied | None:
    matches = [row for row in TABLE if row.network.version == ip.version and ip in row.network]
    return max(matches, key=lambda r: r.network.prefixlen) if matches else None


def embedded_ipv4(ip: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, SIIT, NAT64, 6to4, Teredo)."""
    if ip.version != 6:
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    value = int(ip)
    if ip in ipaddress.ip_network("64:ff9b:1::/48"):  # RFC 6052 /48: bits 48-63 and 72-87
        return ipaddress.IPv4Address((((value >> 64) & 0xFFFF) << 16) | ((value >> 40) & 0xFFFF))
    for prefix in ("::/96", "::ffff:0:0:0/96", "64:ff9b::/96"):
        if ip in ipaddress.ip_network(prefix):
            return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    return None


def literal_address(host: str) -> tuple[str, bool] | None:
    """The address ``host`` names literally, and whether it is written canonically; None for a name.

    Canonical: ``10.0.0.1``, any IPv6 form (``::1``, a zone dropped). Also read as IPv4, as the C
    resolver and most clients read them, but not canonical: ``2130706433``, ``0x7f.1``, ``127.1``,
    ``0177.0.0.1``."""
    host = host.strip("[]").lower()
    if host.endswith(".") and host[:-1].replace(".", "").isdigit():
        host = host[:-1]
    try:
        return str(address(host)), True
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefx." for c in host) and host[0].isdigit():
        try:
            return socket.inet_ntoa(socket.inet_aton(host)), False
        except OSError:
            return None
    return None


def parse_cidrs(text: str | Iterable[str]) -> tuple[Network, ...]:
    """``EGRESS_ALLOW_CIDRS``: comma-separated networks. A range that only covers what nothing may
    open (loopback, link-local...) is an error, not silently useless."""
    items = text.split(",") if isinstance(text, str) else list(text)
    networks = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        network = ipaddress.ip_network(item, strict=False)
        for row in TABLE:
            never = row.fixed or str(row.network) in _NEVER_FOR_EGRESS
            if never and row.network.version == network.version and network.subnet_of(row.network):
                raise ValueError(f"{item} is inside {row.network} ({row.why}), which egress never reaches")
        networks.append(network)
    return tuple(networks)


class NetPolicy:
    """Which addresses and ports a job's egress may reach: the table, the operator's
    ``allow_cidrs``, and never the platform's own services (``platform``: ``(host, port)`` pairs;
    names are resolved once here) or port 25."""

    def __init__(
        self,
        *,
        allow_cidrs: Iterable[Network] | str = (),
        platform: Iterable[tuple[str, int]] = (),
        resolve: Callable[[str, int], list[str]] | None = None,
    ) -> None:
        self.allow_cidrs = parse_cidrs(allow_cidrs) if isinstance(allow_cidrs, str) else tuple(allow_cidrs)
        self.platform_names: set[tuple[str, int]] = set()
        self.platform: set[tuple[Address, int]] = set()
        for host, port in platform:
            host = host.strip("[]").lower().removesuffix(".")
            literal = literal_address(host)
            if literal is not None:
                self.platform.add((address(literal[0]), int(port)))
                continue
            self.platform_names.add((host, int(port)))
            try:
                found = (resolve or _getaddrinfo)(host, int(port))
            except (OSError, UnicodeError):
                found = []
            self.platform.update((address(a), int(port)) for a in found)

    def check_name(self, host: str, port: int) -> str | None:
        """Why a job may not ask for this name at all (before any lookup), or None."""
        if port in BLOCKED_PORTS:
            return f"port {port} is never reachable"
        if host == "localhost" or host.endswith(".localhost"):
            return "loopback"
        if (host, port) in self.platform_names:
            return "the platform's own service"
        return None

    def check(self, text: str, port: int) -> str | None:
        """Why the egress proxy may not connect to ``text:port``, or None."""
        if port in BLOCKED_PORTS:
            return f"port {port} is never reachable"
        ip = address(text)
        if (ip, port) in self.platform:
            return "the platform's own service"
        row = entry(ip)
        if row is None:
            return None
        embedded = embedded_ipv4(ip)
        why = f"{row.why}: {embedded}" if embedded is not None else row.why
        if row.fixed or str(row.network) in _NEVER_FOR_EGRESS:
            return why
        if any(ip.version == net.version and ip in net for net in self.allow_cidrs):
            return None
        return why


def _getaddrinfo(host: str, port: int) -> list[str]:
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
