"""A worker host cut off from the network in the middle of its jobs (issue 16).

Two "hosts" are network namespaces on this machine, each joined to the root namespace by a veth pair;
each runs a worker that reaches PostgreSQL and Redis over its link (through a forwarder bound to the
link's root-side address: the machine's services listen on loopback only), never over loopback. The
reconciler runs in the root namespace. While jobs run, host A's link goes down: its jobs must complete
on host B within the lease and reconcile time. When the link comes back, A's late results are fenced
(each job keeps exactly one visible outcome), A rejoins and runs jobs again, and once A is gone its
cells are swept. Needs root and iproute2 (the set-up installs it); runs in CI like every other test.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from jobs.models import Attempt, Job, LogLine
from jobs.tests.test_chaos import Stack, assert_exactly_one_success_each, terminal_count, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]

ROOT = Path(__file__).resolve().parents[2]
SLEEP = {
    "runtime": "python",
    "code": "import time\ndef main(i):\n    print('started', flush=True)\n    time.sleep(2)\n    return i\n",
}
DEAD_PEER_S = 4  # the hosts' TCP dead-peer bound (DB_DEAD_PEER_S), short for the test


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"ip {' '.join(args)}: {done.stderr}"


class Forwarder:
    """TCP forwarders in the root namespace, each from a link address to a loopback service. A side
    that breaks closes the other, as a server's keepalive would end a backend whose client is gone.
    With ``delay_s`` every chunk arrives that much later, each way, in order: a far link's latency
    (this machine's kernel has no netem qdisc, so the delay is added here, where the bytes pass)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.servers: list[asyncio.base_events.Server] = []
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def add(self, listen_host: str, target_port: int, delay_s: float = 0.0) -> int:
        async def start() -> int:
            server = await asyncio.start_server(
                lambda r, w: self._pipe(r, w, target_port, delay_s), listen_host, 0
            )
            self.servers.append(server)
            return server.sockets[0].getsockname()[1]

        return asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)

    async def _pipe(self, reader, writer, target_port, delay_s: float = 0.0):
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, DEAD_PEER_S - 3)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, DEAD_PEER_S * 1000)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            writer.close()
            return

        async def copy(src, dst):
            try:
                if delay_s:
                    await _delayed_copy(src, dst, delay_s)
                else:
                    while data := await src.read(65536):
                        dst.write(data)
                        await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                for w in (dst, writer if dst is up_writer else up_writer):
                    w.close()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))

    def close(self) -> None:
        async def stop():
            for server in self.servers:
                server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def _delayed_copy(src, dst, delay_s: float) -> None:
    """Copy ``src`` to ``dst`` until the end, each chunk written ``delay_s`` after it was read."""
    loop = asyncio.get_running_loop()
    line: asyncio.Queue = asyncio.Queue()

    async def deliver() -> None:
        while (item := await line.get()) is not None:
            due, data = item
            await asyncio.sleep(max(0.0, due - loop.time()))
            dst.write(data)
            await dst.drain()

    delivering = asyncio.ensure_future(deliver())
    try:
        while not delivering.done() and (data := await src.read(65536)):
            line.put_nowait((loop.time() + delay_s, data))
    finally:
        line.put_nowait(None)
        await delivering


class Host:
    """A network namespace joined to the root namespace by a veth pair (10.213.N.0/24, or the /24
    ``net`` names: "198.18.7" for 198.18.7.0/24)."""

    def __init__(self, tag: str, index: int, net: str | None = None) -> None:
        self.ns = f"ls{tag}{index}"
        self.link = f"ls{tag}{index}h"  # the root side; the namespace side is named eth0
        self.net = net or f"10.213.{index * 100 + int(tag[:2], 16) % 50}"
        self.address = f"{self.net}.1"
        ip("netns", "add", self.ns)
        ip("link", "add", self.link, "type", "veth", "peer", "name", f"ls{tag}{index}n")
        ip("link", "set", f"ls{tag}{index}n", "netns", self.ns)
        ip("-n", self.ns, "link", "set", f"ls{tag}{index}n", "name", "eth0")
        ip("addr", "add", f"{self.address}/24", "dev", self.link)
        ip("link", "set", self.link, "up")
        ip("-n", self.ns, "addr", "add", f"{self.net}.2/24", "dev", "eth0")
        ip("-n", self.ns, "link", "set", "eth0", "up")
        ip("-n", self.ns, "link", "set", "lo", "up")

    def cut(self) -> None:
        ip("link", "set", self.link, "down")

    def restore(self) -> None:
        ip("link", "set", self.link, "up")

    def remove(self) -> None:
        subprocess.run(["ip", "link", "del", self.link], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, timeout=30)


