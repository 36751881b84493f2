"""The one table of addresses webhooks may never reach: every network is listed here explicitly, with
why, instead of trusting ``ipaddress``'s flags (which change between Python versions: ``fec0::/10``
counts as global, NAT64's ``64:ff9b:1::/48`` did on older versions).

An address is refused by the most specific network that contains it. ``WEBHOOK_ALLOW_PRIVATE_NETWORKS``
(local development and tests) lifts only the entries marked ``private``: loopback, RFC 1918, unique
local, shared and benchmarking space. Link-local (cloud metadata), the metadata addresses inside
private ranges, unspecified, multicast, reserved and documentation space, and every form that embeds
or tunnels another address (IPv4-mapped and -compatible, NAT64, 6to4, Teredo, SIIT) are refused even
then: a receiver never needs them, and each could smuggle a private IPv4 address past a check."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Denied:
    network: Network
    why: str
    private: bool  # lifted by WEBHOOK_ALLOW_PRIVATE_NETWORKS


def _table(*rows: tuple[str, str, bool]) -> tuple[Denied, ...]:
    return tuple(Denied(ipaddress.ip_network(net), why, private) for net, why, private in rows)


PRIVATE, ALWAYS = True, False

TABLE = _table(
    # IPv4
    ("0.0.0.0/8", "'this network' (unspecified)", ALWAYS),
    ("10.0.0.0/8", "private (RFC 1918)", PRIVATE),
    ("100.64.0.0/10", "shared address space (carrier-grade NAT)", PRIVATE),
    ("100.100.100.200/32", "cloud metadata (Alibaba)", ALWAYS),
    ("127.0.0.0/8", "loopback", PRIVATE),
    ("169.254.0.0/16", "link-local (cloud metadata at 169.254.169.254)", ALWAYS),
    ("172.16.0.0/12", "private (RFC 1918)", PRIVATE),
    ("192.0.0.0/24", "IETF protocol assignments", ALWAYS),
    ("192.0.2.0/24", "documentation (TEST-NET-1)", ALWAYS),
    ("192.88.99.0/24", "6to4 relay anycast", ALWAYS),
    ("192.168.0.0/16", "private (RFC 1918)", PRIVATE),
    ("198.18.0.0/15", "benchmarking", PRIVATE),
    ("198.51.100.0/24", "documentation (TEST-NET-2)", ALWAYS),
    ("203.0.113.0/24", "documentation (TEST-NET-3)", ALWAYS),
    ("224.0.0.0/4", "multicast", ALWAYS),
    ("240.0.0.0/4", "reserved (and broadcast)", ALWAYS),
    # IPv6: only global unicast (2000::/3) may be public at all
    ("::/3", "not global unicast", ALWAYS),
    ("::/128", "unspecified", ALWAYS),
    ("::1/128", "loopback", PRIVATE),
    ("::/96", "IPv4-compatible (embeds an IPv4 address)", ALWAYS),
    ("::ffff:0:0/96", "IPv4-mapped (embeds an IPv4 address)", ALWAYS),
    ("::ffff:0:0:0/96", "IPv4-translated (SIIT, embeds an IPv4 address)", ALWAYS),
    ("64:ff9b::/96", "NAT64 (embeds an IPv4 address)", ALWAYS),
    ("64:ff9b:1::/48", "local-use NAT64 (embeds an IPv4 address)", ALWAYS),
    ("100::/64", "discard-only", ALWAYS),
    ("2001::/23", "IETF protocol assignments", ALWAYS),
    ("2001::/32", "Teredo (tunnels an IPv4 address)", ALWAYS),
    ("2001:db8::/32", "documentation", ALWAYS),
    ("2002::/16", "6to4 (embeds an IPv4 address)", ALWAYS),
    ("3fff::/20", "documentation", ALWAYS),
    ("4000::/2", "not global unicast", ALWAYS),
    ("5f00::/16", "segment routing (SRv6)", ALWAYS),
    ("8000::/1", "not global unicast", ALWAYS),
    ("fc00::/7", "unique local (private)", PRIVATE),
    ("fd00:ec2::254/128", "cloud metadata (AWS)", ALWAYS),
    ("fe80::/10", "link-local", ALWAYS),
    ("fec0::/10", "site-local (deprecated private)", PRIVATE),
    ("ff00::/8", "multicast", ALWAYS),
)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text.split("%", 1)[0])  # a link-local answer may carry a zone


def denied(address: str, *, allow_private: bool = False) -> Denied | None:
    """The entry that refuses ``address`` (the most specific that contains it), or None if it may be
    reached."""
    ip = _address(address)
    matches = [row for row in TABLE if row.network.version == ip.version and ip in row.network]
    if not matches:
        return None
    row = max(matches, key=lambda r: r.network.prefixlen)
    if row.private and allow_private:
        return None
    return row
