"""Routes through the whole system: uvicorn serving /fn/…, a worker running the jobs in Docker, on
the test database and Redis (one stack for the module). Both runtimes answer with their own status,
headers and binary bodies; a GitHub webhook is verified before anything runs and its delivery runs
once; an async route's Location leads to the finished job; a route's request is replayed against
another version; a failing and a slow function are a 502 and a 504."""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from functions.services.deploy import VersionSpec, version_create
from jobs.models import Job
from jobs.tests.test_chaos import Stack
from routes.signatures import Scheme, sign

from .support import make_function, make_route, set_secret

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.docker]

PY_BLOB = """\
import base64

def main(request):
    data = base64.b64decode(request["body"]) if request["is_base64"] else request["body"].encode()
    return {
        "status": 201,
        "headers": {"Content-Type": "application/octet-stream", "X-Name": request["params"]["name"],
                    "X-Query": ",".join(request["query"].get("q", []))},
        "body": base64.b64encode(data[::-1]).decode(),
        "is_base64": True,
    }
"""
NODE_BLOB = """\
function main(request) {
  const data = request.is_base64 ? Buffer.from(request.body, "base64") : Buffer.from(request.body);
  return {
    status: 201,
    headers: { "Content-Type": "application/octet-stream", "X-Name": request.params.name,
               "X-Query": (request.query.q || []).join(",") },
    body: Buffer.from(data).reverse().toString("base64"),
    is_base64: true,
  };
}
"""
BLOB = bytes(range(256)) + "é".encode()


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        running = Stack(settings.REDIS_URL)
        running.start("worker", "worker")
        running.start("reconciler", "scheduler")
        url = running.start_web()
    yield url, running
    running.stop()


def request(url: str, method: str, path: str, *, headers=None, body: bytes = b"", timeout=40):
    """-> (status, {lower-case header: value}, body) whatever the status."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


@pytest.mark.parametrize("runtime, code", [("python", PY_BLOB), ("node", NODE_BLOB)])
def test_both_runtimes_answer_with_their_status_headers_and_binary_body(alice, stack, runtime, code):
    url, running = stack
    make_route(make_function(alice.tenant, runtime=runtime, code=code), "/blob/{name}", methods=["POST"])
    status, headers, body = request(url, "POST", "/fn/acme/blob/ada?q=1&q=2", body=BLOB)
    assert status == 201, (body, running.report())
    assert body == BLOB[::-1]
    assert headers["content-type"] == "application/octet-stream"
    assert (headers["x-name"], headers["x-query"]) == ("ada", "1,2")
    assert Job.objects.get().status == "succeeded"


def test_a_github_webhook_is_verified_first_and_runs_once_per_delivery(alice, stack):
    url, running = stack
    set_secret(alice.tenant, "github", "It's a Secret to Everybody")
    code = (
        "def main(request):\n"
        "    return {'delivery': request['delivery_id'], 'event': request['headers']['x-github-event'][0]}\n"
    )
    make_route(make_function(alice.tenant, code=code), "/github", methods=["POST"],
               auth={"type": "hmac", "preset": "github", "secret": "github"})  # fmt: skip
    body = json.dumps({"action": "opened", "number": 1}).encode()
    signed = sign(Scheme("github"), "It's a Secret to Everybody", body, at=0, delivery_id="d-1")
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "pull_request", **signed}
    forged = {**headers, **sign(Scheme("github"), "guess", body, at=0, delivery_id="d-1")}
    status, _, answer = request(url, "POST", "/fn/acme/github", headers=forged, body=body)
    assert status == 401 and Job.objects.count() == 0, answer
    first = request(url, "POST", "/fn/acme/github", headers=headers, body=body)
    again = request(url, "POST", "/fn/acme/github", headers=headers, body=body)
    assert first[0] == again[0] == 200, (first, running.report())
    assert json.loads(first[2]) == json.loads(again[2]) == {"delivery": "d-1", "event": "pull_request"}
    assert Job.objects.count() == 1


def test_async_location_and_a_replay_against_another_version(alice, stack):
    url, running = stack
    code = "def main(request):\n    return {'v': 1, 'body': request['body']}"
    echo = make_function(alice.tenant, code=code)
    make_route(echo, "/later", mode="async")
    status, headers, body = request(url, "POST", "/fn/acme/later", body=b"payload")
    assert status == 202, body
    location = headers["location"]
    auth = {"Authorization": f"Bearer {alice.key}", "Content-Type": "application/json"}
    for _ in range(200):
        job = json.loads(request(url, "GET", location, headers=auth)[2])
        if job["status"] == "succeeded":
            break
        time.sleep(0.1)
    assert job["result"] == {"v": 1, "body": "payload"}, (job, running.report())
    version_create(function=echo, user=None, spec=VersionSpec(code="def main(request):\n    return {'v': 2}"))
    status, _, body = request(url, "POST", f"{location}/replay?wait=20", headers=auth,
                           body=json.dumps({"qualifier": "2"}).encode())  # fmt: skip
    replayed = json.loads(body)
    assert status == 200 and replayed["result"] == {"v": 2} and replayed["version"] == 2, replayed
    assert replayed["args"] == job["args"] and replayed["trigger"]["kind"] == "api_key"


def test_a_failing_function_is_a_502_and_a_slow_one_a_504(alice, stack):
    url, running = stack
    failing = make_function(alice.tenant, name="failing", code="def main(request):\n    raise ValueError()")
    slow = make_function(alice.tenant, name="slow", timeout_ms=300,
                         code="import time\ndef main(request):\n    time.sleep(5)\n")  # fmt: skip
    make_route(failing, "/fail")
    make_route(slow, "/slow")
    status, _, body = request(url, "GET", "/fn/acme/fail")
    error = json.loads(body)["error"]
    assert status == 502 and error["code"] == "function_failed", (body, running.report())
    assert "Traceback" not in body.decode() and error["details"]["job_id"]
    status, _, body = request(url, "GET", "/fn/acme/slow")
    assert status == 504 and json.loads(body)["error"]["code"] == "function_timeout", body


def test_refusals_over_a_real_connection_create_no_job(alice, bob, stack):
    url, running = stack
    make_function(bob.tenant)
    route = dict(methods=["POST"], mode="async", max_body_bytes=1024, rate_limit_per_minute=1)
    make_route(make_function(alice.tenant), "/small", cors=["https://app.example.com"], **route)
    assert request(url, "POST", "/fn/globex/small", body=b"{}")[0] == 404
    assert request(url, "POST", "/fn/acme/small", body=b"x" * 1025)[0] == 413
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("POST", "/fn/acme/small", body=iter([b"x" * 700, b"x" * 700]), encode_chunked=True)
    assert conn.getresponse().status == 413  # no declared length: counted as it arrives
    conn.close()
    preflight = request(url, "OPTIONS", "/fn/acme/small", headers={
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"})  # fmt: skip
    assert preflight[0] == 204 and preflight[1]["access-control-allow-origin"] == "https://app.example.com"
    assert Job.objects.count() == 0
    assert request(url, "POST", "/fn/acme/small", body=b"{}")[0] == 202
    limited = request(url, "POST", "/fn/acme/small", body=b"{}")
    assert limited[0] == 429 and int(limited[1]["retry-after"]) >= 1
    assert Job.objects.count() == 1, running.report()