def _service_ports() -> tuple[int, int]:
    db = connection.settings_dict
    redis_port = int(settings.REDIS_URL.rsplit(":", 1)[1].split("/")[0])
    return int(db["PORT"] or 5432), redis_port


@pytest.fixture
def stack():
    s = Stack(settings.REDIS_URL)
    yield s
    s.stop()


@pytest.fixture
def two_hosts():
    if os.geteuid() != 0:
        pytest.fail("the partition test needs root to make network namespaces")
    tag = secrets.token_hex(2)
    forwarder = Forwarder()
    hosts = []
    try:
        for index in (1, 2):
            hosts.append(Host(tag, index))
        yield hosts, forwarder
    finally:
        forwarder.close()
        for host in hosts:
            host.remove()


def _start_worker(
    stack: Stack, host: Host, forwarder: Forwarder, name: str, *args: str, delay_s: float = 0.0
) -> subprocess.Popen:
    """``manage.py worker ARGS`` in the host's namespace, reaching PostgreSQL and Redis over its link
    (``delay_s`` more each way)."""
    pg_port, redis_port = _service_ports()
    db = connection.settings_dict
    pg = forwarder.add(host.address, pg_port, delay_s)
    rd = forwarder.add(host.address, redis_port, delay_s)
    redis_db = settings.REDIS_URL.rsplit("/", 1)[1]
    env = {
        **stack.env,
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{host.address}:{pg}/{db['NAME']}",
        "REDIS_URL": f"redis://{host.address}:{rd}/{redis_db}",
        "DB_DEAD_PEER_S": str(DEAD_PEER_S),
    }
    log = ROOT / "var" / f"partition-{name}.log"
    proc = subprocess.Popen(
        ["ip", "netns", "exec", host.ns, sys.executable, "manage.py", "worker", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),
    )
    stack.procs[name] = proc
    stack.logs[name] = log
    return proc


def _worker_of(attempt_worker: str) -> int:
    return int(attempt_worker.rsplit(":", 1)[1])


def test_a_worker_host_cut_off_mid_job_is_fenced_recovered_and_rejoins(
    alice, stack, two_hosts, docker_client
):
    (host_a, host_b), forwarder = two_hosts
    alice.tenant.quota.max_concurrency = 20
    alice.tenant.quota.save()
    stack.env["DB_DEAD_PEER_S"] = str(DEAD_PEER_S)
    # one job at a time per worker, as this test's story needs: A cut off while exactly the job whose
    # first line is stored runs (a job of A's whose output came after the cut gives its attempt up,
    # with no late result to fence), and B alone kept busy long enough for A to rejoin and take some
    stack.env["WORKER_MAX_INFLIGHT"] = "1"
    stack.start("reconciler", "scheduler")  # in the root namespace: the control plane stays reachable
    worker_a = _start_worker(stack, host_a, forwarder, "worker-a")
    worker_b = _start_worker(stack, host_b, forwarder, "worker-b")
    ids = [alice.post_job({**SLEEP, "args": [i]}).json()["id"] for i in range(8)]
    on_a, cut_at = _cut_off_mid_job(stack, host_a, worker_a, ids)

    # host A's jobs complete on host B within the lease and reconcile time
    def a_jobs_done():
        return Job.objects.filter(pk__in=on_a, status="succeeded").count() == len(on_a)

    assert wait_until(a_jobs_done, 60, 0.1), "host A's jobs were not recovered:\n" + stack.report()
    recovered_s = time.monotonic() - cut_at
    _assert_recovered_on_b(stack, ids, on_a, worker_a, worker_b)
    restored_at, fenced_s = _restore_and_assert_fenced(stack, host_a, ids, on_a, worker_a, worker_b)
    rejoined_s = _assert_rejoins(alice, stack, worker_a, restored_at)
    _assert_cells_swept_once_gone(docker_client, worker_a)
    print(
        f"\npartition: host A's {len(on_a)} running jobs finished on host B {recovered_s:.1f} s "
        "after the cut "
        f"(LEASE_S={stack.env['LEASE_S']}); its late results fenced {fenced_s:.1f} s and it ran jobs again "
        f"{rejoined_s:.1f} s after its link came back"
    )


