"""The production compose stack, run for real on this machine (issue 16).

Builds the images (``deploy/compose_images.py``: from the registry where one answers, else from the
project's Debian base and Debian's packages), then ``docker-compose up`` with two worker replicas (and
the build worker) on a project-named network, and runs the README's flow against it: a key made
inside the web container, a job in each runtime with ``?wait``, a job with egress reaching its door
(issue 24); a worker container killed in the middle of a 3 s job, the job finished by the other
worker with one visible outcome; then ``down -v`` and nothing left behind. Takes a few minutes (less
when the images' layers are cached)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import docker
import pytest

from jobs.tests.test_chaos import free_port, wait_until

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
SOCKET = "/var/run/docker.sock"
TERMINAL = {"succeeded", "failed", "timed_out", "killed", "cancelled", "dead"}


def _compose_command() -> list[str]:
    return ["docker-compose"] if shutil.which("docker-compose") else ["docker", "compose"]


class Stack:
    def __init__(self, env: dict[str, str]):
        self.project = f"lsct{secrets.token_hex(4)}"
        self.port = free_port()
        self.env = {**os.environ, **env, "PORT": str(self.port), "DOCKER_GID": str(os.stat(SOCKET).st_gid)}
        self.env["SECRET_KEY"] = secrets.token_urlsafe(40)
        self.env["SECRETS_KEY"] = base64.b64encode(os.urandom(32)).decode()
        self.env["REDIS_PASSWORD"] = secrets.token_urlsafe(16)
        self.env["POSTGRES_PASSWORD"] = secrets.token_urlsafe(16)
        self.env["METRICS_TOKEN"] = secrets.token_urlsafe(16)
        # the doors' host directory: this project's own, so that runs side by side never share one
        self.env["EGRESS_HOST_DIR"] = f"/tmp/{self.project}-egress"
        self.base = f"http://127.0.0.1:{self.port}"

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [*_compose_command(), "-p", self.project, "-f", str(ROOT / "compose.yaml"), *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert done.returncode == 0, f"compose {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done

    def logs(self) -> str:
        done = self.compose("logs", "--no-color", "--tail=60", timeout=60, check=False)
        return done.stdout[-12000:] + done.stderr[-2000:]

    def request(self, method: str, path: str, key: str | None = None, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if key:
            req.add_header("Authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def ready(self) -> bool:
        """Web is ready and the fleet is whole: two job workers, a build worker, the reconciler."""
        try:
            status, _ = self.request("GET", "/readyz")
            healthy, fleet = self.request("GET", "/healthz/fleet", key=self.env["METRICS_TOKEN"])
        except OSError:
            return False
        return status == 200 and healthy == 200 and fleet["checks"]["workers"]["detail"]["count"] == 2


def _project_leftovers(client: docker.DockerClient, project: str, worker_hosts: set[str]) -> dict:
    label = f"com.docker.compose.project={project}"
    cells = [
        c.name
        for c in client.containers.list(all=True, filters={"label": "lambdasite.sandbox=1"})
        if (c.labels or {}).get("lambdasite.host") in worker_hosts
    ]
    return {
        "containers": [c.name for c in client.containers.list(all=True, filters={"label": label})],
        "networks": [n.name for n in client.networks.list(filters={"label": label})],
        "volumes": [v.name for v in client.volumes.list(filters={"label": label})],
        "cells": cells,
    }


def test_the_compose_stack_runs_the_readme_flow_survives_a_killed_worker_and_leaves_nothing(docker_client):
    t_start = time.monotonic()
    images = _build_images()
    t_built = time.monotonic()
    _assert_secrets_stay_out_of_the_image(docker_client, images["APP_IMAGE"])

    stack = Stack(images)
    worker_hosts: set[str] = set()
    try:
        stack.compose("up", "-d", "--no-build", "--scale", "worker=2", timeout=600)
        assert wait_until(stack.ready, 180, 1.0), "the stack never became ready:\n" + stack.logs()
        t_ready = time.monotonic()
        workers = _assert_containers_are_confined(docker_client, stack)
        worker_hosts = {c.attrs["Config"]["Hostname"] for c in workers}
        key = _run_the_readme_flow(stack)
        _assert_a_job_with_egress_reaches_its_door(stack, key)
        victim, recovery_s = _kill_a_worker_mid_job(stack, key, workers)
        _assert_its_cells_are_swept(docker_client, victim)
    finally:
        stack.compose("down", "-v", "--remove-orphans", "--timeout", "30", timeout=300, check=False)
        shutil.rmtree(stack.env["EGRESS_HOST_DIR"], ignore_errors=True)
    t_down = time.monotonic()

    def nothing_left():
        return not any(_project_leftovers(docker_client, stack.project, worker_hosts).values())

    assert wait_until(nothing_left, 30, 1.0), _project_leftovers(docker_client, stack.project, worker_hosts)
    print(
        f"\ncompose timings: images {t_built - t_start:.1f} s, up to ready {t_ready - t_built:.1f} s, "
        f"killed worker's job finished {recovery_s:.1f} s after the kill, down {t_down - t_ready:.1f} s "
        f"after ready (flow included)"
    )


def _build_images() -> dict[str, str]:
    built = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "compose_images.py")],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert built.returncode == 0, built.stderr[-4000:]
    images = dict(line.split("=", 1) for line in built.stdout.split())
    assert set(images) == {"APP_IMAGE", "POSTGRES_IMAGE", "REDIS_IMAGE"}
    return images


def _assert_secrets_stay_out_of_the_image(docker_client, app_image: str) -> None:
    """Secrets reach the app from the environment, never from the image."""
    app = docker_client.images.get(app_image)
    env_names = {item.split("=", 1)[0] for item in app.attrs["Config"]["Env"] or []}
    assert not env_names & {
        "SECRET_KEY",
        "SECRETS_KEY",
        "REDIS_PASSWORD",
        "POSTGRES_PASSWORD",
        "METRICS_TOKEN",
        "DATABASE_URL",
    }
    assert app.attrs["Config"]["User"] == "lambdasite"


def _assert_containers_are_confined(docker_client, stack: Stack) -> list:
    """A project-named network, non-root app containers, the socket only where it is needed;
    -> the two worker containers."""
    containers = {
        c.labels["com.docker.compose.service"] + c.labels.get("com.docker.compose.container-number", ""): c
        for c in docker_client.containers.list(
            filters={"label": f"com.docker.compose.project={stack.project}"}
        )
    }
    workers = [c for name, c in containers.items() if name.startswith("worker")]
    assert len(workers) == 2
    for name, container in containers.items():
        assert f"{stack.project}_default" in container.attrs["NetworkSettings"]["Networks"], name
        sees_socket = any(m.get("Source") == SOCKET for m in container.attrs["Mounts"])
        if name.startswith(("web", "scheduler", "webhooks", "worker", "build-worker")):
            user = container.exec_run(["id", "-u"]).output.decode().strip()
            assert user != "0", f"{name} runs as root"
            assert sees_socket == name.startswith(("worker", "build-worker")), name
    return workers


def _run_the_readme_flow(stack: Stack) -> str:
    """The README's flow: a tenant and a key made inside the web container, a job in each runtime;
    -> the key."""
    stack.compose("exec", "-T", "web", "python", "manage.py", "tenant_create", "acme", "--name", "Acme")
    made = stack.compose("exec", "-T", "web", "python", "manage.py", "apikey_create", "acme", "--name", "ci")
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("lsk_")
    status, body = stack.request("GET", "/api/v1/jobs", key="lsk_nope_nope")
    assert status == 401 and body["error"]["code"]
    snippets = {
        "python": "def main(a, b):\n    print('adding', a, b)\n    return a + b\n",
        "node": "function main(a, b) {\n  console.log('adding', a, b);\n  return a + b;\n}\n",
    }
    for runtime, code in snippets.items():
        status, job = stack.request(
            "POST", "/api/v1/jobs?wait=30", key, {"runtime": runtime, "code": code, "args": [2, 3]}
        )
        assert status == 200 and job["status"] == "succeeded", (runtime, job)
        assert job["result"] == 5 and job["attempts"] == 1
        status, logs = stack.request("GET", f"/api/v1/jobs/{job['id']}/logs", key)
        assert [line["text"] for line in logs["lines"]] == ["adding 2 3"]
    return key


def _assert_a_job_with_egress_reaches_its_door(stack: Stack, key: str) -> None:
    """A containerised worker's egress proxy answers its cells: the door's directory is made where
    the engine sees it (EGRESS_HOST_DIR, mounted at EGRESS_DIR). A host off the job's allowlist gets
    the proxy's 403 (no internet needed), recorded with its reason; a door the engine could not
    mount would be a connection error instead."""
    code = (
        "import urllib.error, urllib.request\n"
        "def main():\n"
        "    try:\n"
        "        urllib.request.urlopen('http://denied.example.com/', timeout=10)\n"
        "    except urllib.error.HTTPError as exc:\n"
        "        return exc.code\n"
        "    except OSError as exc:\n"
        "        return repr(exc)\n"
    )
    body = {"runtime": "python", "code": code, "egress": ["api.example.com:443"]}
    status, job = stack.request("POST", "/api/v1/jobs?wait=30", key, body)
    assert status == 200 and job["status"] == "succeeded" and job["result"] == 403, (job, stack.logs())
    status, page = stack.request("GET", f"/api/v1/jobs/{job['id']}/connections", key)
    [denied] = page["connections"]
    assert (denied["host"], denied["verdict"], denied["reason"]) == (
        "denied.example.com",
        "denied",
        "not on the egress allowlist",
    )


def _kill_a_worker_mid_job(stack: Stack, key: str, workers: list):
    """A worker container killed in the middle of a 3 s job: the other worker finishes it;
    -> the killed container, and the seconds from the kill to the job's end."""
    slow = "import time\ndef main():\n    time.sleep(3)\n    return 'done'\n"
    status, job = stack.request("POST", "/api/v1/jobs", key, {"runtime": "python", "code": slow})
    assert status == 202, job

    def running_on():
        _, seen = stack.request("GET", f"/api/v1/jobs/{job['id']}", key)
        history = seen["attempt_history"]
        if seen["status"] == "running" and history and history[-1]["worker"]:
            return history[-1]["worker"]
        return None

    first_worker = wait_until(running_on, 20, 0.05)
    assert first_worker, "the job never started:\n" + stack.logs()
    victim = next(c for c in workers if first_worker.startswith(c.attrs["Config"]["Hostname"]))
    t_kill = time.monotonic()
    victim.kill()

    def finished():
        _, seen = stack.request("GET", f"/api/v1/jobs/{job['id']}", key)
        return seen if seen["status"] in TERMINAL else None

    final = wait_until(finished, 90, 0.25)
    recovery_s = time.monotonic() - t_kill
    assert final, "the job never finished after its worker died:\n" + stack.logs()
    assert final["status"] == "succeeded" and final["result"] == "done", final
    history = final["attempt_history"]
    assert [a["status"] for a in history].count("succeeded") == 1, history
    assert history[0]["worker"] == first_worker and history[0]["status"] == "lost"
    assert history[-1]["status"] == "succeeded" and history[-1]["worker"] != first_worker
    victim.reload()
    assert victim.status == "exited"  # it stayed dead: the survivor did the work
    return victim, recovery_s


def _assert_its_cells_are_swept(docker_client, victim) -> None:
    """The killed worker's cells are swept by the survivor (their owner container no longer runs)."""
    victim_host = victim.attrs["Config"]["Hostname"]

    def swept():
        left = docker_client.containers.list(
            all=True, filters={"label": ["lambdasite.sandbox=1", f"lambdasite.host={victim_host}"]}
        )
        return not left

    assert wait_until(swept, 60, 1.0), "the dead worker's cells were never swept"
