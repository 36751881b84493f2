"""Egress benchmark: what the door costs. Run by hand, as root (it makes the test internet: a network
namespace at 198.18.0.2, the same one the egress tests use; nothing leaves this machine):

    .venv/bin/python bench/egress.py [--requests 2000] [--jobs 300] [--main /work/main]

Prints p50/p99 of:

* a keep-alive HTTP request (GET, ~20-byte answer) from this host straight to the server, and the
  same request through the door: from a host socket on the door (the proxy alone), and from a job in
  a cell (relay in the cell + Unix socket + proxy), each over one kept-alive tunnel;
* connection setup: a new TCP connection straight, a new tunnel through the door (CONNECT, 200), and a
  whole new plain-HTTP request through the door (one request per connection);
* a trivial job (``return a + b``, one client, warm cell) with ``egress: none`` on this tree and on
  ``--main`` (the tree before the door, with its own images), then with an allowlist (the relay is
  started for the job) and with a secret (masking on); rounds alternate so drift hits both.

The target in issue 24: at most 1 ms added at p50 through the door, and ``egress: none`` as fast as
before (within noise)."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sandbox import Egress, Limits, RunSpec, Sandbox, SecretValue  # noqa: E402
from sandbox.egress import EgressProxy  # noqa: E402
from sandbox.netpolicy import NetPolicy  # noqa: E402
from sandbox.tests.internet import ALLOW_CIDRS, SERVER, Internet, Names  # noqa: E402

PORT = 8080  # plain HTTP in the namespace: the tunnel carries it without TLS, so the door is what is measured
ALLOW = (f"api.lab.test:{PORT}", "api.lab.test:80")


def pct(samples: list[float], p: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[int(p) - 1]


def line(name: str, samples: list[float]) -> str:
    p50, p99 = statistics.median(samples), pct(samples, 99)
    return f"  {name:<44} p50={p50:7.3f} ms  p99={p99:7.3f} ms  n={len(samples)}"


def timed(n: int, one, settle=None) -> list[float]:
    """``n`` timings of ``one()`` (ms); ``settle()`` runs before each, untimed."""
    out = []
    for _ in range(n):
        if settle is not None:
            settle()
        t0 = time.perf_counter()
        one()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def keepalive(conn: http.client.HTTPConnection, n: int) -> list[float]:
    def one():
        conn.request("GET", "/hello", headers={"Host": "api.lab.test"})
        conn.getresponse().read()

    timed(50, one)  # warm-up
    return timed(n, one)


class DoorConnection(http.client.HTTPConnection):
    """An HTTP connection through a door's socket, tunnelled to the server with CONNECT."""

    def __init__(self, path: str) -> None:
        super().__init__("api.lab.test", PORT, timeout=10)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(self.path)
        sock.sendall(f"CONNECT api.lab.test:{PORT} HTTP/1.1\r\n\r\n".encode())
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += sock.recv(1)
        assert head.startswith(b"HTTP/1.1 200"), head
        self.sock = sock


IN_CELL = """
import http.client, time
def main(n):
    conn = http.client.HTTPConnection("127.0.0.1", 3128, timeout=10)
    conn.set_tunnel("api.lab.test", PORT)
    def one():
        conn.request("GET", "/hello", headers={"Host": "api.lab.test"})
        conn.getresponse().read()
    for _ in range(50):
        one()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        one()
        out.append((time.perf_counter() - t0) * 1000)
    return out
""".replace("PORT", str(PORT))


def setup_costs(door, n: int) -> dict[str, list[float]]:
    door_path = door.path

    def settle():
        # the proxy's threads of the previous connections end a moment after the client closes; a
        # door with 64 open connections refuses more (max_open_per_door): measure each setup on a
        # door that is not crowded by the ones before it
        deadline = time.monotonic() + 5
        while door.open > 8 and time.monotonic() < deadline:
            time.sleep(0.0005)

    def tcp():
        socket.create_connection((SERVER, PORT), timeout=10).close()

    def tunnel():
        conn = DoorConnection(door_path)
        conn.connect()
        conn.sock.close()

    def plain_request():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(door_path)
        sock.sendall(b"GET http://api.lab.test/hello HTTP/1.1\r\nHost: api.lab.test\r\n\r\n")
        while sock.recv(65536):
            pass
        sock.close()

    def direct_request():
        conn = http.client.HTTPConnection(SERVER, 80, timeout=10)
        conn.request("GET", "/hello", headers={"Host": "api.lab.test", "Connection": "close"})
        conn.getresponse().read()
        conn.close()

    return {
        "new TCP connection, straight": timed(n, tcp),
        "new tunnel through the door (CONNECT, 200)": timed(n, tunnel, settle),
        "new plain request, straight (connect+GET)": timed(n, direct_request),
        "new plain request through the door": timed(n, plain_request, settle),
    }


