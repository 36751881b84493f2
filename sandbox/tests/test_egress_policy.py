"""Egress policies, configuration names and the proxy's parsers, without a network: allowlist
patterns, reserved environment names, request heads, the Host rule, body framing and TLS
ClientHellos (made by Python's own TLS client)."""

from __future__ import annotations

import ssl

import pytest

from sandbox import egress
from sandbox.egress_policy import allows, env_problem, pattern_ok, validate_env_name
from sandbox.spec import Egress


@pytest.mark.parametrize(
    "pattern",
    ["api.stripe.com:443", "*.example.com:443", "203.0.113.7:443", "[2001:db8::1]:443", "a_b.c:8080"],
)
def test_valid_patterns(pattern):
    assert pattern_ok(pattern) is None


@pytest.mark.parametrize(
    "pattern, why",
    [
        ("api.stripe.com", "not host:port"),
        ("api.stripe.com:0", "not host:port"),
        ("api.stripe.com:65536", "not host:port"),
        ("::1:443", "not host:port"),
        ("mail.example.com:25", "never reachable"),
        ("2130706433:443", "write the address as 127.0.0.1"),
        ("0x7f.1:443", "write the address as 127.0.0.1"),
        ("*.com:443", "two labels"),
        ("a.*.example.com:443", "first label"),
        ("exa mple.com:443", "not a host name"),
        ("bücher.example:443", "not a host name"),
        ("-bad.example:443", "not a host name"),
        ("", "non-empty"),
    ],
)
def test_invalid_patterns_say_why(pattern, why):
    assert why in pattern_ok(pattern)


def test_what_a_policy_allows():
    policy = Egress("allowlist", ("api.example.com:443", "*.example.org:443", "203.0.113.7:8443"))
    assert allows(policy.mode, policy.allow, "api.example.com", 443)
    assert not allows(policy.mode, policy.allow, "api.example.com", 80)
    assert allows(policy.mode, policy.allow, "a.b.example.org", 443)
    assert not allows(policy.mode, policy.allow, "example.org", 443)
    assert not allows(policy.mode, policy.allow, "evilexample.org", 443)
    assert allows(policy.mode, policy.allow, "203.0.113.7", 8443)
    assert allows("public", (), "anything.example", 1)
    assert not allows("none", (), "anything.example", 443)


def test_a_bad_policy_cannot_be_made():
    with pytest.raises(ValueError):
        Egress("open")
    with pytest.raises(ValueError):
        Egress("public", ("a.example.com:443",))
    with pytest.raises(ValueError):
        Egress("allowlist", ("nope",))
    assert Egress.NONE.enabled is False and Egress("public").enabled


@pytest.mark.parametrize(
    "name",
    ["PATH", "HOME", "LANG", "LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONSTARTUP", "NODE_OPTIONS",
     "NODE_EXTRA_CA_CERTS", "HTTP_PROXY", "https_proxy", "ALL_PROXY", "NO_PROXY", "no_proxy",
     "LAMBDASITE_RUNTIME", "LC_ALL", "GLIBC_TUNABLES"],
)  # fmt: skip
def test_reserved_environment_names_are_refused(name):
    assert "reserved" in validate_env_name(name)


@pytest.mark.parametrize("name", ["1ABC", "A-B", "A B", "", "É", "A" * 129, "A=B"])
def test_malformed_environment_names_are_refused(name):
    assert "not an environment variable name" in validate_env_name(name)


def test_configuration_is_bounded():
    assert env_problem({"REGION": "eu", "STRIPE_MODE": "test", "TZ": "UTC"}) is None
    assert "4096-byte" in env_problem({"BIG": "x" * 5000})
    assert "NUL" in env_problem({"A": "x\x00y"})
    assert "reserved" in env_problem({"PATH": "/tmp"})


# -- the proxy's parsers ------------------------------------------------------------------------------


