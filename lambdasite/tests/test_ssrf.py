"""The SSRF rule: every entry of the one deny table is refused, as a literal and as a DNS answer,
including the forms that embed an IPv4 address; what the development setting lifts and what it never
does; URLs with control characters; and a resolver that one tenant's slow names cannot exhaust."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time

import pytest

from lambdasite import ssrf
from lambdasite.ssrf import table
from lambdasite.ssrf.resolver import Resolver


def inside(row: table.Denied) -> str:
    """An address inside the entry that no more specific entry claims."""
    net = row.network
    first, size = net.network_address, net.num_addresses
    candidates = [first + 1, first, first + size // 2, first + (size - 2)] if size > 1 else [first]
    for address in candidates:
        if table.denied(str(address)) == row:
            return str(address)
    raise AssertionError(f"no address of its own in {net}")


def url_of(address: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}/hook"


@pytest.fixture
def answers(monkeypatch):
    """Names resolve to what the test says (no name server is asked)."""
    table: dict[str, list[str]] = {}

    def fake(host, port, *args, **kwargs):
        family = {4: socket.AF_INET, 6: socket.AF_INET6}
        return [
            (family[ipaddress.ip_address(a).version], socket.SOCK_STREAM, 6, "", (a, port))
            for a in table[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return table


@pytest.mark.parametrize("row", table.TABLE, ids=lambda r: str(r.network))
def test_every_entry_of_the_table_is_refused_literally_and_when_a_name_resolves_to_it(row, answers, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    address = inside(row)
    with pytest.raises(ssrf.Refused, match="not a public address"):
        ssrf.check_literal(url_of(address))
    answers["hooks.example.com"] = ["93.184.216.34", address]  # one bad answer among good ones is enough
    with pytest.raises(ssrf.Refused, match=row.why.split(" (")[0]):
        ssrf.resolve("https://hooks.example.com/x", owner="t")
    # the development setting lifts only the private entries, never metadata, link-local, embedded forms
    allowed = ssrf.is_public(address, allow_private=True)
    assert allowed == row.private


@pytest.mark.parametrize(
    "address",
    [
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:169.254.169.254",
        "::ffff:8.8.8.8",  # mapped even when the IPv4 address is public: the rule sees one family
        "::127.0.0.1",  # IPv4-compatible
        "::ffff:0:a00:1",  # SIIT 10.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 169.254.169.254
        "64:ff9b::7f00:1",  # NAT64 127.0.0.1
        "64:ff9b:1::a00:1",  # local-use NAT64
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "fd00:ec2::254",  # AWS metadata inside unique-local space
        "100.100.100.200",  # Alibaba metadata inside shared space
        "fe80::1%eth0",  # link-local with a zone
    ],
)
def test_embedded_and_tunnelled_forms_are_refused_even_with_private_networks_allowed(address, answers):
    assert not ssrf.is_public(address, allow_private=True)
    assert not ssrf.is_public(address)
    answers["sneaky.example.com"] = [address]
    with pytest.raises(ssrf.Refused):
        ssrf.resolve("http://sneaky.example.com/", owner="t", allow_private=True)


@pytest.mark.parametrize("address", ["fec0::1", "64:ff9b:1::a00:1", "2002:a00:1::1", "5f00::1", "3fff::1"])
def test_where_pythons_flags_say_global_the_table_still_refuses(address):
    assert ipaddress.ip_address(address).is_global  # ipaddress on this Python would have let it through
    assert not ssrf.is_public(address)


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",
        "http://0x7f.1/",
        "http://127.1/",
        "http://0177.0.0.1/",
        "http://[::ffff:7f00:1]/",
    ],
)
def test_the_other_spellings_of_loopback_are_refused_without_dns(url, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: pytest.fail("no DNS on the literal check"))
    with pytest.raises(ssrf.Refused):
        ssrf.check_literal(url, allow_private=False)


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001::1"])
def test_public_addresses_pass(address):
    assert ssrf.is_public(address)
    assert ssrf.check_literal(url_of(address), allow_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/\u0001",
        "http://example.com/a\x7fb",
        "http://example.com/\x00",
        "http://example.com/ x",
        "http://example.com/\t",
        "http://exa\u2028mple.com/",
        "http://[::1/",
    ],
)
def test_urls_with_control_characters_or_that_the_client_refuses_are_refused(url):
    for allow in (False, True):
        with pytest.raises(ssrf.Refused):
            ssrf.check_literal(url, allow_private=allow)


def test_one_tenants_slow_names_cannot_exhaust_the_resolver(monkeypatch):
    release = threading.Event()

    def lookup(host, port, *args, **kwargs):
        if host.startswith("slow"):
            release.wait(10)  # a name server that never answers: getaddrinfo cannot be interrupted
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    resolver = Resolver(max_threads=4)
    try:
        refusals = []
        for n in range(6):  # more slow lookups than the resolver has threads
            try:
                resolver.lookup(f"slow{n}.example", 443, owner="mallory", per_owner=2, timeout=0.05)
            except TimeoutError:
                pass
            except Exception as exc:  # noqa: BLE001
                refusals.append(exc)
        assert len(refusals) == 4 and resolver.running("mallory") == 2  # refused at once, not queued
        started = time.monotonic()
        assert resolver.lookup("fast.example", 443, owner="alice", per_owner=2, timeout=1.0)
        assert time.monotonic() - started < 0.5
        assert resolver.running("mallory") == 2  # still stuck, still counted after their timeouts
    finally:
        release.set()
    deadline = time.monotonic() + 5
    while resolver.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert resolver.running() == 0  # threads are given back when the lookups really end


def test_a_tenant_over_its_lookups_gets_a_clear_refusal(monkeypatch, settings):
    release = threading.Event()
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: release.wait(10) and [])
    settings.WEBHOOK_RESOLVE_TIMEOUT_S = 0.05
    try:
        for _ in range(2):
            with pytest.raises(ssrf.Refused, match="did not resolve within"):
                ssrf.resolve("https://slow.example.com/", owner="mallory", per_owner=2)
        with pytest.raises(ssrf.Refused, match="still resolving"):
            ssrf.resolve("https://slow.example.com/", owner="mallory", per_owner=2)
    finally:
        release.set()
