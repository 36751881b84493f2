"""The egress proxy with plain sockets: a door bound to an attempt, the test internet behind it
(198.18.0.0/15 only, allowed by EGRESS_ALLOW_CIDRS as an operator would), and every refusal the
job must meet: off the allowlist, each class of the deny table, every literal spelling, the
platform's own services, port 25, DNS rebinding, a TLS name that is not the CONNECT host, a spoofed
Host, smuggling shapes, the caps. The job's side is a socket on the door, as the cell's relay is."""

from __future__ import annotations

import shutil
import socket
import ssl
import tempfile
import threading
import time

import pytest

from sandbox.egress import EgressProxy
from sandbox.netpolicy import TABLE, NetPolicy, parse_cidrs
from sandbox.spec import DoorUse, Egress

from .internet import ALLOW_CIDRS, SERVER, SERVER_B, Names

pytestmark = pytest.mark.system  # root: a network namespace

ALLOW = ("api.lab.test:443", "api.lab.test:80", "*.wild.lab.test:443", "rebind.lab.test:80", "198.18.0.2:443")


@pytest.fixture
def names():
    return Names()


@pytest.fixture
def proxy(internet, names):
    directory = tempfile.mkdtemp(prefix="ls-egress-")  # short: a socket path has 107 bytes at most
    p = EgressProxy(
        directory=directory,
        policy=NetPolicy(
            allow_cidrs=ALLOW_CIDRS, platform=[(SERVER, 5432), ("redis.internal", 6379)], resolve=names
        ),
        resolve=names,
        connect_timeout_s=3,
        head_timeout_s=3,
    )
    yield p
    p.close()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def door(proxy):
    return proxy.open_door("cell-test")


def bind(proxy, door, mode="allowlist", allow=ALLOW):
    return proxy.bind(
        door, tenant="t1", job="job-1", attempt=1, egress=Egress(mode, allow if mode == "allowlist" else ())
    )


def dial(door) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(door.path)
    return sock


def read_head(sock) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data


def read_all(sock) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            break
        if not chunk:
            return data
        data += chunk
    return data


def connect(door, target: str) -> tuple[bytes, socket.socket]:
    sock = dial(door)
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    return read_head(sock), sock


def tls(sock, internet, server_hostname):
    context = ssl.create_default_context(cafile=str(internet.tls["ca"]))
    return context.wrap_socket(sock, server_hostname=server_hostname)


def https_get(door, internet, target: str, server_hostname: str | None, path: str = "/hello") -> bytes:
    head, sock = connect(door, target)
    assert head.startswith(b"HTTP/1.1 200"), head
    with tls(sock, internet, server_hostname) as wrapped:
        host = server_hostname or target.rsplit(":", 1)[0]
        wrapped.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        return read_all(wrapped)


def plain(door, head: str) -> bytes:
    sock = dial(door)
    sock.sendall(head.encode())
    answer = read_all(sock)
    sock.close()
    return answer


def records(proxy, door):
    return proxy.unbind(door).connections


def test_it_tunnels_https_to_an_allowed_host_and_records_the_connection(proxy, door, internet):
    internet.clear()
    bind(proxy, door)
    answer = https_get(door, internet, "api.lab.test:443", "api.lab.test")
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(f"hello from {SERVER}".encode())
    assert internet.requests(wait_s=2)[-1]["tls"] is True
    [rec] = records(proxy, door)
    assert (rec.host, rec.port, rec.address, rec.verdict) == ("api.lab.test", 443, SERVER, "allowed")
    assert rec.bytes_sent > 200 and rec.bytes_received > 200 and rec.duration_ms > 0
    assert abs(rec.started_at - time.time()) < 60


def test_a_wildcard_pattern_allows_a_subdomain(proxy, door, internet):
    bind(proxy, door)
    assert https_get(door, internet, "a.wild.lab.test:443", "a.wild.lab.test").startswith(b"HTTP/1.1 200")


