"""The door end to end, through the real stack: the API in this process, a real worker process
(``manage.py worker``) with its egress proxy, Docker cells, and the test internet (a network namespace
at 198.18.0.0/15 serving HTTP and HTTPS from a test CA, sandbox/tests/internet.py).

The worker runs as an operator would configure it for a lab (EGRESS_ALLOW_CIDRS=198.18.0.0/15) plus
the one test-only setting EGRESS_TEST_HOSTS (its proxy's name table, since the namespace has no DNS).
The test CA reaches jobs as a tenant's secret, bound like any other; nothing else is special.

What is checked is what a tenant sees: a deployed function and an inline job, both runtimes, reach an
allowed host with a bound secret the server records; the job's connections (allowed with bytes,
denied with the reason) at GET /api/v1/jobs/{id}/connections; a printed secret masked in the stored
log lines in three forms; the secret revisions an attempt was given; a rotation reaching the next
run and retiring the warm cell that held the old value; env in the process; ``egress: none`` with no
proxy and no route; the tenant's monthly egress budget cutting a transfer."""

from __future__ import annotations

import base64
import json
import shutil
import tempfile

import docker
import pytest
from django.conf import settings

from jobs.models import Attempt, Job, LogLine

from .test_chaos import Stack, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]

TOKEN = 'sk_e2e_4eC39Hq"Ly\\jtDarj'  # a quote and a backslash: its JSON-escaped form is another string
ROTATED = "sk_e2e_rotated_Zp8Qw2Lr5Tx"
FINISHED = ("succeeded", "failed", "timed_out", "killed", "cancelled", "dead")


@pytest.fixture(scope="module")
def internet():
    from sandbox.tests.internet import Internet

    net = Internet().start()
    yield net
    net.stop()


@pytest.fixture(scope="module")
def stack(django_db_setup, internet):
    """One worker process for the module, its proxy reaching the test internet by name."""
    from sandbox.tests.internet import ALLOW_CIDRS, SERVER, SERVER_B

    doors = tempfile.mkdtemp(prefix="ls-e2e-")
    s = Stack(settings.REDIS_URL)  # on the test database (django_db_setup made it)
    s.env.update(
        EGRESS_ALLOW_CIDRS=ALLOW_CIDRS,
        EGRESS_TEST_HOSTS=f"api.lab.test={SERVER},other.lab.test={SERVER},b.lab.test={SERVER_B}",
        EGRESS_DIR=doors,
        EGRESS_BUDGET_CACHE_S="0",  # each attempt reads the budget afresh: the test spends it at once
        LOG_LEVEL="INFO",
    )
    worker = s.start("egress-worker", "worker")
    yield s
    worker.terminate()  # SIGTERM: the worker closes its pool, its cells and its doors
    try:
        worker.wait(timeout=30)
    finally:
        s.stop()
    shutil.rmtree(doors, ignore_errors=True)


def put_secret(persona, name: str, value: str) -> dict:
    answer = persona.client.put(
        f"/api/v1/secrets/{name}", data=json.dumps({"value": value}), content_type="application/json"
    )
    assert answer.status_code in (200, 201), answer.content
    return answer.json()


def post(persona, path: str, body: dict) -> dict:
    answer = persona.client.post(path, data=json.dumps(body), content_type="application/json")
    assert answer.status_code in (201, 202), answer.content
    return answer.json()


def finished(stack, job_id, timeout: float = 30) -> Job:
    assert wait_until(lambda: Job.objects.get(pk=job_id).status in FINISHED, timeout, 0.05), stack.report()
    return Job.objects.get(pk=job_id)


def with_ca(persona, internet) -> None:
    put_secret(persona, "test-ca", internet.tls["ca"].read_text())


def seen_tokens(internet) -> list[str]:
    return [
        value
        for request in internet.requests(wait_s=2)
        for name, value in request["headers"]
        if name == "Authorization"
    ]


PY_CALL = """
import base64, json, os, urllib.error, urllib.request

def fetch(url):
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + os.environ["TOKEN"]})
    try:
        return urllib.request.urlopen(req, timeout=5).read().decode()
    except urllib.error.URLError as exc:
        return "refused: " + str(exc.reason)

def main():
    token = os.environ["TOKEN"]
    print("plain", token)
    print("b64", base64.b64encode(token.encode()).decode())
    print("json", json.dumps({"token": token}))
    return {"ok": fetch("https://api.lab.test/hello"), "other": fetch("https://other.lab.test/hello"),
            "mode": os.environ["MODE"]}
"""


