"""`make run`'s process supervision, end to end: scripts/run.sh on the test database; a worker killed
with SIGKILL (as the OOM killer does) is restarted and jobs keep running; Ctrl-C stops everything."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from jobs.tests.test_chaos import _database_url, free_port, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]

ROOT = Path(__file__).resolve().parents[2]


def _worker_pid(conf: Path) -> int | None:
    status = subprocess.run(
        [str(ROOT / ".venv/bin/supervisorctl"), "-c", str(conf), "status", "worker:worker-0"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    match = re.search(r"RUNNING\s+pid (\d+)", status)
    return int(match.group(1)) if match else None


def _all_pids(conf: Path) -> list[int]:
    status = subprocess.run(
        [str(ROOT / ".venv/bin/supervisorctl"), "-c", str(conf), "status"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    return [int(pid) for pid in re.findall(r"RUNNING\s+pid (\d+)", status)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _get(url: str) -> int:
    try:
        return urllib.request.urlopen(url, timeout=2).status
    except OSError:
        return 0


def test_a_killed_worker_is_restarted_and_ctrl_c_stops_everything(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "PORT": str(port),
        "WORKERS": "1",
        "RUN_DIR": str(tmp_path),
        "STOP_GRACE_S": "10",
        "SANDBOX_SPARES": "0",
        "LOG_LEVEL": "WARNING",
    }
    output = tmp_path / "run.log"
    with open(output, "w") as out:
        run = subprocess.Popen(
            [str(ROOT / "scripts/run.sh")], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    conf = tmp_path / "supervisord.conf"
    supervised: list[int] = []
    try:
        assert wait_until(lambda: _get(f"http://127.0.0.1:{port}/healthz") == 200, 120), output.read_text()[
            -3000:
        ]
        first = wait_until(lambda: _worker_pid(conf), 60)
        assert first, output.read_text()[-3000:]
        key = re.search(r"LAMBDASITE_KEY=(\S+)", output.read_text()).group(1)
        log = lambda: output.read_text()[-3000:]  # noqa: E731 - the stack's console, for failure messages

        os.kill(first, signal.SIGKILL)  # as the OOM killer would
        second = wait_until(lambda: (pid := _worker_pid(conf)) and pid != first and pid, 60)
        assert second, output.read_text()[-3000:]

        job = {"runtime": "python", "code": "def main(a, b):\n    return a + b\n", "args": [2, 3]}
        body = json.dumps(job)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/jobs?wait=30",
            data=body.encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        answer = json.loads(urllib.request.urlopen(request, timeout=40).read())
        assert answer["status"] == "succeeded" and answer["result"] == 5, (
            answer,
            log(),
        )  # the restarted worker ran it

        supervised = _all_pids(conf)
        assert len(supervised) == 5, log()  # web, one worker, one build worker, scheduler, deliveries
        console = output.read_text()
        supervisor_lines = re.findall(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ .*$", console, re.M)
        assert supervisor_lines and not [line for line in supervisor_lines if " CRIT " in line], console
        assert len(supervisor_lines) == len(set(supervisor_lines)), console  # each line once, not twice
        os.killpg(run.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the foreground group
        assert run.wait(timeout=40) == 0, log()
        assert wait_until(lambda: not any(_alive(pid) for pid in supervised), 15), (
            f"a process outlived Ctrl-C\n{log()}"
        )
        assert _get(f"http://127.0.0.1:{port}/healthz") == 0
    finally:
        for pid in [run.pid, *supervised, *_all_pids(conf)]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        run.wait(timeout=10)


def test_a_process_stops_its_database_pool_threads_before_it_exits():
    """The pool's threads are stopped at exit, before the interpreter tears daemon threads down (one
    torn down inside libpq aborted ~1 in 40 short commands, and with it `make run`'s set-up)."""
    script = (
        "import threading, django; django.setup()\n"
        "from django.db import connection\n"
        "connection.cursor().execute('SELECT 1')\n"
        "connection.close()\n"
        "assert any(t.name.startswith('pool-') for t in threading.enumerate())\n"
        "from jobs.apps import close_database_pools\n"
        "close_database_pools()\n"
        "alive = [t.name for t in threading.enumerate() if t.name.startswith('pool-') and t.is_alive()]\n"
        "print('pool threads left:', alive)\n"
    )
    env = {**os.environ, "DATABASE_URL": _database_url(), "DJANGO_SETTINGS_MODULE": "lambdasite.settings"}
    done = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "pool threads left: []" in done.stdout, done.stdout + done.stderr[-2000:]
