"""`make run`'s process supervision, end to end: scripts/run.sh on the test database; a worker killed
with SIGKILL (as the OOM killer does) is restarted and jobs keep running; Ctrl-C stops everything."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    db = connection.settings_dict
    return (
        f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


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
    port = _free_port()
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
        assert _wait(lambda: _get(f"http://127.0.0.1:{port}/healthz") == 200, 120), output.read_text()[-3000:]
        first = _wait(lambda: _worker_pid(conf), 60)
        assert first, output.read_text()[-3000:]
        key = re.search(r"LAMBDASITE_KEY=(\S+)", output.read_text()).group(1)
        log = lambda: output.read_text()[-3000:]  # noqa: E731 - the stack's console, for failure messages

        os.kill(first, signal.SIGKILL)  # as the OOM killer would
        second = _wait(lambda: (pid := _worker_pid(conf)) and pid != first and pid, 60)
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
        assert len(supervised) == 4, log()  # web, one worker, scheduler, deliveries
        os.killpg(run.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the foreground group
        assert run.wait(timeout=40) == 0, log()
        assert _wait(lambda: not any(_alive(pid) for pid in supervised), 15), (
            f"a process outlived Ctrl-C\n{log()}"
        )
        assert _get(f"http://127.0.0.1:{port}/healthz") == 0
    finally:
        for pid in [run.pid, *supervised, *_all_pids(conf)]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        run.wait(timeout=10)