TRIVIAL = """
import json, os, statistics, sys, time, uuid
sys.path.insert(0, os.getcwd())
import sandbox
from sandbox import Limits, RunSpec
pool = sandbox.Sandbox(reuse="tenant")
spec = RunSpec(runtime=sys.argv[1], code=sys.argv[2], args=[2, 3], tenant="bench-" + uuid.uuid4().hex[:6],
               uid=200_901, limits=Limits(timeout_ms=5000))
for _ in range(20):
    assert pool.run(spec).status == "succeeded"
out = []
for _ in range(int(sys.argv[3])):
    t0 = time.perf_counter()
    pool.run(spec)
    out.append((time.perf_counter() - t0) * 1000)
pool.close()
print(json.dumps(out))
"""
CODE = {"python": "def main(a, b):\n    return a + b\n", "node": "function main(a, b) { return a + b; }\n"}


def trivial_in(tree: str, runtime: str, n: int) -> list[float]:
    """The trivial job, 1 client, warm cell, with ``tree``'s sandbox package and images."""
    done = subprocess.run(
        [sys.executable, "-c", TRIVIAL, runtime, CODE[runtime], str(n)],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": tree},
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def trivial_here(pool: Sandbox, runtime: str, n: int, **fields) -> list[float]:
    spec = RunSpec(runtime=runtime, code=CODE[runtime], args=[2, 3], tenant=f"bench-{runtime}-{len(fields)}",
                   uid=200_903, limits=Limits(timeout_ms=5000), **fields)  # fmt: skip
    for _ in range(20):
        result = pool.run(spec)
        assert result.status == "succeeded", result.error
    return timed(n, lambda: pool.run(spec))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--main", default="", help="a checkout before the door, with its images built")
    args = parser.parse_args()

    net = Internet().start()
    directory = tempfile.mkdtemp(prefix="ls-bench-")
    names = Names()
    proxy = EgressProxy(
        directory=directory, policy=NetPolicy(allow_cidrs=ALLOW_CIDRS), resolve=names, max_connections=10**6
    )
    pool = Sandbox(reuse="tenant", egress=proxy)
    try:
        door = proxy.open_door("bench-door")
        proxy.bind(door, tenant="bench", job="bench", attempt=1, egress=Egress("allowlist", ALLOW))
        print(f"keep-alive GET /hello, {args.requests} requests each (one connection, after 50 to warm up)")
        straight = keepalive(http.client.HTTPConnection(SERVER, PORT, timeout=10), args.requests)
        print(line("from this host, straight", straight))
        proxied = keepalive(DoorConnection(door.path), args.requests)
        print(line("from this host, through the door's socket", proxied))
        spec = RunSpec(runtime="python", code=IN_CELL, args=[args.requests], tenant="bench-cell", uid=200_905,
                       egress=Egress("allowlist", ALLOW), limits=Limits(timeout_ms=60_000))  # fmt: skip
        result = pool.run(spec)
        assert result.status == "succeeded", result.error
        in_cell = result.result
        print(line("from a job in a cell, through the door", in_cell))
        added = statistics.median(in_cell) - statistics.median(straight)
        print(f"  added at p50 by the door (cell vs host straight): {added:.3f} ms (target <= 1 ms)")
        proxy.unbind(door)
        proxy.bind(door, tenant="bench", job="bench", attempt=2, egress=Egress("allowlist", ALLOW))
        print(f"\nconnection setup, {args.requests // 4} each")
        for name, samples in setup_costs(door, args.requests // 4).items():
            print(line(name, samples))
        proxy.unbind(door)

        print(f"\ntrivial job (return a + b), 1 client, warm cell, {args.jobs} jobs x {args.rounds} rounds")
        secret = (SecretValue("TOKEN", "sk_bench_0123456789abcdef", 1, "bench"),)
        for runtime in ("python", "node"):
            rows: dict[str, list[float]] = {}
            for _ in range(args.rounds):
                if args.main:
                    rows.setdefault("egress none, before the door (--main)", []).extend(
                        trivial_in(args.main, runtime, args.jobs)
                    )
                rows.setdefault("egress none, this tree", []).extend(trivial_in(ROOT, runtime, args.jobs))
                rows.setdefault("egress allowlist (relay started per job)", []).extend(
                    trivial_here(pool, runtime, args.jobs, egress=Egress("allowlist", ALLOW))
                )
                rows.setdefault("egress none, one secret (masking on)", []).extend(
                    trivial_here(pool, runtime, args.jobs, secrets=secret)
                )
            print(f" {runtime}")
            for name, samples in rows.items():
                print(line(name, samples))
    finally:
        pool.close()
        proxy.close()
        net.stop()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
