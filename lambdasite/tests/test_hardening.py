"""Deployment defaults a review found too trusting: published secrets, public metrics, chatty
readiness, Unicode that is not Unicode, a demo password on a public address, secrets in images,
and a Redis that could not have a password."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from lambdasite import env

ROOT = Path(__file__).resolve().parents[2]


# -- secrets ------------------------------------------------------------------------------


@pytest.mark.parametrize("published", sorted(env.PUBLISHED_SECRET_KEYS))
def test_a_published_secret_key_is_refused_without_debug(monkeypatch, tmp_path, published):
    monkeypatch.setenv("SECRET_KEY", published)
    with pytest.raises(ImproperlyConfigured, match="published"):
        env.secret_key(tmp_path / "none", debug=False)
    assert env.secret_key(tmp_path / "none", debug=True)  # development may use it


def test_the_secret_key_comes_from_the_environment_or_the_setups_file(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ImproperlyConfigured):
        env.secret_key(tmp_path / "missing", debug=False)
    written = tmp_path / "secret_key"
    written.write_text("k" * 40 + "\n")
    assert env.secret_key(written, debug=False) == "k" * 40
    monkeypatch.setenv("SECRET_KEY", "short")
    with pytest.raises(ImproperlyConfigured, match="32"):
        env.secret_key(written, debug=False)


def test_the_setup_writes_a_private_random_secret_key():
    path = ROOT / "var" / "secret_key"
    assert path.exists(), "scripts/setup.sh writes var/secret_key"
    assert path.stat().st_mode & 0o077 == 0
    assert len(path.read_text().strip()) >= 32


def test_dotenv_files_never_enter_an_image(tmp_path):
    from docker.utils.build import exclude_paths

    for name in (".env", ".env.production", ".env.example", "manage.py", ".venv/x", "var/secret_key"):
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("x")
    patterns = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    included = set(exclude_paths(str(tmp_path), patterns))
    assert ".env" not in included and ".env.production" not in included and "var/secret_key" not in included
    assert ".venv/x" not in included and "manage.py" in included and ".env.example" in included


# -- operations endpoints ------------------------------------------------------------------


def test_metrics_without_a_token_answer_only_this_machine(db, settings):
    settings.METRICS_TOKEN = ""
    assert APIClient().get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert APIClient().get("/metrics", REMOTE_ADDR="::1").status_code == 200
    remote = APIClient().get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert remote.status_code == 403 and remote.json()["error"]["code"] == "forbidden"


def test_readyz_never_echoes_what_a_driver_said(db, monkeypatch):
    from lambdasite import views

    def leaky():
        raise RuntimeError("could not connect to server: password=hunter2 host=10.9.8.7")

    monkeypatch.setitem(views.READINESS_CHECKS, "database", leaky)
    body = APIClient().get("/readyz").json()
    assert body["checks"]["database"] == {
        "ok": False,
        "error": "unavailable",
        "ms": body["checks"]["database"]["ms"],
    }
    assert "hunter2" not in json.dumps(body) and "10.9.8.7" not in json.dumps(body)


# -- input that is not Unicode --------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("code", "def main():\n    return '\\ud800'\n"),
        ("args", ["\\udfff"]),
        ("handler", "m\\ud83d"),
    ],
)
def test_a_lone_surrogate_anywhere_in_a_body_is_a_400(alice, field, value):
    body = {"runtime": "python", "code": "def main(*a):\n    return 1\n", field: value}
    raw = json.dumps(body).replace("\\\\u", "\\u")  # the JSON escape itself, not a backslash
    response = alice.client.post("/api/v1/jobs", data=raw, content_type="application/json")
    assert response.status_code == 400, response.content
    assert (
        response.json()["error"]["code"] == "malformed_json"
        and "surrogate" in response.json()["error"]["message"]
    )


def test_a_surrogate_pair_is_fine(alice):
    raw = '{"runtime": "python", "code": "def main(s):\\n    return s\\n", "args": ["\\ud83d\\ude00"]}'
    assert alice.client.post("/api/v1/jobs", data=raw, content_type="application/json").status_code == 202


# -- make run's demo account ------------------------------------------------------------------


@pytest.mark.django_db
def test_the_demo_password_is_refused_beyond_loopback(monkeypatch, capsys):
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)
    with pytest.raises(CommandError, match="refusing"):
        call_command("demo_setup")
    monkeypatch.setenv("HOST", "127.0.0.1")
    call_command("demo_setup")  # fine on this machine only
    monkeypatch.setenv("HOST", "0.0.0.0")
    with pytest.raises(CommandError, match="refusing"):
        call_command("demo_setup")  # the existing admin still has the demo password
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "a-much-better-one")
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.get(username="admin@example.com")
    admin.set_password("a-much-better-one")
    admin.save()
    call_command("demo_setup")
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("lsk_")


# -- compose ------------------------------------------------------------------------------------


@pytest.mark.system  # the compose CLI, installed by `make test`
def test_compose_keeps_prometheus_local_and_redis_behind_a_password():
    from lambdasite.tests.test_deploy import compose_config

    services = compose_config()["services"]
    ports = services["prometheus"]["ports"]
    assert all(
        str(p.get("host_ip", "") if isinstance(p, dict) else p).startswith("127.0.0.1") for p in ports
    ), ports
    assert "--requirepass" in services["redis"]["command"]
    assert "test-only@redis" in services["web"]["environment"]["REDIS_URL"]
    assert services["web"]["environment"]["METRICS_TOKEN"] == "test-only"


# -- Redis with a password, end to end ------------------------------------------------------------


@pytest.fixture
def password_redis():
    binary = shutil.which("redis-server")
    assert binary, "redis-server is required"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            "s3cret-pw",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"-NOAUTH"):
                        break
            except OSError:
                time.sleep(0.05)
        yield f"redis://:s3cret-pw@127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.docker
@pytest.mark.django_db(transaction=True)
def test_the_whole_service_runs_against_a_redis_with_a_password(alice, password_redis):
    from jobs.tests.test_chaos import Stack

    stack = Stack(password_redis)
    try:
        stack.start("reconciler", "scheduler")
        stack.start("worker", "worker")
        url = stack.start_web()
        request = urllib.request.Request(
            url + "/api/v1/jobs?wait=20",
            method="POST",
            data=json.dumps(
                {"runtime": "python", "code": "def main():\n    print('hi')\n    return 42\n"}
            ).encode(),
            headers={"Authorization": f"Bearer {alice.key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            job = json.loads(response.read())
        assert response.status == 200 and job["status"] == "succeeded" and job["result"] == 42
        assert _ready(url)
        for _ in range(50):  # the reconciler's heartbeat and the worker's are in that Redis
            checks = _fleet(url)["checks"]
            if checks["workers"]["ok"] and checks["reconciler"]["ok"]:
                break
            time.sleep(0.2)
        assert checks["workers"]["ok"] and checks["reconciler"]["ok"], checks
    finally:
        stack.stop()
    port = url.rsplit(":", 1)[1]
    logs = "".join(
        (ROOT / "var" / name).read_text()
        for name in ("chaos-reconciler.log", "chaos-worker.log", f"web-{port}.log")
    )
    assert "NOAUTH" not in logs and "AuthenticationError" not in logs and "live events not sent" not in logs


def _fleet(url: str) -> dict:
    """/healthz/fleet's body, 200 or 503 (this stack has no build worker)."""
    try:
        return json.loads(urllib.request.urlopen(url + "/healthz/fleet", timeout=5).read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


def _ready(url: str) -> bool:
    try:
        return urllib.request.urlopen(url + "/readyz", timeout=5).status == 200
    except OSError:
        return False


def test_a_redis_outage_at_submission_is_a_503_with_retry_after_and_accepts_nothing(alice, monkeypatch):
    """Redis restarting while a job is submitted (its rate bucket cannot be read): not a 500."""
    import json

    import redis

    from accounts import ratelimit
    from jobs.models import Job

    def away(*args, **kwargs):
        raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(ratelimit, "take", away)
    response = alice.client.post(
        "/api/v1/jobs",
        data=json.dumps({"runtime": "python", "code": "def main(): pass"}),
        content_type="application/json",
    )
    assert response.status_code == 503 and response["Retry-After"] == "1"
    assert response.json()["error"]["code"] == "unavailable"
    assert Job.objects.count() == 0
