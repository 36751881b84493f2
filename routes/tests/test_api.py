"""The routes API: a function's routes created, listed, read, changed and deleted, each refusal
naming its field; another tenant's function or route is a 404."""

from __future__ import annotations

import pytest

from functions.tests.support import call
from routes.models import Route

from .support import make_function, set_secret

pytestmark = pytest.mark.django_db


@pytest.fixture
def echo(alice):
    return make_function(alice.tenant)


def create(persona, body, name="echo"):
    return call(persona, "POST", f"/api/v1/functions/{name}/routes", body)


def test_it_creates_a_route_with_defaults_and_lists_it(alice, echo):
    made = create(alice, {"path": "/hello/{name}"})
    assert made.status_code == 201, made.json()
    body = made.json()
    assert made["Location"] == f"/api/v1/functions/echo/routes/{body['id']}"
    assert {k: body[k] for k in ("function", "path", "url", "methods", "qualifier", "mode", "auth")} == {
        "function": "echo",
        "path": "/hello/{name}",
        "url": "/fn/acme/hello/{name}",
        "methods": ["GET", "POST"],
        "qualifier": "",
        "mode": "sync",
        "auth": {"type": "none"},
    }
    assert body["max_body_bytes"] == 64 * 1024 and body["cors"] == [] and body["rate_limit_per_minute"] == 0
    listed = call(alice, "GET", "/api/v1/functions/echo/routes").json()
    assert [r["id"] for r in listed] == [body["id"]]
    assert call(alice, "GET", f"/api/v1/functions/echo/routes/{body['id']}").json() == body


def test_it_changes_and_deletes_a_route(alice, echo):
    set_secret(alice.tenant, "gh", "k")
    route_id = create(alice, {"path": "/gh", "methods": ["POST"]}).json()["id"]
    changed = call(
        alice,
        "PATCH",
        f"/api/v1/functions/echo/routes/{route_id}",
        {"auth": {"type": "hmac", "preset": "github", "secret": "gh"}, "mode": "async", "cors": ["*"]},
    )
    assert changed.status_code == 200, changed.json()
    assert changed.json()["auth"] == {"type": "hmac", "preset": "github", "secret": "gh"}
    assert changed.json()["mode"] == "async" and changed.json()["path"] == "/gh"
    assert call(alice, "DELETE", f"/api/v1/functions/echo/routes/{route_id}").status_code == 204
    assert call(alice, "GET", f"/api/v1/functions/echo/routes/{route_id}").status_code == 404
    assert not Route.objects.exists()


@pytest.mark.parametrize(
    "body, field, message",
    [
        ({"path": "nope"}, "path", "must start with /"),
        ({"path": "/a", "methods": ["FETCH"]}, "methods", None),
        ({"path": "/a", "methods": []}, "methods", None),
        ({"path": "/a", "mode": "later"}, "mode", None),
        ({"path": "/a", "qualifier": "9"}, "qualifier", "no version 9"),
        ({"path": "/a", "qualifier": "prod"}, "qualifier", "no alias 'prod'"),
        ({"path": "/a", "auth": {"type": "magic"}}, "auth", "type is one of"),
        ({"path": "/a", "auth": {"type": "hmac", "preset": "github", "secret": "x"}}, "auth", "set it first"),
        ({"path": "/a", "auth": {"type": "hmac", "preset": "paypal", "secret": "s"}}, "auth", "preset"),
        ({"path": "/a", "auth": {"type": "none", "secret": "s"}}, "auth", "not a setting of none"),
        ({"path": "/a", "auth": {"type": "basic", "username": "a:b", "secret": "s"}}, "auth", "without ':'"),
        ({"path": "/a", "auth": {"type": "hmac", "preset": "github", "secret": "s", "header": "X"}}, "auth",
         "only for the custom preset"),
        ({"path": "/a", "auth": {"type": "hmac", "preset": "custom", "secret": "s"}}, "auth", "header"),
        ({"path": "/a", "auth": {"type": "hmac", "preset": "custom", "secret": "s", "header": "X-Sig",
                                 "algorithm": "md5"}}, "auth", None),
        ({"path": "/a", "cors": ["https://a.example/path"]}, "cors", "without a path"),
        ({"path": "/a", "max_body_bytes": 10**9}, "max_body_bytes", "1 to"),
        ({"path": "/a", "delivery_header": "X Bad"}, "delivery_header", None),
        ({"path": "/a", "expose_errors": "yes"}, "expose_errors", None),
        ({"path": "/a", "colour": "red"}, "colour", "unknown field"),
    ],
)  # fmt: skip
def test_each_refusal_names_its_field(alice, echo, body, field, message):
    set_secret(alice.tenant, "s", "k")
    answer = create(alice, body)
    assert answer.status_code == 400, answer.json()
    fields = answer.json()["error"]["details"]["fields"]
    assert field in fields, fields
    if message:
        assert message in str(fields[field])


def test_two_routes_of_one_shape_conflict(alice, echo):
    assert create(alice, {"path": "/hello/{name}"}).status_code == 201
    answer = create(alice, {"path": "/hello/{who}"})
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "route_exists"


def test_the_tenant_s_cap_on_routes(alice, echo, settings):
    settings.ROUTES_MAX_PER_TENANT = 1
    assert create(alice, {"path": "/a"}).status_code == 201
    answer = create(alice, {"path": "/b"})
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "quota_exceeded"


def test_another_tenant_s_function_and_route_are_not_found(alice, bob, echo):
    route_id = create(alice, {"path": "/a"}).json()["id"]
    make_function(bob.tenant)
    assert create(bob, {"path": "/a"}, name="nope").status_code == 404
    assert call(bob, "GET", f"/api/v1/functions/echo/routes/{route_id}").status_code == 404
    assert call(bob, "DELETE", f"/api/v1/functions/echo/routes/{route_id}").status_code == 404
    assert call(alice, "GET", "/api/v1/functions/echo/routes/not-a-uuid").status_code == 404
    assert Route.objects.count() == 1


def test_deleting_the_function_deletes_its_routes(alice, echo):
    create(alice, {"path": "/a"})
    assert call(alice, "DELETE", "/api/v1/functions/echo").status_code == 204
    assert not Route.objects.exists()


def test_only_a_route_s_job_can_be_replayed(alice):
    job_id = alice.post_job({"runtime": "python", "code": "def main():\n    return 1\n"}).json()["id"]
    answer = call(alice, "POST", f"/api/v1/jobs/{job_id}/replay", {"qualifier": "1"})
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "not_replayable"
    assert (
        call(alice, "POST", "/api/v1/jobs/00000000-0000-0000-0000-000000000000/replay", {}).status_code == 404
    )