def test_a_function_calls_an_allowed_host_with_its_secret_masked_and_a_rotation_reaches_the_next_run(
    alice, stack, internet, docker_client
):
    with_ca(alice, internet)
    assert put_secret(alice, "token", TOKEN)["revision"] == 1
    post(alice, "/api/v1/functions", {
        "name": "caller", "runtime": "python", "code": PY_CALL, "egress": ["api.lab.test:443"],
        "secrets": {"TOKEN": "token", "TEST_CA": "test-ca"},
        "env": {"SSL_CERT_FILE": "/run/secrets/TEST_CA", "MODE": "function"},
    })  # fmt: skip
    internet.clear()
    job = finished(stack, post(alice, "/api/v1/functions/caller/invoke", {})["id"])
    assert job.status == "succeeded", (job.error, stack.report())
    assert job.result["ok"] == "hello from 198.18.0.2" and job.result["mode"] == "function"
    assert job.result["other"].startswith("refused")
    assert seen_tokens(internet) == [f"Bearer {TOKEN}"]  # the server got the secret; other.lab.test nothing

    page = alice.client.get(f"/api/v1/jobs/{job.id}/connections").json()
    allowed, denied = page["connections"]
    assert (allowed["host"], allowed["port"], allowed["address"], allowed["verdict"]) == (
        "api.lab.test", 443, "198.18.0.2", "allowed"
    )  # fmt: skip
    assert allowed["bytes_sent"] > 0 and allowed["bytes_received"] > 0
    assert (denied["host"], denied["verdict"], denied["reason"]) == (
        "other.lab.test", "denied", "not on the egress allowlist"
    )  # fmt: skip
    assert page["complete"] and page["dropped"] == 0

    texts = list(LogLine.objects.filter(job=job).order_by("seq").values_list("text", flat=True))
    for leak in (TOKEN, base64.b64encode(TOKEN.encode()).decode(), json.dumps(TOKEN)[1:-1]):
        assert not any(leak in text for text in texts), (leak, texts)
    assert {"plain ***", "b64 ***", 'json {"token": "***"}'} <= set(texts), texts
    first = Attempt.objects.get(job=job)
    assert sorted(first.secret_revisions) == [["test-ca", 1], ["token", 1]] and first.masked >= 3
    assert first.egress_bytes == allowed["bytes_sent"] + allowed["bytes_received"] == job.egress_bytes

    assert put_secret(alice, "token", ROTATED)["revision"] == 2
    internet.clear()
    again = finished(stack, post(alice, "/api/v1/functions/caller/invoke", {})["id"])
    assert again.status == "succeeded", again.error
    assert seen_tokens(internet) == [f"Bearer {ROTATED}"]
    second = Attempt.objects.get(job=again)
    assert sorted(second.secret_revisions) == [["test-ca", 1], ["token", 2]]
    assert second.container_id != first.container_id

    def retired() -> bool:  # the warm cell holding revision 1 is removed, not kept for a later run
        try:
            docker_client.containers.get(first.container_id)
        except docker.errors.NotFound:
            return True
        return False

    assert wait_until(retired, 15), "the cell with the old secret revision was kept"


JS_CALL = """
const fs = require('fs'), tls = require('tls');
async function main() {
  tls.setDefaultCACertificates([fs.readFileSync('/run/secrets/TEST_CA', 'utf8')]);
  const headers = { Authorization: 'Bearer ' + process.env.TOKEN };
  const r = await fetch('https://api.lab.test/hello', { headers });
  let other;
  try { other = (await fetch('https://b.lab.test/hello')).status; } catch (e) { other = 'refused'; }
  return { ok: await r.text(), other, mode: process.env.MODE };
}
"""