def test_plain_http_goes_out_in_origin_form_without_proxy_headers(proxy, door, internet):
    internet.clear()
    bind(proxy, door)
    answer = plain(
        door,
        "GET http://api.lab.test/hello?x=1 HTTP/1.1\r\nHost: api.lab.test\r\n"
        "Proxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\nX-Secret: s3cr3t\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 200") and b"Connection: close" in answer
    seen = internet.requests(wait_s=2)[-1]
    headers = {k.lower(): v for k, v in seen["headers"]}
    assert (
        seen["path"] == "/hello?x=1" and headers["x-secret"] == "s3cr3t" and headers["connection"] == "close"
    )
    assert "proxy-authorization" not in headers and "proxy-connection" not in headers
    [rec] = records(proxy, door)
    assert rec.verdict == "allowed" and rec.address == SERVER


def test_a_post_body_is_framed_and_nothing_after_it_is_sent(proxy, door, internet):
    internet.clear()
    bind(proxy, door)
    smuggled = "GET http://api.lab.test/smuggled HTTP/1.1\r\nHost: other.lab.test\r\n\r\n"
    answer = plain(
        door,
        "POST http://api.lab.test/echo HTTP/1.1\r\nHost: api.lab.test\r\nContent-Length: 5\r\n\r\nhello"
        + smuggled,
    )
    assert answer.endswith(b"hello")
    assert [r["path"] for r in internet.requests(wait_s=2)] == ["/echo"]


def test_a_chunked_body_is_relayed(proxy, door, internet):
    internet.clear()
    bind(proxy, door)
    sock = dial(door)
    sock.sendall(
        b"POST http://api.lab.test/echo HTTP/1.1\r\nHost: api.lab.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n"
    )
    answer = read_all(sock)
    # http.server does not read chunked bodies: what matters is that the framing passed intact
    assert answer.startswith(b"HTTP/1.1 200")
    assert records(proxy, door)[0].verdict == "allowed"


