"""Chaos against real processes: workers and the reconciler run as `manage.py` subprocesses
on the test database, and the test kills them, flushes Redis or restarts it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from conftest import TEST_POOL_WORKER
from jobs import pools
from jobs.models import Attempt, Job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]

ROOT = Path(__file__).resolve().parents[2]
ONE_SECOND = {"runtime": "python", "code": "import time\ndef main(i):\n    time.sleep(1)\n    return i\n"}
QUICK = {"runtime": "python", "code": "def main(i):\n    return i * 2\n"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _database_url() -> str:
    db = connection.settings_dict
    return (
        f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )


class Stack:
    """Worker and reconciler processes of a test, with the delivery timings shortened."""

    def __init__(self, redis_url: str) -> None:
        self.env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "REDIS_URL": redis_url,
            "LEASE_S": "3",
            "LEASE_RENEW_S": "0.5",
            "RECONCILE_INTERVAL_S": "0.3",
            "REDISPATCH_AFTER_S": "1",
            "SANDBOX_SPARES": "0",
            "SANDBOX_SWEEP_INTERVAL_S": "1",
            "LOG_LEVEL": "WARNING",
        }
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    def start(self, name: str, command: str, *args: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", command, *args],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=open(ROOT / "var" / f"chaos-{name}.log", "w"),
        )
        self.procs[name] = proc
        self.logs[name] = ROOT / "var" / f"chaos-{name}.log"
        return proc

    def report(self) -> str:
        """The processes' exit codes and the end of their logs, for a failing assertion's message."""
        parts = []
        for name, path in self.logs.items():
            tail = path.read_text(errors="replace")[-1500:] if path.exists() else ""
            parts.append(f"--- {name} (exit {self.procs[name].poll()}):\n{tail}")
        return "\n".join(parts)

    def start_web(self) -> str:
        """uvicorn on a free port with this stack's environment; -> its URL once /healthz answers."""
        import urllib.request

        port = free_port()
        self.procs["web"] = subprocess.Popen(
            [
                str(ROOT / ".venv/bin/uvicorn"),
                "lambdasite.asgi:application",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=open(ROOT / "var" / f"web-{port}.log", "w"),
        )
        url = f"http://127.0.0.1:{port}"
        for _ in range(150):
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1)
                return url
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"uvicorn did not answer on {url}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs.values():
            proc.wait(timeout=30)


@pytest.fixture
def stack():
    s = Stack(settings.REDIS_URL)
    yield s
    s.stop()