def test_an_inline_node_job_calls_an_allowed_host_with_its_secret_and_env(alice, stack, internet):
    with_ca(alice, internet)
    put_secret(alice, "token", TOKEN)
    internet.clear()
    body = {
        "runtime": "node", "code": JS_CALL, "egress": ["api.lab.test:443"],
        "secrets": {"TOKEN": "token", "TEST_CA": "test-ca"}, "env": {"MODE": "inline"},
    }  # fmt: skip
    job = finished(stack, post(alice, "/api/v1/jobs", body)["id"])
    assert job.status == "succeeded", (job.error, stack.report())
    assert job.result == {"ok": "hello from 198.18.0.2", "other": "refused", "mode": "inline"}
    assert seen_tokens(internet) == [f"Bearer {TOKEN}"]
    connections = alice.client.get(f"/api/v1/jobs/{job.id}/connections").json()["connections"]
    assert [(c["host"], c["verdict"], c["reason"]) for c in connections] == [
        ("api.lab.test", "allowed", ""),
        ("b.lab.test", "denied", "not on the egress allowlist"),
    ]
    assert sorted(Attempt.objects.get(job=job).secret_revisions) == [["test-ca", 1], ["token", 1]]


PY_NONE = """
import os, socket
def main():
    try:
        socket.create_connection(("198.18.0.2", 443), timeout=3).close()
        raw = "connected"
    except OSError as exc:
        raw = exc.errno
    return {"proxy": sorted(k for k in os.environ if "proxy" in k.lower()), "raw": raw,
            "mode": os.environ.get("MODE")}
"""
JS_NONE = """
const net = require('net');
async function main() {
  const raw = await new Promise((res) => {
    const s = net.connect({ port: 443, host: '198.18.0.2', timeout: 3000 });
    s.on('connect', () => { s.destroy(); res('connected'); });
    s.on('error', (e) => res(e.code));
    s.on('timeout', () => { s.destroy(); res('timeout'); });
  });
  const proxy = Object.keys(process.env).filter((k) => /proxy/i.test(k)).sort();
  return { proxy, raw, mode: process.env.MODE };
}
"""


def test_an_inline_job_without_egress_has_its_env_no_proxy_and_no_route(alice, stack):
    ids = {}
    for runtime, code in (("python", PY_NONE), ("node", JS_NONE)):
        body = {"runtime": runtime, "code": code, "env": {"MODE": runtime}}
        ids[runtime] = post(alice, "/api/v1/jobs", body)
    python, node = (finished(stack, ids[runtime]["id"]) for runtime in ("python", "node"))
    assert python.result == {"proxy": [], "raw": 101, "mode": "python"}, python.error  # ENETUNREACH
    assert node.result == {"proxy": [], "raw": "ENETUNREACH", "mode": "node"}, node.error
    assert python.egress == node.egress == "none" and python.egress_bytes == 0


PY_BIG = """
import http.client, urllib.request
def main():
    try:
        with urllib.request.urlopen("http://api.lab.test/big?n=2000000", timeout=5) as answer:
            return {"got": len(answer.read())}
    except (http.client.IncompleteRead, OSError) as exc:
        return {"cut": type(exc).__name__}
"""


def test_the_tenants_monthly_egress_budget_cuts_a_transfer_and_then_refuses(alice, stack):
    quota = alice.tenant.quota
    quota.max_egress_bytes_month = 30_000
    quota.save()
    body = {"runtime": "python", "code": PY_BIG, "egress": ["api.lab.test:80"]}
    job = finished(stack, post(alice, "/api/v1/jobs", body)["id"])
    assert job.status == "succeeded" and "cut" in job.result, (job.result, job.error)
    [cut] = alice.client.get(f"/api/v1/jobs/{job.id}/connections").json()["connections"]
    assert (cut["verdict"], cut["reason"]) == ("denied", "monthly egress budget")
    assert cut["bytes_sent"] + cut["bytes_received"] == job.egress_bytes == 30_000
    assert alice.client.get("/api/v1/usage").json()["egress"] == {"used": 30_000, "limit": 30_000, "left": 0}

    spent = finished(stack, post(alice, "/api/v1/jobs", body)["id"])
    [refused] = alice.client.get(f"/api/v1/jobs/{spent.id}/connections").json()["connections"]
    assert (refused["verdict"], refused["reason"], spent.egress_bytes) == (
        "denied",
        "monthly egress budget",
        0,
    )


def test_the_worker_logged_no_error(stack):
    """The module's jobs ran in one worker; its log shows no error (a proxy thread that died, a
    budget that could not be read)."""
    log = stack.logs["egress-worker"].read_text(errors="replace")
    assert "Traceback" not in log and "reading the egress budget failed" not in log, log[-3000:]
