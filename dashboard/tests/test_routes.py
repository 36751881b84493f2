"""Routes on the dashboard (Django's test client, PostgreSQL and Redis): listed on their function's
page, added and changed on a form page (POST/redirect/GET, refusals beside their fields), deleted;
a route's job shows the request and the response, and is replayed against another version."""

from __future__ import annotations

import pytest

from accounts.models import Membership
from accounts.services import membership_set, user_get_or_create
from functions.services.deploy import VersionSpec, version_create
from jobs.models import Job, Trigger
from routes.models import Route
from routes.services import serve
from routes.tests.support import finish, make_function, make_route, set_secret

pytestmark = pytest.mark.django_db


@pytest.fixture
def echo(alice):
    return make_function(alice.tenant)


def signed_in(client, user):
    client.force_login(user)
    return client


def viewer_of(persona):
    user = user_get_or_create(email="vera@acme.test", password="pw-vera")
    membership_set(tenant=persona.tenant, user=user, role=Membership.Role.VIEWER)
    return user


def form(**fields) -> dict:
    base = {"path": "/hello/{name}", "methods": ["GET", "POST"], "qualifier": "", "mode": "sync",
            "auth_type": "none", "preset": "github", "algorithm": "sha256", "encoding": "hex",
            "max_body_bytes": "", "rate_limit_per_minute": "0", "cors": ""}  # fmt: skip
    return {**base, **fields}


def test_the_function_page_lists_its_routes(client, alice, echo):
    set_secret(alice.tenant, "gh", "k")
    make_route(echo, "/github", methods=["POST"], auth={"type": "hmac", "preset": "github", "secret": "gh"})
    page = signed_in(client, alice.user).get("/app/functions/echo/").content.decode()
    assert 'id="routes"' in page and "http://testserver/fn/acme/github" in page
    assert "GitHub signature" in page and "Add a route" in page and ">Delete<" in page


def test_a_route_is_added_with_post_redirect_get(client, alice, echo):
    answer = signed_in(client, alice.user).post(
        "/app/functions/echo/routes/new", form(rate_limit_per_minute="60")
    )
    assert answer.status_code == 302 and answer["Location"] == "/app/functions/echo/#routes"
    route = Route.objects.get()
    assert (route.path, route.methods, route.rate_limit_per_minute) == ("/hello/{name}", ["GET", "POST"], 60)
    assert "Route /hello/{name} added." in client.get("/app/functions/echo/").content.decode()


@pytest.mark.parametrize(
    "fields, name, words",
    [
        ({"path": "nope"}, "path", "Must start with /"),
        ({"methods": []}, "methods", "A non-empty list"),
        ({"auth_type": "hmac", "secret": "missing"}, "auth", "no secret named missing"),
        ({"max_body_bytes": "lots"}, "max_body_bytes", "Enter a whole number."),
        ({"cors": "https://a.example/x"}, "cors", "without a path"),
    ],
)
def test_a_refusal_is_shown_beside_its_field(client, alice, echo, fields, name, words):
    answer = signed_in(client, alice.user).post("/app/functions/echo/routes/new", form(**fields))
    page = answer.content.decode()
    assert answer.status_code == 400 and not Route.objects.exists()
    assert f'id="{name}-error"' in page and words in page, page[page.find("field-error") - 200 :][:600]


def test_a_route_is_changed_and_deleted(client, alice, echo):
    route = make_route(echo, "/a")
    signed_in(client, alice.user)
    edit = client.get(f"/app/functions/echo/routes/{route.id}/").content.decode()
    assert 'value="/a"' in edit and "Save route" in edit
    answer = client.post(f"/app/functions/echo/routes/{route.id}/", form(path="/b", mode="async"))
    assert answer.status_code == 302
    route.refresh_from_db()
    assert (route.path, route.mode) == ("/b", "async")
    assert client.post(f"/app/functions/echo/routes/{route.id}/delete").status_code == 302
    assert not Route.objects.exists()


def test_viewers_and_other_tenants_change_nothing(client, alice, bob, echo):
    route = make_route(echo, "/a")
    viewer = signed_in(client, viewer_of(alice))
    page = viewer.get("/app/functions/echo/").content.decode()
    assert "/fn/acme/a" in page and "Add a route" not in page
    assert viewer.post("/app/functions/echo/routes/new", form()).status_code == 403
    assert viewer.post(f"/app/functions/echo/routes/{route.id}/delete").status_code == 403
    other = signed_in(client, bob.user)
    assert other.get(f"/app/functions/echo/routes/{route.id}/").status_code == 404
    assert other.post(f"/app/functions/echo/routes/{route.id}/delete").status_code == 404
    assert Route.objects.count() == 1


def delivered(tenant, route) -> Job:
    incoming = serve.Incoming(
        method="POST", slug="acme", raw_path="/a", path="/a", query_string=b"x=1",
        headers=[("content-type", "text/plain"), ("x-hub", "sig")], body=b"hello", client_ip="203.0.113.9",
    )  # fmt: skip
    accepted = serve.route_request(incoming)
    return Job.objects.get(pk=accepted.job_id)


def test_a_route_s_job_shows_its_request_and_response_and_is_replayed(client, alice, echo):
    route = make_route(echo, "/a", mode="async")
    job = delivered(alice.tenant, route)
    finish(job, "succeeded", {"status": 201, "headers": {"X-Made": "yes"}, "body": "made it"})
    version_create(function=echo, user=None, spec=VersionSpec(code="def main(request):\n    return 2\n"))
    page = signed_in(client, alice.user).get(f"/app/jobs/{job.id}/").content.decode()
    assert 'id="exchange"' in page and "POST /a?x=1" in page and "x-hub" in page and "hello" in page
    assert ">201<" in page and "x-made" in page and "made it" in page and "Replay" in page
    assert "route</span> <code>/a</code>" in page
    answer = client.post(f"/app/jobs/{job.id}/replay", {"qualifier": "2"})
    again = Job.objects.exclude(pk=job.pk).get()
    assert answer.status_code == 302 and answer["Location"] == f"/app/jobs/{again.id}/"
    assert again.version_number == 2 and again.args == job.args and again.route_id == route.id
    assert (again.trigger, again.submitted_by_id) == (Trigger.DASHBOARD, alice.user.pk)
    viewer = signed_in(client, viewer_of(alice))
    assert "Replay</button>" not in viewer.get(f"/app/jobs/{job.id}/").content.decode()
    assert viewer.post(f"/app/jobs/{job.id}/replay", {"qualifier": "2"}).status_code == 403
