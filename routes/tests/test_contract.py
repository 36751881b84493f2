"""Routes answer exactly as recorded: status, every header in order and the body, byte for byte once
generated values (job ids) are replaced by placeholders.

Routes have one transport (``routes/api/public.py``, the ASGI layer in front of the app); this is its
contract, as ``jobs/tests/test_contract.py`` is the API's: the function's answers (custom status,
headers, text, JSON and binary bodies), the platform's headers, and every refusal (404, 405, 413,
401 of each auth mode, 422, 429, the CORS preflight, 502, 504, 503, a bad Host). A stand-in worker
finishes the jobs (the unit tier has no Docker). Regenerate only for an intended change:
``CONTRACT_RECORD=1 scripts/test.sh routes/tests/test_contract.py``."""

from __future__ import annotations

import base64
import difflib
import json
import os
from pathlib import Path

import pytest

from jobs.tests.test_contract import normalise
from lambdasite.asgi import django_asgi_app
from routes.api.public import RouteServer
from routes.signatures import Scheme, sign
from vault.services import Actor, secret_delete

from .support import Finisher, fetch, make_function, make_route, set_secret

pytestmark = pytest.mark.django_db(transaction=True)

GOLDEN = Path(__file__).parent / "golden" / "contract.json"
NOW = 1_800_000_000


def respond(request):
    """What the stand-in worker makes of each request: the path's last segment says."""
    last = request["path"].rstrip("/").rsplit("/", 1)[-1]
    if last == "text":
        return "succeeded", {"status": 201, "headers": {"X-Made": ["a", "b"], "Set-Cookie": "x=1"},
                             "body": "made"}, None  # fmt: skip
    if last == "binary":
        png = base64.b64encode(b"\x89PNG\x00\xff").decode()
        return "succeeded", {"status": 200, "headers": {"Content-Type": "image/png"}, "body": png,
                             "is_base64": True}, None  # fmt: skip
    if last == "empty":
        return "succeeded", {"status": 204, "body": "dropped"}, None
    if last == "malformed":
        return "succeeded", {"status": 200, "headers": {"X": "a\nb"}}, None
    if last == "failed":
        return "failed", None, {"type": "ValueError", "message": "no", "traceback": "Traceback (...)"}
    if last == "slow":
        return "timed_out", None, {"type": "Timeout", "message": "exceeded the 5000 ms time limit"}
    return "succeeded", {"seen": {k: request[k] for k in ("method", "path", "params", "query", "body")}}, None


