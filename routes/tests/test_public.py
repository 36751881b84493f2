"""Public requests to routes, through the ASGI application in process, on real PostgreSQL and Redis
(the unit tier: a stand-in worker finishes the jobs; routes/tests/test_system.py runs real ones).

Every refusal is checked to have created no job (jobs counted before and after) and taken no rate
token; every auth mode accepts a correct request and refuses a wrong one."""

from __future__ import annotations

import base64
import json
import time

import pytest

from accounts.models import ApiKey
from accounts.services import api_key_issue
from functions.services.deploy import VersionSpec, version_create
from functions.tests.support import call
from jobs.models import Job, Trigger
from lambdasite.asgi import django_asgi_app
from lambdasite.redis_client import get_redis
from routes.api.public import RouteServer
from routes.signatures import Scheme, sign

from .support import Finisher, fetch, header, make_function, make_route, set_secret

pytestmark = pytest.mark.django_db(transaction=True)

NOW = 1_800_000_000.0


def echo_result(request):
    return "succeeded", {"status": 200, "headers": {"Content-Type": "application/json"},
                         "body": json.dumps(request)}, None  # fmt: skip


def jobs() -> int:
    return Job.objects.count()


def refused(answer: dict, status: int, code: str) -> None:
    assert answer["status"] == status, answer
    assert json.loads(answer["body"])["error"]["code"] == code


@pytest.fixture
def echo(alice):
    return make_function(alice.tenant)


def test_a_sync_route_answers_with_the_function_s_response_and_gives_it_the_request(alice, echo):
    make_route(echo, "/hello/{name}")
    with Finisher(alice.tenant, echo_result):
        answer = fetch(
            "POST",
            "/fn/acme/hello/ada%20l",
            query="a=1&a=2&b=",
            headers=[("Content-Type", "text/plain"), ("X-Many", "1"), ("X-Many", "2"),
                     ("Cookie", "sessionid=secret; theme=dark")],
            body=b"hi there",
        )  # fmt: skip
    assert answer["status"] == 200, answer
    assert header(answer, "content-type") == "application/json"
    assert header(answer, "x-content-type-options") == "nosniff"
    assert header(answer, "content-security-policy").startswith("sandbox")
    seen = json.loads(answer["body"])
    assert {k: seen[k] for k in ("method", "path", "params", "query", "body", "is_base64", "route")} == {
        "method": "POST",
        "path": "/hello/ada l",
        "params": {"name": "ada l"},
        "query": {"a": ["1", "2"], "b": [""]},
        "body": "hi there",
        "is_base64": False,
        "route": "/hello/{name}",
    }
    assert seen["headers"]["x-many"] == ["1", "2"] and seen["headers"]["cookie"] == ["theme=dark"]
    assert seen["client_ip"] == "203.0.113.9" and seen["delivery_id"] is None
    job = Job.objects.get()
    assert (job.trigger, job.trigger_name, job.function_name) == (Trigger.ROUTE, "/hello/{name}", "echo")
    assert job.route_id is not None and job.args == [seen]


def test_custom_status_headers_and_a_binary_body_round_trip(alice, echo):
    make_route(echo, "/blob", methods=["PUT"])
    blob = bytes(range(256)) * 4

    def respond(request):
        assert request["is_base64"] is True
        body = base64.b64decode(request["body"])[::-1]
        return "succeeded", {"status": 201, "headers": {"Content-Type": "application/octet-stream",
                             "X-Size": str(len(body)), "Set-Cookie": "sessionid=stolen"},
                             "body": base64.b64encode(body).decode(), "is_base64": True}, None  # fmt: skip

    with Finisher(alice.tenant, respond):
        answer = fetch("PUT", "/fn/acme/blob", body=blob)
    assert answer["status"] == 201 and answer["body"] == blob[::-1]
    assert header(answer, "content-type") == "application/octet-stream"
    assert header(answer, "x-size") == str(len(blob)) and header(answer, "set-cookie") is None
    assert header(answer, "content-length") == str(len(blob))


def test_a_failing_function_is_a_502_with_its_job_and_no_traceback_unless_exposed(alice, echo):
    route = make_route(echo, "/boom")
    error = {"type": "ValueError", "message": "no", "traceback": "Traceback (most recent call last): ..."}
    with Finisher(alice.tenant, lambda request: ("failed", None, error)):
        answer = fetch("GET", "/fn/acme/boom")
        route.expose_errors = True
        route.save()
        exposed = fetch("GET", "/fn/acme/boom")
    refused(answer, 502, "function_failed")
    details = json.loads(answer["body"])["error"]["details"]
    assert set(details) == {"job_id", "status"} and b"Traceback" not in answer["body"]
    assert json.loads(exposed["body"])["error"]["details"]["error"] == error
    with Finisher(alice.tenant, lambda request: ("timed_out", None, {"type": "Timeout"})):
        refused(fetch("GET", "/fn/acme/boom"), 504, "function_timeout")


