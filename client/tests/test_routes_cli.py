"""`lambdasite route …` in process: the client's own HTTP code answered by the Django app through its
test client (PostgreSQL and Redis real, no server process)."""

from __future__ import annotations

import pytest

from jobs.models import Job
from routes.models import Route
from routes.services import serve
from routes.tests.support import make_function, make_route, set_secret

from . import test_secrets_cli

api, cli = test_secrets_cli.api, test_secrets_cli.cli  # the fixtures: the app answering the client

pytestmark = pytest.mark.django_db


def test_route_add_list_and_rm(cli, alice):
    make_function(alice.tenant, name="hooks")
    set_secret(alice.tenant, "github", "k")
    hmac = ["--auth", "hmac", "--preset", "github", "--secret", "github", "--async", "--rate-limit=60"]
    code, out, err = cli("route", "add", "hooks", "/github", "--method", "post", *hmac)
    assert code == 0, err
    assert out.strip() == "http://testserver/fn/acme/github"
    route = Route.objects.get()
    assert route.methods == ["POST"] and route.mode == "async" and route.rate_limit_per_minute == 60
    assert route.auth == {"type": "hmac", "preset": "github", "secret": "github"}
    code, out, _ = cli("route", "list", "hooks")
    assert code == 0 and str(route.id) in out and "hmac:github" in out
    assert cli("route", "rm", "hooks", str(route.id))[0] == 0
    assert not Route.objects.exists()


def test_route_add_refusals(cli, alice):
    make_function(alice.tenant, name="hooks")
    with pytest.raises(SystemExit):
        cli("route", "add", "hooks", "/a", "--auth", "basic", "--user", "ada")  # no --secret
    code, _, err = cli("route", "add", "hooks", "no-slash")
    assert code == 2 and "must start with /" in err


def test_route_replay(cli, alice):
    function = make_function(alice.tenant, name="hooks")
    make_route(function, "/a", mode="async")
    incoming = serve.Incoming("POST", "acme", "/a", "/a", b"", [], b"{}", "203.0.113.9")
    first = serve.route_request(incoming).job_id
    code, out, err = cli("route", "replay", first, "--qualifier", "1")
    assert code == 0, err
    again = Job.objects.get(pk=out.strip())
    assert again.args == Job.objects.get(pk=first).args and again.version_number == 1