def scenario(alice) -> dict:
    echo = make_function(alice.tenant)
    set_secret(alice.tenant, "gh", "k3y")
    set_secret(alice.tenant, "pw", "s3cret")
    set_secret(alice.tenant, "stripe", "whsec_x")
    make_route(echo, "/any/{name+}")
    make_route(echo, "/exposed/{name}", expose_errors=True)
    make_route(echo, "/post", methods=["POST"], max_body_bytes=16, mode="async")
    make_route(echo, "/limited", mode="async", rate_limit_per_minute=1)
    make_route(echo, "/cors", methods=["POST"], cors=["https://app.example.com"], mode="async")
    make_route(echo, "/keyed", auth={"type": "api_key"}, mode="async")
    make_route(echo, "/basic", auth={"type": "basic", "username": "u", "secret": "pw"}, mode="async")
    make_route(echo, "/github", auth={"type": "hmac", "preset": "github", "secret": "gh"})
    make_route(echo, "/stripe", auth={"type": "hmac", "preset": "stripe", "secret": "stripe"}, mode="async")
    make_route(echo, "/gone", auth={"type": "hmac", "preset": "github", "secret": "gh"})
    app = RouteServer(django_asgi_app, clock=lambda: NOW)

    def get(name, method, path, **request):
        out[name] = fetch(method, path, app=app, **request)

    body = b'{"id": "evt_1"}'
    github = list(sign(Scheme("github"), "k3y", body, at=NOW, delivery_id="d-1").items())
    out: dict = {}
    with Finisher(alice.tenant, respond):
        get("json result", "GET", "/fn/acme/any/a/b", query="x=1&x=2")
        get("text response", "GET", "/fn/acme/any/text")
        get("binary response", "GET", "/fn/acme/any/binary")
        get("204 response", "GET", "/fn/acme/any/empty")
        get("malformed response", "GET", "/fn/acme/any/malformed")
        get("failed", "GET", "/fn/acme/any/failed")
        get("failed exposed", "GET", "/fn/acme/exposed/failed")
        get("timed out", "GET", "/fn/acme/any/slow")
        get("github", "POST", "/fn/acme/github", headers=github, body=body)
        get("github again", "POST", "/fn/acme/github", headers=github, body=body)
        other = list(sign(Scheme("github"), "k3y", b"{}", at=NOW, delivery_id="d-1").items())
        get("github other body", "POST", "/fn/acme/github", headers=other, body=b"{}")
    get("async", "POST", "/fn/acme/post", body=b"{}")
    get("unknown tenant", "GET", "/fn/nobody/any/x")
    get("unknown path", "GET", "/fn/acme/nothing")
    get("method not allowed", "GET", "/fn/acme/post")
    get("body over the route's cap", "POST", "/fn/acme/post", body=b"x" * 17)
    get("limited first", "GET", "/fn/acme/limited")
    get("limited", "GET", "/fn/acme/limited")
    origin = ("Origin", "https://app.example.com")
    asked = [origin, ("Access-Control-Request-Method", "POST"), ("Access-Control-Request-Headers", "x-a")]
    get("preflight", "OPTIONS", "/fn/acme/cors", headers=asked)
    get("preflight other origin", "OPTIONS", "/fn/acme/cors",
        headers=[("Origin", "https://evil.example"), ("Access-Control-Request-Method", "POST")])  # fmt: skip
    get("cors actual", "POST", "/fn/acme/cors", headers=[origin], body=b"{}")
    get("api key missing", "GET", "/fn/acme/keyed")
    get("api key", "GET", "/fn/acme/keyed", headers=[("Authorization", f"Bearer {alice.key}")])
    get("basic wrong", "GET", "/fn/acme/basic", headers=[("Authorization", "Basic dTp4")])  # u:x
    get("basic", "GET", "/fn/acme/basic", headers=[("Authorization", "Basic dTpzM2NyZXQ=")])  # u:s3cret
    get("hmac forged", "POST", "/fn/acme/github", headers=[("X-Hub-Signature-256", "sha256=00")], body=body)
    stale = list(sign(Scheme("stripe"), "whsec_x", body, at=NOW - 301).items())
    get("stripe expired", "POST", "/fn/acme/stripe", headers=stale, body=body)
    fresh = list(sign(Scheme("stripe"), "whsec_x", body, at=NOW).items())
    get("stripe", "POST", "/fn/acme/stripe", headers=fresh, body=body)
    get("bad host", "GET", "/fn/acme/any/x", host="evil.example")
    secret_delete(tenant=alice.tenant, name="gh", actor=Actor("t", is_owner=True))
    get("secret gone", "POST", "/fn/acme/gone", headers=github, body=body)
    return {name: record(answer) for name, answer in out.items()}


def record(answer: dict) -> dict:
    headers = [[name, normalise(value)] for name, value in answer["headers"]]
    for pair in headers:
        if pair[0] == "retry-after":
            pair[1] = "<n>"
    body = answer["body"]
    text = normalise(body.decode()) if body.isascii() else "base64:" + base64.b64encode(body).decode()
    return {"status": answer["status"], "headers": headers, "body": text}


def test_routes_answer_as_recorded(alice, settings):
    settings.ROUTE_WAIT_S = 5
    got = scenario(alice)
    if os.environ.get("CONTRACT_RECORD") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
        pytest.fail("recorded the contract; run again without CONTRACT_RECORD")
    want = json.loads(GOLDEN.read_text())
    assert sorted(got) == sorted(want)
    different = [name for name in want if got[name] != want[name]]
    for name in different:
        print(f"--- {name}: {want[name]['status']} {want[name]['headers']}\n+++ {got[name]['status']} "
              f"{got[name]['headers']}")  # fmt: skip
        print("\n".join(difflib.unified_diff([want[name]["body"]], [got[name]["body"]], lineterm="")))
    assert not different, different