def wait_until(predicate, timeout: float, step: float = 0.2):
    """The predicate's first truthy value within ``timeout`` seconds, else None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(step)
    return None


def terminal_count(ids) -> int:
    return Job.objects.filter(
        pk__in=ids, status__in=["succeeded", "failed", "timed_out", "killed", "cancelled", "dead"]
    ).count()


def assert_exactly_one_success_each(ids) -> None:
    for job_id in ids:
        job = Job.objects.get(pk=job_id)
        assert job.status == "succeeded", (job_id, job.status, job.error)
        assert Attempt.objects.filter(job_id=job_id, status="succeeded").count() == 1


def test_sigkill_one_of_two_workers_while_twenty_jobs_run(alice, stack, docker_client):
    stack.start("reconciler", "scheduler")
    # a worker runs many jobs at once: at most 10 each, so the twenty are shared whichever worker is
    # ready first, and the victim surely holds some when it dies
    stack.env["WORKER_MAX_INFLIGHT"] = "10"
    victim = stack.start("worker-a", "worker")
    stack.start("worker-b", "worker")
    ids = [alice.post_job({**ONE_SECOND, "args": [i]}).json()["id"] for i in range(20)]
    victims = Attempt.objects.filter(job_id__in=ids, status="running", worker__endswith=f":{victim.pid}")
    assert wait_until(victims.exists, timeout=90), stack.report()
    time.sleep(0.5)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = time.monotonic()
    assert wait_until(lambda: terminal_count(ids) == 20, timeout=60), f"{terminal_count(ids)}/20 terminal"
    assert_exactly_one_success_each(ids)
    assert [Job.objects.get(pk=i).result for i in ids] == list(range(20))
    lost = Attempt.objects.filter(job_id__in=ids, status="lost").count()
    assert lost >= 1  # the victim was running something when it died
    assert time.monotonic() - killed_at < 60
    # the dead worker's containers are swept by the survivor
    assert wait_until(
        lambda: (
            not docker_client.containers.list(all=True, filters={"label": f"lambdasite.pid={victim.pid}"})
        ),
        timeout=15,
    )


def test_flushall_with_fifty_jobs_waiting_loses_nothing(alice, stack, redis_conn):
    alice.tenant.quota.max_concurrency = 100  # every job in Redis when it is wiped
    alice.tenant.quota.save()
    ids = [alice.post_job({**QUICK, "args": [i]}).json()["id"] for i in range(50)]
    assert Job.objects.filter(pk__in=ids, status="dispatched").count() == 50
    redis_conn.flushall()
    stack.start("reconciler", "scheduler")
    stack.start("worker-a", "worker")
    stack.start("worker-b", "worker")
    assert wait_until(lambda: terminal_count(ids) == 50, timeout=60), f"{terminal_count(ids)}/50 terminal"
    assert_exactly_one_success_each(ids)


@pytest.fixture
def private_redis(settings):
    """A Redis of this test's own (no persistence) that it may stop and start again."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is required for the restart test"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert wait_until(lambda: _answers(port), timeout=10, step=0.05)
        return proc

    url = f"redis://127.0.0.1:{port}/0"
    settings.RQ_QUEUES = {settings.RQ_QUEUE: {"URL": url, "DEFAULT_TIMEOUT": 3600}}
    state = {"proc": start(), "start": start, "url": url}
    # the suite's stand-in worker of the default pool (conftest), here too: the jobs are dispatched
    # into this Redis before it is wiped (then the real workers beat for themselves)
    pools.beat(worker=TEST_POOL_WORKER, pools=[pools.DEFAULT_POOL], ttl_s=3600)
    pools.forget_live()
    yield state
    state["proc"].kill()
    state["proc"].wait()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def test_a_redis_restart_with_fifty_jobs_waiting_loses_nothing(alice, private_redis):
    alice.tenant.quota.max_concurrency = 100  # every job in Redis when it is wiped
    alice.tenant.quota.save()
    ids = [alice.post_job({**QUICK, "args": [i]}).json()["id"] for i in range(50)]
    assert Job.objects.filter(pk__in=ids, status="dispatched").count() == 50
    private_redis["proc"].kill()  # no AOF, no snapshot: every queued id is gone
    private_redis["proc"].wait()
    private_redis["proc"] = private_redis["start"]()
    stack = Stack(private_redis["url"])
    try:
        stack.start("reconciler", "scheduler")
        stack.start("worker-a", "worker")
        stack.start("worker-b", "worker")
        assert wait_until(lambda: terminal_count(ids) == 50, timeout=60), f"{terminal_count(ids)}/50 terminal"
    finally:
        stack.stop()
    assert_exactly_one_success_each(ids)


def test_sigterm_during_a_three_second_job_lets_it_finish(alice, stack):
    worker = stack.start("worker", "worker")
    job_id = alice.post_job(
        {"runtime": "python", "code": "import time\ndef main():\n    time.sleep(3)\n    return 'finished'\n"}
    ).json()["id"]
    assert wait_until(lambda: Job.objects.get(pk=job_id).status == "running", timeout=30, step=0.05)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    job = Job.objects.get(pk=job_id)
    assert job.status == "succeeded" and job.result == "finished"
    assert Attempt.objects.filter(job_id=job_id).count() == 1