def test_a_job_that_does_not_finish_in_time_is_a_504_with_its_location(alice, echo, settings):
    settings.ROUTE_WAIT_S = 0.3
    make_route(echo, "/slow")
    answer = fetch("GET", "/fn/acme/slow")
    refused(answer, 504, "function_pending")
    assert header(answer, "location") == f"/api/v1/jobs/{Job.objects.get().id}"


def test_an_async_route_answers_202_with_the_job_s_location(alice, echo):
    make_route(echo, "/later", mode="async")
    answer = fetch("POST", "/fn/acme/later", body=b"{}")
    job = Job.objects.get()
    assert answer["status"] == 202 and header(answer, "location") == f"/api/v1/jobs/{job.id}"
    assert json.loads(answer["body"]) == {"id": str(job.id), "links": {"self": f"/api/v1/jobs/{job.id}"}}


def test_unknown_tenants_paths_deleted_routes_and_methods(alice, bob, echo):
    route = make_route(echo, "/only-post", methods=["POST"])
    make_function(bob.tenant)
    before = jobs()
    refused(fetch("POST", "/fn/globex/only-post"), 404, "not_found")  # another tenant's slug
    refused(fetch("POST", "/fn/nobody/only-post"), 404, "not_found")
    refused(fetch("POST", "/fn/acme/elsewhere"), 404, "not_found")
    wrong = fetch("GET", "/fn/acme/only-post")
    refused(wrong, 405, "method_not_allowed")
    assert header(wrong, "allow") == "POST"
    assert call(alice, "DELETE", f"/api/v1/functions/echo/routes/{route.id}").status_code == 204
    refused(fetch("POST", "/fn/acme/only-post"), 404, "not_found")
    refused(fetch("POST", "/fn/acme/only-post", host="evil.example"), 400, "bad_request")
    assert jobs() == before


def test_an_oversize_body_is_a_413_without_a_job(alice, echo, settings):
    make_route(echo, "/small", max_body_bytes=1024, mode="async")
    refused(fetch("POST", "/fn/acme/small", body=b"x" * 1025), 413, "payload_too_large")
    settings.ROUTE_MAX_BODY_BYTES = 2048
    refused(fetch("POST", "/fn/acme/small", body=b"x" * 4096), 413, "payload_too_large")
    assert jobs() == 0
    assert fetch("POST", "/fn/acme/small", body=b"x" * 1024)["status"] == 202


def test_the_route_s_rate_limit_is_a_429_with_retry_after_and_no_job(alice, echo):
    quota = alice.tenant.quota
    quota.submissions_per_minute = 3  # refills slowly: what the refusal did not take stays visible
    quota.save()
    make_route(echo, "/limited", mode="async", rate_limit_per_minute=2)
    assert [fetch("GET", "/fn/acme/limited")["status"] for _ in range(2)] == [202, 202]
    answer = fetch("GET", "/fn/acme/limited")
    refused(answer, 429, "rate_limited")
    assert int(header(answer, "retry-after")) >= 1 and jobs() == 2
    # the tenant's own bucket gave no token for the refused request: 2 taken of its 3
    tokens = float(get_redis().hget(f"lambdasite:rate:tenant:{alice.tenant.id}", "tokens"))
    assert 0.9 < tokens < 1.5


def test_cors_preflight_is_answered_by_the_platform(alice, echo):
    make_route(echo, "/api", methods=["POST"], cors=["https://app.example.com"], mode="async")
    asked = [("Origin", "https://app.example.com"), ("Access-Control-Request-Method", "POST"),
             ("Access-Control-Request-Headers", "content-type")]  # fmt: skip
    preflight = fetch("OPTIONS", "/fn/acme/api", headers=asked)
    assert preflight["status"] == 204 and preflight["body"] == b""
    assert header(preflight, "access-control-allow-origin") == "https://app.example.com"
    assert header(preflight, "access-control-allow-methods") == "POST"
    assert header(preflight, "access-control-allow-headers") == "content-type"
    other = fetch("OPTIONS", "/fn/acme/api", headers=[("Origin", "https://evil.example"), asked[1]])
    refused(other, 403, "origin_not_allowed")
    actual = fetch("POST", "/fn/acme/api", headers=[asked[0]], body=b"{}")
    assert actual["status"] == 202
    assert header(actual, "access-control-allow-origin") == "https://app.example.com"
    assert jobs() == 1


# -- auth: each mode accepts a correct request and refuses a wrong one, with no job ------------------


