"""The deny table and the egress address rule, without a network: every entry, every literal
spelling, the embedded IPv4 of every tunnelled form, what EGRESS_ALLOW_CIDRS may and may never open,
the platform's own services and port 25."""

from __future__ import annotations

import ipaddress

import pytest

from sandbox import netpolicy
from sandbox.netpolicy import TABLE, NetPolicy, embedded_ipv4, entry, literal_address, parse_cidrs


def inside(row) -> str:
    net = row.network
    first, size = net.network_address, net.num_addresses
    for address in [first + 1, first, first + size // 2, first + (size - 2)] if size > 1 else [first]:
        if entry(address) == row:
            return str(address)
    raise AssertionError(net)


@pytest.mark.parametrize("row", TABLE, ids=lambda r: str(r.network))
def test_every_entry_refuses_its_addresses_for_egress(row):
    address = inside(row)
    reason = NetPolicy().check(address, 443)
    assert reason is not None and reason.startswith(row.why)


@pytest.mark.parametrize("row", TABLE, ids=lambda r: str(r.network))
def test_the_operator_opens_an_entry_only_if_it_is_not_fixed(row):
    address = inside(row)
    wide = NetPolicy(allow_cidrs=(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")))
    opened = wide.check(address, 443) is None
    never = row.fixed or str(row.network) in ("127.0.0.0/8", "::1/128")
    assert opened == (not never), row


@pytest.mark.parametrize(
    "row_network",
    ["0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "100.100.100.200/32", "::1/128", "::ffff:0:0/96",
     "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32", "fe80::/10", "fd00:ec2::254/128"],
)  # fmt: skip
def test_loopback_metadata_and_embedded_forms_are_never_openable(row_network):
    row = next(r for r in TABLE if str(r.network) == row_network)
    assert row.fixed or row_network in ("127.0.0.0/8", "::1/128")
    with pytest.raises(ValueError):
        parse_cidrs(row_network)


def test_the_benchmark_range_is_closed_until_the_operator_opens_it():
    assert NetPolicy().check("198.18.0.2", 443) == "benchmarking"
    assert NetPolicy(allow_cidrs="198.18.0.0/15").check("198.18.0.2", 443) is None
    assert NetPolicy(allow_cidrs="198.18.0.0/15").check("10.0.0.1", 443) == "private (RFC 1918)"


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001::1"])
def test_public_addresses_pass(address):
    assert NetPolicy().check(address, 443) is None


@pytest.mark.parametrize(
    "spelling, address, canonical",
    [
        ("127.0.0.1", "127.0.0.1", True),
        ("2130706433", "127.0.0.1", False),  # decimal
        ("0177.0.0.1", "127.0.0.1", False),  # octal
        ("0x7f.1", "127.0.0.1", False),  # hex, short
        ("0x7f000001", "127.0.0.1", False),
        ("127.1", "127.0.0.1", False),  # short
        ("127.0.1", "127.0.0.1", False),
        ("017700000001", "127.0.0.1", False),
        ("0", "0.0.0.0", False),
        ("0251.0376.0251.0376", "169.254.169.254", False),
        ("127.0.0.1.", "127.0.0.1", True),
        ("[::1]", "::1", True),
        ("::ffff:127.0.0.1", "::ffff:7f00:1", True),
        ("fe80::1%eth0", "fe80::1", True),
        ("api.example.com", None, None),
        ("1e100.net", None, None),
        ("0xdeadbeef.example", None, None),
        ("example", None, None),
    ],
)
def test_every_literal_spelling_is_read_as_the_address_it_means(spelling, address, canonical):
    got = literal_address(spelling)
    assert (got[0], got[1]) == (address, canonical) if address else got is None


@pytest.mark.parametrize(
    "address, v4",
    [
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("::127.0.0.1", "127.0.0.1"),
        ("::ffff:0:a00:1", "10.0.0.1"),
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
        ("64:ff9b:1:a00:0:100::", "10.0.0.1"),  # RFC 6052 /48 layout
        ("2002:7f00:1::1", "127.0.0.1"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "127.0.0.1"),  # Teredo client, obfuscated
    ],
)
def test_the_embedded_ipv4_of_tunnelled_forms_is_named_in_the_reason(address, v4):
    assert str(embedded_ipv4(ipaddress.ip_address(address))) == v4
    reason = NetPolicy(allow_cidrs="0.0.0.0/0,::/0").check(address, 443)
    assert reason is not None and reason.endswith(v4)


def test_the_platforms_own_services_are_refused_by_address_and_by_name():
    policy = NetPolicy(
        allow_cidrs="10.0.0.0/8",
        platform=[("10.0.0.5", 5432), ("redis.internal", 6379), ("[2606:4700::1]", 8000)],
        resolve=lambda host, port: ["10.0.0.6"],
    )
    assert policy.check("10.0.0.5", 5432) == "the platform's own service"
    assert policy.check("10.0.0.5", 22) is None  # the operator opened 10/8; only the service is closed
    assert policy.check("10.0.0.6", 6379) == "the platform's own service"
    assert policy.check_name("redis.internal", 6379) == "the platform's own service"
    assert policy.check("2606:4700::1", 8000) == "the platform's own service"


def test_port_25_is_never_reachable():
    assert NetPolicy().check("93.184.216.34", 25) == "port 25 is never reachable"
    assert NetPolicy().check_name("smtp.example.com", 25) == "port 25 is never reachable"


def test_localhost_names_are_loopback():
    assert NetPolicy().check_name("localhost", 80) == "loopback"
    assert NetPolicy().check_name("a.localhost", 80) == "loopback"


def test_bad_allow_cidrs_fail_fast():
    with pytest.raises(ValueError):
        parse_cidrs("198.18.0.0/15,not-a-network")
    assert parse_cidrs(" 198.18.0.0/15 , ,2001:db8::/32") == (
        ipaddress.ip_network("198.18.0.0/15"),
        ipaddress.ip_network("2001:db8::/32"),
    )


def test_the_webhook_table_is_this_table():
    from lambdasite.ssrf import table

    assert table.TABLE is netpolicy.TABLE and table.denied is netpolicy.denied