def test_a_connect_head():
    request = egress.parse_head(b"CONNECT API.Example.com.:443 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (request.method, request.host, request.port) == ("CONNECT", "api.example.com", 443)
    ipv6 = egress.parse_head(b"CONNECT [2001:DB8::1]:443 HTTP/1.1\r\n\r\n")
    assert (ipv6.host, ipv6.port) == ("2001:db8::1", 443)


def test_an_absolute_request_becomes_origin_form_without_proxy_headers():
    request = egress.parse_head(
        b"GET http://api.example.com:8080/a/b?c=d HTTP/1.1\r\nHost: api.example.com:8080\r\n"
        b"Proxy-Authorization: x\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\nX-Keep: 2\r\n\r\n"
    )
    assert (request.host, request.port, request.path) == ("api.example.com", 8080, "/a/b?c=d")
    assert egress.host_matches(request)
    assert egress.origin_head(request) == (
        b"GET /a/b?c=d HTTP/1.1\r\nHost: api.example.com:8080\r\nX-Keep: 2\r\nConnection: close\r\n\r\n"
    )


@pytest.mark.parametrize(
    "host_header, ok",
    [
        (b"api.example.com", True),
        (b"API.example.com.", True),
        (b"api.example.com:80", True),
        (b"api.example.com:81", False),
        (b"other.example.com", False),
        (b"api.example.com@other.example.com", False),
        (b"", False),
    ],
)
def test_the_host_rule(host_header, ok):
    head = b"GET http://api.example.com/ HTTP/1.1\r\nHost: " + host_header + b"\r\n\r\n"
    assert egress.host_matches(egress.parse_head(head)) is ok


@pytest.mark.parametrize(
    "head",
    [
        b"GET http://a.example/ HTTP/2\r\n\r\n",
        b"GET  http://a.example/ HTTP/1.1\r\n\r\n",
        b"GET http://a.example/ HTTP/1.1\r\n folded: header\r\n\r\n",
        b"GET http://a.example/\x01 HTTP/1.1\r\n\r\n",
        b"GET http://a.example/ HTTP/1.1\r\nX-\xff: 1\r\n\r\n",
        b"CONNECT a.example HTTP/1.1\r\n\r\n",
        b"CONNECT a.example:99999 HTTP/1.1\r\n\r\n",
        b"G(T http://a.example/ HTTP/1.1\r\n\r\n",
    ],
)
def test_malformed_heads_are_refused(head):
    with pytest.raises(egress.Refusal):
        egress.parse_head(head)


def hello_bytes(server_hostname: str | None) -> bytes:
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    if server_hostname is None:
        context.check_hostname = False
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_the_client_hello_names_its_server():
    data = hello_bytes("API.Example.com")
    assert egress.client_hello(data).sni == "api.example.com"
    assert egress.client_hello(data[:20]) is None  # more bytes needed
    assert egress.client_hello(hello_bytes(None)).sni is None
    assert egress.client_hello(hello_bytes("203.0.113.7")).sni is None  # no SNI for an IP address


def test_a_client_hello_split_over_records_is_read_whole():
    data = hello_bytes("api.example.com")
    body = data[5:]
    split = b"\x16\x03\x01" + (40).to_bytes(2, "big") + body[:40]
    split += b"\x16\x03\x01" + (len(body) - 40).to_bytes(2, "big") + body[40:]
    assert egress.client_hello(split).sni == "api.example.com"


def test_what_is_not_a_client_hello_is_refused():
    for data in (b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00"):
        with pytest.raises(egress.Refusal):
            egress.client_hello(data)


def test_a_spec_with_a_bad_name_cannot_be_made():
    from sandbox import RunSpec, SecretValue

    with pytest.raises(ValueError, match="reserved"):
        RunSpec(runtime="python", code="", env={"LD_PRELOAD": "/tmp/x.so"})
    with pytest.raises(ValueError, match="not an environment variable name"):
        RunSpec(runtime="python", code="", secrets=(SecretValue("../etc/x", "v"),))
    with pytest.raises(ValueError, match="bound twice"):
        RunSpec(runtime="python", code="", env={"TOKEN": "a"}, secrets=(SecretValue("TOKEN", "b"),))
    spec = RunSpec(
        runtime="python", code="", env={"REGION": "eu"}, secrets=(SecretValue("TOKEN", "v", 3, "t"),)
    )
    assert spec.secret_revisions() == (("t", 3),) and "zq-42" not in repr(spec)