def refused(answer: bytes) -> bool:
    return answer.startswith(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0")


@pytest.mark.parametrize(
    "head, reason",
    [
        ("CONNECT other.lab.test:443 HTTP/1.1\r\n\r\n", "not on the egress allowlist"),
        ("CONNECT api.lab.test:8443 HTTP/1.1\r\n\r\n", "not on the egress allowlist"),
        ("GET http://api.lab.test/ HTTP/1.1\r\nHost: other.lab.test\r\n\r\n", "Host header"),
        (
            "GET http://api.lab.test/ HTTP/1.1\r\nHost: api.lab.test\r\nHost: api.lab.test\r\n\r\n",
            "Host header",
        ),
        ("GET http://api.lab.test/ HTTP/1.1\r\n\r\n", "Host header"),
        ("GET http://api.lab.test/ HTTP/1.1\r\nHost: api.lab.test:8080\r\n\r\n", "Host header"),
        (
            "POST http://api.lab.test/ HTTP/1.1\r\nHost: api.lab.test\r\nContent-Length: 3\r\n"
            "Transfer-Encoding: chunked\r\n\r\n",
            "ambiguous request body",
        ),
        (
            "POST http://api.lab.test/ HTTP/1.1\r\nHost: api.lab.test\r\nContent-Length: 3\r\n"
            "Content-Length: 4\r\n\r\n",
            "ambiguous request body",
        ),
        ("GET http://api.lab.test/ HTTP/1.1\r\nHost: api.lab.test\r\nUpgrade: websocket\r\n\r\n", "Upgrade"),
        ("GET http://api.lab.test/ HTTP/1.1\r\nHost : api.lab.test\r\n\r\n", "malformed"),
        ("GET /relative HTTP/1.1\r\nHost: api.lab.test\r\n\r\n", "not an absolute"),
        ("GET https://api.lab.test/ HTTP/1.1\r\nHost: api.lab.test\r\n\r\n", "not an absolute"),
        ("HELLO\r\n\r\n", "malformed"),
    ],
)
def test_requests_off_the_rules_get_the_same_403_and_a_recorded_reason(proxy, door, internet, head, reason):
    internet.clear()
    bind(proxy, door)
    assert refused(plain(door, head))
    [rec] = records(proxy, door)
    assert rec.verdict == "denied" and reason in rec.reason
    assert internet.requests() == []


def test_an_unbound_door_refuses_and_records_nothing(proxy, door):
    assert refused(plain(door, "CONNECT api.lab.test:443 HTTP/1.1\r\n\r\n"))
    bind(proxy, door)
    proxy.unbind(door)
    assert refused(plain(door, "CONNECT api.lab.test:443 HTTP/1.1\r\n\r\n"))
    assert proxy.unbind(door) == DoorUse()


def test_egress_none_refuses_everything(proxy, door):
    bind(proxy, door, mode="none")
    assert refused(plain(door, "CONNECT api.lab.test:443 HTTP/1.1\r\n\r\n"))
    assert records(proxy, door)[0].reason == "egress is off"


def inside(row) -> str:
    """An address of the deny table's entry that no more specific entry claims."""
    from sandbox.netpolicy import entry

    net = row.network
    first, size = net.network_address, net.num_addresses
    for address in [first + 1, first, first + size // 2, first + (size - 2)] if size > 1 else [first]:
        if entry(address) == row:
            return str(address)
    raise AssertionError(net)


@pytest.mark.parametrize(
    "row", [r for r in TABLE if str(r.network) != "198.18.0.0/15"], ids=lambda r: str(r.network)
)
def test_every_class_of_the_deny_table_is_refused_literally_and_by_name_even_in_public_mode(
    proxy, door, names, row
):
    address = inside(row)
    bind(proxy, door, mode="public")
    target = f"[{address}]:443" if ":" in address else f"{address}:443"
    assert refused(plain(door, f"CONNECT {target} HTTP/1.1\r\n\r\n"))
    names.set("evil.lab.test", [address])
    assert refused(plain(door, "CONNECT evil.lab.test:443 HTTP/1.1\r\n\r\n"))
    literal, by_name = records(proxy, door)
    assert literal.verdict == by_name.verdict == "denied"
    assert literal.reason.startswith(row.why) and by_name.reason.startswith(row.why), (literal, by_name)


@pytest.mark.parametrize(
    "spelling, means",
    [
        ("2130706433", "loopback"),
        ("0177.0.0.1", "loopback"),
        ("0x7f.1", "loopback"),
        ("127.1", "loopback"),
        ("0x7f000001", "loopback"),
        ("017700000001", "loopback"),
        ("[::ffff:127.0.0.1]", "IPv4-mapped"),
        ("[::ffff:7f00:1]", "IPv4-mapped"),
        ("[64:ff9b::7f00:1]", "NAT64"),
        ("[2002:7f00:1::1]", "6to4"),
        ("2852039166", "link-local"),  # 169.254.169.254
        ("3323068418", "non-canonical"),  # 198.18.0.2, allowed by the operator: still only as written
        ("0", "'this network'"),
        ("localhost", "loopback"),
        ("sub.localhost", "loopback"),
    ],
)
def test_every_spelling_of_an_address_is_read_as_the_address_it_means(proxy, door, spelling, means):
    bind(proxy, door, mode="public")
    assert refused(plain(door, f"CONNECT {spelling}:443 HTTP/1.1\r\n\r\n"))
    [rec] = records(proxy, door)
    assert means in rec.reason, rec


def test_the_platforms_own_services_and_port_25_stay_closed_whatever_the_operator_allows(proxy, door, names):
    bind(proxy, door, mode="public")
    names.set("redis.internal", [SERVER])
    for target in (f"{SERVER}:5432", "redis.internal:6379", f"{SERVER}:25", "api.lab.test:25"):
        assert refused(plain(door, f"CONNECT {target} HTTP/1.1\r\n\r\n")), target
    reasons = [r.reason for r in records(proxy, door)]
    assert reasons[:2] == ["the platform's own service"] * 2
    assert reasons[2:] == ["port 25 is never reachable"] * 2


def test_allow_cidrs_never_open_loopback_metadata_or_embedded_forms():
    wide = NetPolicy(allow_cidrs="0.0.0.0/0,::/0")
    for address in (
        "127.0.0.1",
        "0.0.0.1",
        "169.254.169.254",
        "::1",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",
        "fe80::1",
    ):
        assert wide.check(address, 443) is not None, address
    assert wide.check("10.1.2.3", 443) is None  # what the operator opened
    for cidr in ("127.0.0.0/8", "169.254.169.254/32", "::1/128", "0.0.0.0/8"):
        with pytest.raises(ValueError, match="never reaches"):
            parse_cidrs(cidr)


def test_a_name_whose_answer_changes_reaches_only_the_address_that_was_checked(proxy, door, names, internet):
    internet.clear()
    bind(proxy, door)
    names.set("rebind.lab.test", [SERVER], ["127.0.0.1"])
    calls = len(names.calls)
    first = plain(door, "GET http://rebind.lab.test/hello HTTP/1.1\r\nHost: rebind.lab.test\r\n\r\n")
    second = plain(door, "GET http://rebind.lab.test/hello HTTP/1.1\r\nHost: rebind.lab.test\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200") and refused(second)
    assert len(names.calls) - calls == 2  # one lookup per connection: what was checked is what is used
    allowed, denied = records(proxy, door)
    assert allowed.address == SERVER and allowed.verdict == "allowed"
    assert denied.verdict == "denied" and denied.reason.startswith("loopback") and denied.address == ""
    assert [r["local"] for r in internet.requests(wait_s=2)] == [SERVER]


def test_one_bad_answer_among_good_ones_refuses_the_name(proxy, door, names):
    bind(proxy, door, mode="public")
    names.set("mixed.lab.test", [SERVER, "10.0.0.1"])
    assert refused(plain(door, "CONNECT mixed.lab.test:443 HTTP/1.1\r\n\r\n"))
    assert "private" in records(proxy, door)[0].reason


def test_a_tls_name_that_is_not_the_connect_host_is_cut_before_any_byte_reaches_it(proxy, door, internet):
    bind(proxy, door)
    head, sock = connect(door, "api.lab.test:443")
    assert head.startswith(b"HTTP/1.1 200")
    with pytest.raises((ssl.SSLError, OSError)):
        tls(sock, internet, "other.lab.test").sendall(b"GET / HTTP/1.1\r\n\r\n")
    [rec] = records(proxy, door)
    assert rec.verdict == "denied" and "TLS server name other.lab.test" in rec.reason
    assert rec.address == "" and rec.bytes_sent == 0


def test_an_ip_connect_needs_no_name_only_when_the_policy_names_that_ip(proxy, door, internet):
    bind(proxy, door)  # ALLOW names 198.18.0.2:443
    answer = https_get(door, internet, f"{SERVER}:443", server_hostname=SERVER)  # no SNI for an IP
    assert answer.startswith(b"HTTP/1.1 200")
    proxy.unbind(door)
    bind(proxy, door, mode="public")
    head, sock = connect(door, f"{SERVER_B}:443")
    with pytest.raises((ssl.SSLError, OSError)):
        tls(sock, internet, SERVER_B).sendall(b"GET / HTTP/1.1\r\n\r\n")
    assert "TLS server name (none)" in records(proxy, door)[0].reason


def test_a_connect_that_is_not_tls_on_443_is_cut(proxy, door):
    bind(proxy, door)
    head, sock = connect(door, "api.lab.test:443")
    sock.sendall(b"GET / HTTP/1.1\r\nHost: api.lab.test\r\n\r\n")
    assert read_all(sock) == b""
    assert records(proxy, door)[0].reason == "not a TLS ClientHello"


def test_a_connect_to_port_80_carries_plain_http_under_the_host_rule(proxy, door, internet):
    internet.clear()
    bind(proxy, door)
    head, sock = connect(door, "api.lab.test:80")
    assert head.startswith(b"HTTP/1.1 200")
    sock.sendall(b"GET /hello HTTP/1.1\r\nHost: api.lab.test\r\n\r\n")
    assert read_all(sock).endswith(f"hello from {SERVER}".encode())
    head, sock = connect(door, "api.lab.test:80")
    sock.sendall(b"GET /hello HTTP/1.1\r\nHost: other.lab.test\r\n\r\n")
    assert read_all(sock) == b""  # inside the tunnel the refusal is its end
    allowed, denied = records(proxy, door)
    assert allowed.verdict == "allowed" and denied.verdict == "denied" and "Host header" in denied.reason
    assert len(internet.requests(wait_s=2)) == 1


def test_the_byte_cap_cuts_a_transfer_midway(proxy, door, internet):
    proxy.max_bytes = 200_000
    bind(proxy, door)
    answer = plain(door, "GET http://api.lab.test/big?n=2000000 HTTP/1.1\r\nHost: api.lab.test\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200") and 100_000 < len(answer) <= 200_000
    [rec] = records(proxy, door)
    assert (rec.verdict, rec.reason) == ("denied", "byte cap")
    assert rec.bytes_sent + rec.bytes_received == 200_000
    bind(proxy, door)


def test_once_the_bytes_are_spent_new_connections_are_refused(proxy, door):
    proxy.max_bytes = 1000
    bind(proxy, door)
    plain(door, "GET http://api.lab.test/big?n=5000 HTTP/1.1\r\nHost: api.lab.test\r\n\r\n")
    assert refused(plain(door, "GET http://api.lab.test/hello HTTP/1.1\r\nHost: api.lab.test\r\n\r\n"))
    assert [r.reason for r in records(proxy, door)] == ["byte cap", "byte cap"]


def test_a_monthly_budget_hook_bounds_the_attempt(proxy, door):
    asked = []
    proxy.budget = lambda tenant, job, attempt: asked.append((tenant, job, attempt)) or 0
    bind(proxy, door)
    assert refused(plain(door, "GET http://api.lab.test/hello HTTP/1.1\r\nHost: api.lab.test\r\n\r\n"))
    assert asked == [("t1", "job-1", 1)]
    assert records(proxy, door)[0].reason == "monthly egress budget"


def test_a_monthly_budget_smaller_than_the_cap_cuts_a_transfer_midway(proxy, door):
    proxy.budget = lambda tenant, job, attempt: 50_000
    bind(proxy, door)
    answer = plain(door, "GET http://api.lab.test/big?n=2000000 HTTP/1.1\r\nHost: api.lab.test\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200") and len(answer) <= 50_000
    [rec] = records(proxy, door)
    assert (rec.verdict, rec.reason, rec.bytes_sent + rec.bytes_received) == (
        "denied",
        "monthly egress budget",
        50_000,
    )


def test_connections_past_the_records_are_counted_with_their_bytes(proxy, door, monkeypatch):
    from sandbox.egress import accounting

    monkeypatch.setattr(accounting, "MAX_RECORDS", 2)
    bind(proxy, door)
    for _ in range(5):
        plain(door, "GET http://api.lab.test/hello HTTP/1.1\r\nHost: api.lab.test\r\n\r\n")
    use = proxy.unbind(door)
    assert len(use.connections) == 2 and use.unrecorded == 3 and use.count == 5
    first = use.connections[0]
    assert first.bytes_sent > 0 and first.bytes_received > 0
    # the same request each time: the three unrecorded moved what a recorded one did, three times
    assert (use.unrecorded_bytes_sent, use.unrecorded_bytes_received) == (
        3 * first.bytes_sent,
        3 * first.bytes_received,
    )


def test_the_connection_cap_refuses_past_it(proxy, door):
    proxy.max_connections = 2
    bind(proxy, door)
    answers = [
        plain(door, "GET http://api.lab.test/hello HTTP/1.1\r\nHost: api.lab.test\r\n\r\n") for _ in range(3)
    ]
    assert [a.startswith(b"HTTP/1.1 200") for a in answers] == [True, True, False]
    assert records(proxy, door)[-1].reason == "connection cap"


def test_unbinding_cuts_the_attempts_open_tunnels(proxy, door, internet):
    bind(proxy, door)
    head, sock = connect(door, "api.lab.test:443")
    wrapped = tls(sock, internet, "api.lab.test")
    started = time.monotonic()
    [rec] = proxy.unbind(door).connections
    assert time.monotonic() - started < 2 and rec.verdict == "allowed"
    wrapped.settimeout(5)
    assert read_all(wrapped) == b""


def test_two_doors_are_two_identities(proxy, door):
    other = proxy.open_door("cell-other")
    bind(proxy, door)
    proxy.bind(
        other, tenant="t2", job="job-2", attempt=3, egress=Egress("allowlist", ("other.lab.test:443",))
    )
    assert refused(plain(other, "CONNECT api.lab.test:443 HTTP/1.1\r\n\r\n"))
    assert proxy.unbind(door) == DoorUse()
    assert proxy.unbind(other).connections[0].reason == "not on the egress allowlist"


def test_a_slow_client_does_not_hold_the_proxy(proxy, door):
    bind(proxy, door)
    idle = dial(door)  # says nothing
    assert plain(door, "GET http://api.lab.test/hello HTTP/1.1\r\nHost: api.lab.test\r\n\r\n").startswith(
        b"HTTP/1.1 200"
    )
    idle.close()


def test_the_door_directory_belongs_to_the_cells_runner(proxy):
    import os
    import stat

    door = proxy.open_door("cell-owned", uid=200_010)
    st = os.stat(door.directory)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (200_010, 0o700)
    assert stat.S_IMODE(os.stat(door.path).st_mode) == 0o600
    proxy.close_door(door)
    assert not os.path.exists(door.directory)


def test_many_connections_at_once(proxy, door):
    bind(proxy, door)
    results = []

    def one():
        results.append(plain(door, "GET http://api.lab.test/hello HTTP/1.1\r\nHost: api.lab.test\r\n\r\n"))

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recs = records(proxy, door)
    assert all(r.startswith(b"HTTP/1.1 200") for r in results) and len(results) == 20, (
        [r[:12] for r in results],
        [(c.verdict, c.reason) for c in recs],
    )
    assert len(recs) == 20


def test_a_tenants_slow_names_cannot_take_every_lookup(proxy, door, names):
    release = threading.Event()
    slow = names.__call__

    def resolve(host, port):
        if host.startswith("slow"):
            release.wait(10)
        return slow(host, port)

    proxy.resolve = resolve
    proxy.lookups_per_tenant = 2
    proxy.resolve_timeout_s = 0.3
    bind(proxy, door, mode="public")
    names.set("slow1.lab.test", [SERVER])
    try:
        answers = [plain(door, f"CONNECT slow{i}.lab.test:443 HTTP/1.1\r\n\r\n") for i in range(3)]
        assert all(refused(a) for a in answers)
        reasons = [r.reason for r in records(proxy, door)]
        assert reasons == ["the name did not resolve in time"] * 2 + [
            "2 of this tenant's names are still resolving"
        ]
        other = proxy.open_door("cell-other-tenant")
        proxy.bind(other, tenant="t2", job="j", attempt=1, egress=Egress("public"))
        answer = plain(other, "GET http://api.lab.test/hello HTTP/1.1\r\nHost: api.lab.test\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200")  # another tenant's names still resolve meanwhile
    finally:
        release.set()


def test_doors_a_dead_worker_left_are_swept_and_live_ones_kept(proxy, tmp_path):
    import os
    import socket as socketlib

    live = proxy.open_door("cell-live")
    dead_dir = os.path.join(proxy.directory, "cell-dead")
    os.mkdir(dead_dir)
    dead = socketlib.socket(socketlib.AF_UNIX)
    dead.bind(os.path.join(dead_dir, "proxy.sock"))
    dead.close()  # a socket file nobody listens on: its worker died
    second = EgressProxy(directory=proxy.directory)
    assert sorted(os.listdir(proxy.directory)) == ["cell-live"]
    second.close()
    proxy.close_door(live)