def _cut_off_mid_job(stack: Stack, host_a: Host, worker_a, ids: list[str]) -> tuple[set[str], float]:
    """Once host A runs a job whose code has started, cut its link; -> the jobs it was running, when."""

    def a_is_running():
        return Attempt.objects.filter(
            job_id__in=ids, status="running", worker__endswith=f":{worker_a.pid}"
        ).first()

    running = wait_until(a_is_running, 90, 0.05)
    assert running, "host A never ran a job:\n" + stack.report()
    # its code has started (its first line is stored): what is left for A is to renew and to finish
    assert wait_until(lambda: LogLine.objects.filter(job_id=running.job_id).exists(), 10, 0.02), (
        stack.report()
    )
    host_a.cut()
    cut_at = time.monotonic()
    time.sleep(1)  # what A sent just before the cut and the forwarder already holds reaches PostgreSQL
    on_a = {
        str(a.job_id)
        for a in Attempt.objects.filter(job_id__in=ids, status="running", worker__endswith=f":{worker_a.pid}")
    }
    assert on_a
    return on_a, cut_at


def _assert_recovered_on_b(stack: Stack, ids: list[str], on_a: set[str], worker_a, worker_b) -> None:
    assert wait_until(lambda: terminal_count(ids) == len(ids), 60), stack.report()
    for job_id in on_a:
        attempts = list(Attempt.objects.filter(job_id=job_id).order_by("number"))
        assert attempts[0].status == "lost" and attempts[0].worker.endswith(f":{worker_a.pid}")
        assert attempts[-1].status == "succeeded" and attempts[-1].worker.endswith(f":{worker_b.pid}")
    assert worker_a.poll() is None  # cut off, not dead


def _restore_and_assert_fenced(
    stack: Stack, host_a: Host, ids: list[str], on_a: set[str], worker_a, worker_b
) -> tuple[float, float]:
    """The link comes back: A's late results arrive and are fenced, every job keeps one outcome;
    -> when the link came back, and how long after it the last late result was fenced."""
    outcome = {
        job_id: Job.objects.values_list("status", "result", "attempts").get(pk=job_id) for job_id in on_a
    }
    host_a.restore()
    restored_at = time.monotonic()
    log_a = stack.logs["worker-a"]
    assert wait_until(
        lambda: log_a.read_text(errors="replace").count("stale attempt result ignored") >= len(on_a), 90, 0.5
    ), "host A's late results never arrived:\n" + stack.report()
    fenced_s = time.monotonic() - restored_at
    for job_id in on_a:
        assert Job.objects.values_list("status", "result", "attempts").get(pk=job_id) == outcome[job_id]
        attempts = list(Attempt.objects.filter(job_id=job_id).order_by("number"))
        # the history tells what A's attempt did; the job's outcome is attempt B's, the current one
        assert attempts[0].worker.endswith(f":{worker_a.pid}") and attempts[0].status == "succeeded"
        assert outcome[job_id][2] == attempts[-1].number and attempts[-1].worker.endswith(f":{worker_b.pid}")
    for job_id in set(ids) - on_a:
        history = [
            (a.number, a.status, a.worker, a.started_at.time(), a.finished_at and a.finished_at.time())
            for a in Attempt.objects.filter(job_id=job_id).order_by("number")
        ]
        assert Attempt.objects.filter(job_id=job_id, status="succeeded").count() == 1, (history, worker_a.pid)
    assert [Job.objects.get(pk=i).result for i in ids] == list(range(8))
    return restored_at, fenced_s


def _assert_rejoins(alice, stack: Stack, worker_a, restored_at: float) -> float:
    """A rejoins: it takes jobs again; -> seconds from its link coming back to its first job done."""
    # enough that host B alone would be busy for 20 s: A, back within seconds, must take some
    more = [alice.post_job({**SLEEP, "args": [100 + i]}).json()["id"] for i in range(10)]

    def a_ran_one():
        return Attempt.objects.filter(
            job_id__in=more, status="succeeded", worker__endswith=f":{worker_a.pid}"
        ).exists()

    assert wait_until(a_ran_one, 90, 0.2), "host A never rejoined:\n" + stack.report()
    rejoined_s = time.monotonic() - restored_at
    assert wait_until(lambda: terminal_count(more) == len(more), 60), stack.report()
    assert_exactly_one_success_each(more)
    return rejoined_s


def _assert_cells_swept_once_gone(docker_client, worker_a) -> None:
    """Once A is gone for good, its cells are swept by B (same engine)."""
    worker_a.kill()
    worker_a.wait()
    assert wait_until(
        lambda: (
            not docker_client.containers.list(all=True, filters={"label": f"lambdasite.pid={worker_a.pid}"})
        ),
        30,
        0.5,
    ), "host A's cells were not swept"
