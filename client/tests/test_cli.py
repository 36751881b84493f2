"""The `lambdasite` CLI against a live server: uvicorn and a worker as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from jobs.tests.test_chaos import Stack

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(alice):
    stack = Stack(settings.REDIS_URL)
    stack.start("reconciler", "scheduler")
    stack.start("worker", "worker")
    stack.start("builder", "worker", "--builds")  # job workers never take a build
    url = stack.start_web()
    yield {"url": url, "key": alice.key}
    stack.stop()


def cli(server, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "LAMBDASITE_URL": server["url"], "LAMBDASITE_KEY": server["key"]}
    return subprocess.run(
        [sys.executable, str(ROOT / "bin" / "lambdasite"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_run_wait_logs_and_jobs(server, tmp_path):
    handler = tmp_path / "handler.py"
    handler.write_text("def main(a, b):\n    print('adding', a, b)\n    return a + b\n")
    done = cli(server, "run", str(handler), "--args", "[2, 3]", "--wait")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == ["adding 2 3", "5"]

    js = tmp_path / "handler.js"
    js.write_text(
        "async function main(n) { for (let i = 0; i < n; i++) console.log('line', i); return 'ok'; }\n"
    )
    job_id = cli(server, "run", str(js), "--args", "[3]").stdout.strip()
    follow = cli(server, "logs", job_id, "--follow")
    assert follow.returncode == 0 and follow.stdout.splitlines() == ["line 0", "line 1", "line 2"]

    listing = cli(server, "jobs")
    assert job_id in listing.stdout and "succeeded" in listing.stdout
    detail = json.loads(cli(server, "get", job_id).stdout)
    assert detail["result"] == "ok"


def test_errors_are_reported_with_a_nonzero_exit(server, tmp_path):
    handler = tmp_path / "fail.py"
    handler.write_text("def main():\n    raise ValueError('nope')\n")
    failed = cli(server, "run", str(handler), "--wait")
    assert failed.returncode == 1 and "ValueError" in failed.stderr
    missing = cli(server, "get", "00000000-0000-0000-0000-000000000000")
    assert missing.returncode == 2 and "not_found" in missing.stderr


def test_deploy_invoke_alias_and_list_functions(server, tmp_path):
    folder = tmp_path / "shout"
    folder.mkdir()
    (folder / "handler.py").write_text(
        "import six\n\ndef main(word):\n    print('shouting', word)\n"
        "    return six.ensure_text(word).upper()\n"
    )
    (folder / "requirements.txt").write_text("six==1.16.0\n")
    deployed = cli(server, "deploy", str(folder), "--name", "shout")
    assert deployed.returncode == 0, deployed.stderr
    assert json.loads(deployed.stdout) == {"function": "shout", "version": 1, "status": "ready"}
    assert "resolved 1 package" in deployed.stderr  # the build log, streamed while waiting

    done = cli(server, "invoke", "shout", "--args", '["hi"]', "--wait")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == ["shouting hi", '"HI"']

    (folder / "handler.py").write_text("def main(word):\n    return word.lower()\n")
    (folder / "requirements.txt").unlink()
    second = cli(server, "deploy", str(folder / "handler.py"), "--name", "shout")
    assert json.loads(second.stdout)["version"] == 2
    assert cli(server, "alias", "shout", "prod", "1").returncode == 0
    via_alias = cli(server, "invoke", "shout:prod", "--args", '["Hi"]', "--wait")
    assert via_alias.stdout.strip().splitlines()[-1] == '"HI"'
    latest = cli(server, "invoke", "shout:2", "--args", '["Hi"]', "--wait")
    assert latest.stdout.strip() == '"hi"'
    listed = cli(server, "functions")
    assert "shout" in listed.stdout and "v2" in listed.stdout
    versions = cli(server, "versions", "shout").stdout.splitlines()
    assert versions[0].startswith("v2") and versions[1].startswith("v1")
    missing = cli(server, "invoke", "nope", "--wait")
    assert missing.returncode == 2 and "function_not_found" in missing.stderr


def test_the_client_installs_with_pip_and_gives_the_lambdasite_command(tmp_path):
    target = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target),
         str(ROOT / "client")],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    script = target / "bin" / "lambdasite"
    assert script.exists()
    env = {**os.environ, "PYTHONPATH": str(target)}
    helped = subprocess.run([sys.executable, str(script), "--help"], env=env, capture_output=True, text=True)
    assert helped.returncode == 0
    for command in ("deploy", "invoke", "functions", "alias", "run", "logs", "secret"):
        assert command in helped.stdout


def test_schedule_and_webhook_commands(server, tmp_path):
    handler = tmp_path / "handler.py"
    handler.write_text("def main(a, b):\n    return a + b\n")
    assert cli(server, "deploy", str(handler), "--name", "adder").returncode == 0
    when = ["--cron", "30 2 * * *", "--timezone", "Europe/Berlin", "--catch-up", "latest"]
    created = cli(server, "schedule", "create", "nightly", *when, "--function", "adder", "--args", "[1, 2]")
    assert created.returncode == 0, created.stderr
    body = json.loads(created.stdout)
    assert body["catch_up"] == "latest" and len(body["next_fire_times"]) == 5
    listed = cli(server, "schedules")
    assert "nightly" in listed.stdout and "30 2 * * *" in listed.stdout and "active" in listed.stdout
    refused = cli(server, "webhook", "create", "http://127.0.0.1:9/hook", "--events", "job.failed")
    assert (
        refused.returncode == 2 and "not a public address" in refused.stderr
    )  # make run never allows private networks
    bad = cli(server, "schedule", "create", "bad", "--cron", "nope", "--function", "adder")
    assert bad.returncode == 2 and "cron" in bad.stderr