def test_api_key_auth(alice, bob, echo):
    make_route(echo, "/keyed", auth={"type": "api_key"}, mode="async")
    reader = api_key_issue(tenant=alice.tenant, name="reader", created_by=alice.user, scope=ApiKey.Scope.READ)
    for headers in ([], [("Authorization", f"Bearer {bob.key}")], [("Authorization", "Bearer lsk_nope")],
                    [("Authorization", f"Bearer {reader.plaintext}")]):  # fmt: skip
        answer = fetch("POST", "/fn/acme/keyed", headers=headers)
        refused(answer, 401, "unauthenticated")
        assert header(answer, "www-authenticate") == 'Bearer realm="route"'
    assert jobs() == 0
    ok = fetch("POST", "/fn/acme/keyed", headers=[("Authorization", f"Bearer {alice.key}"), ("X-Other", "1")])
    assert ok["status"] == 202
    stored = Job.objects.get()
    assert "authorization" not in stored.args[0]["headers"] and stored.args[0]["headers"]["x-other"] == ["1"]
    assert stored.api_key_id == alice.api_key.id
    assert fetch("POST", "/fn/acme/keyed", headers=[("X-API-Key", alice.key)])["status"] == 202


def test_basic_auth(alice, echo):
    set_secret(alice.tenant, "form-password", "s3cret")
    make_route(
        echo, "/form", auth={"type": "basic", "username": "ada", "secret": "form-password"}, mode="async"
    )

    def basic(user, password):
        return [("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())]

    for headers in ([], basic("ada", "wrong"), basic("eve", "s3cret"), [("Authorization", "Basic !!")]):
        answer = fetch("POST", "/fn/acme/form", headers=headers)
        refused(answer, 401, "unauthenticated")
        assert header(answer, "www-authenticate").startswith("Basic ")
    assert jobs() == 0
    assert fetch("POST", "/fn/acme/form", headers=basic("ada", "s3cret"))["status"] == 202
    assert "authorization" not in Job.objects.get().args[0]["headers"]


HMAC_PRESETS = [
    {"preset": "github"},
    {"preset": "stripe"},
    {"preset": "slack"},
    {"preset": "standard-webhooks"},
    {"preset": "custom", "header": "X-Signature", "algorithm": "sha512", "encoding": "base64",
     "prefix": "v1="},
]  # fmt: skip


@pytest.mark.parametrize("settings_", HMAC_PRESETS, ids=lambda s: s["preset"])
def test_hmac_auth(alice, echo, settings_):
    key = "whsec_c2VjcmV0LWtleS1mb3ItdGhlLXRlc3Q=" if settings_["preset"] == "standard-webhooks" else "k3y"
    set_secret(alice.tenant, "signing", key)
    make_route(echo, "/webhook", methods=["POST"], auth={"type": "hmac", "secret": "signing", **settings_},
               mode="async")  # fmt: skip
    scheme = Scheme(**{k: v for k, v in settings_.items()})
    body = json.dumps({"id": "evt_1", "event_id": "Ev1", "n": 1}).encode()
    app = RouteServer(django_asgi_app, clock=lambda: NOW)
    good = list(sign(scheme, key, body, at=int(NOW), delivery_id="msg_1").items())
    forged = list(sign(scheme, "not the key", body, at=int(NOW), delivery_id="msg_1").items())
    refused(fetch("POST", "/fn/acme/webhook", headers=forged, body=body, app=app), 401, "invalid_signature")
    refused(fetch("POST", "/fn/acme/webhook", body=body, app=app), 401, "invalid_signature")
    refused(
        fetch("POST", "/fn/acme/webhook", headers=good, body=body + b" ", app=app), 401, "invalid_signature"
    )
    assert jobs() == 0
    assert fetch("POST", "/fn/acme/webhook", headers=good, body=body, app=app)["status"] == 202
    stored = Job.objects.get().args[0]
    assert {name.lower() for name, _ in good} <= set(stored["headers"])  # signatures reach the function


@pytest.mark.parametrize("preset", ["stripe", "slack", "standard-webhooks"])
def test_a_signature_outside_the_replay_window_is_refused(alice, echo, preset):
    key = "whsec_c2VjcmV0LWtleS1mb3ItdGhlLXRlc3Q="
    set_secret(alice.tenant, "signing", key)
    make_route(echo, "/webhook", auth={"type": "hmac", "preset": preset, "secret": "signing"}, mode="async")
    body = b'{"id": "evt_1"}'
    app = RouteServer(django_asgi_app, clock=lambda: NOW)
    for at in (NOW - 301, NOW + 301):
        headers = list(sign(Scheme(preset), key, body, at=int(at), delivery_id="m").items())
        refused(
            fetch("POST", "/fn/acme/webhook", headers=headers, body=body, app=app), 401, "signature_expired"
        )
    assert jobs() == 0
    headers = list(sign(Scheme(preset), key, body, at=int(NOW - 299), delivery_id="m").items())
    assert fetch("POST", "/fn/acme/webhook", headers=headers, body=body, app=app)["status"] == 202


def test_a_route_whose_secret_is_gone_is_unavailable_without_a_job(alice, echo):
    from vault.services import Actor, secret_delete

    set_secret(alice.tenant, "signing", "k")
    make_route(echo, "/webhook", auth={"type": "hmac", "preset": "github", "secret": "signing"})
    secret_delete(tenant=alice.tenant, name="signing", actor=Actor("test", is_owner=True))
    headers = list(sign(Scheme("github"), "k", b"{}", at=0).items())
    refused(fetch("POST", "/fn/acme/webhook", headers=headers, body=b"{}"), 503, "route_unavailable")
    assert jobs() == 0


# -- one job per delivery ----------------------------------------------------------------------------


def test_the_same_delivery_twice_is_one_job_and_the_same_answer(alice, echo):
    set_secret(alice.tenant, "signing", "k3y")
    make_route(
        echo, "/github", methods=["POST"], auth={"type": "hmac", "preset": "github", "secret": "signing"}
    )
    body = b'{"action": "opened"}'
    headers = list(sign(Scheme("github"), "k3y", body, at=0, delivery_id="72d3162e-cc78").items())
    calls = []

    def respond(request):
        calls.append(request["delivery_id"])
        return "succeeded", {"status": 200, "body": f"run {len(calls)}"}, None

    with Finisher(alice.tenant, respond):
        first = fetch("POST", "/fn/acme/github", headers=headers, body=body)
        again = fetch("POST", "/fn/acme/github", headers=headers, body=body)
    assert first["status"] == again["status"] == 200
    assert first["body"] == again["body"] == b"run 1" and calls == ["72d3162e-cc78"]
    assert jobs() == 1
    changed = fetch("POST", "/fn/acme/github", headers=list(sign(Scheme("github"), "k3y", b"{}", at=0,
                    delivery_id="72d3162e-cc78").items()), body=b"{}")  # fmt: skip
    refused(changed, 422, "idempotency_conflict")
    assert jobs() == 1


def test_a_re_signed_stripe_retry_is_the_same_delivery(alice, echo):
    """Stripe signs every retry anew (a new t=): the event id and the body make the delivery."""
    set_secret(alice.tenant, "stripe", "whsec_abc")
    make_route(echo, "/stripe", methods=["POST"], mode="async",
               auth={"type": "hmac", "preset": "stripe", "secret": "stripe"})  # fmt: skip
    body = b'{"id": "evt_1NG8Du2eZvKYlo2CUI79vXWy", "type": "invoice.paid"}'
    locations = set()
    for at in (time.time() - 60, time.time()):
        headers = list(sign(Scheme("stripe"), "whsec_abc", body, at=int(at)).items())
        answer = fetch("POST", "/fn/acme/stripe", headers=headers, body=body)
        assert answer["status"] == 202
        locations.add(header(answer, "location"))
    assert len(locations) == 1 and jobs() == 1
    assert Job.objects.get().args[0]["delivery_id"] == "evt_1NG8Du2eZvKYlo2CUI79vXWy"


def test_a_route_configured_delivery_header(alice, echo):
    make_route(echo, "/orders", mode="async", delivery_header="Idempotency-Key")
    for _ in range(2):
        assert (
            fetch("POST", "/fn/acme/orders", headers=[("Idempotency-Key", "o-1")], body=b"{}")["status"]
            == 202
        )
    fetch("POST", "/fn/acme/orders", headers=[("Idempotency-Key", "o-2")], body=b"{}")
    assert jobs() == 2


# -- replay -----------------------------------------------------------------------------------------


def test_replay_runs_the_stored_request_as_another_version(alice, echo):
    make_route(echo, "/hook", mode="async")
    fetch("POST", "/fn/acme/hook", headers=[("Cookie", "sessionid=s")], body=b'{"n": 1}')
    first = Job.objects.get()
    version_create(function=echo, user=None, spec=VersionSpec(code="def main(request):\n    return 2\n"))
    answer = call(alice, "POST", f"/api/v1/jobs/{first.id}/replay", {"qualifier": "2"})
    assert answer.status_code == 202, answer.json()
    again = Job.objects.get(pk=answer.json()["id"])
    assert again.version_number == 2 and first.version_number == 1
    assert again.args == first.args and again.route_id == first.route_id
    assert (again.trigger, again.trigger_name) == (Trigger.API_KEY, alice.api_key.name)
    refused_answer = call(alice, "POST", f"/api/v1/jobs/{first.id}/replay", {"qualifier": "9"})
    assert refused_answer.status_code == 404
