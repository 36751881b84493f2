"""Where the dashboard's forms and the sign-in page send the browser next (dashboard/views/redirects.py):
only to a dashboard page of this site, whatever ``next`` says."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.test import Client, RequestFactory

from accounts.models import Membership
from accounts.services import membership_set, tenant_create
from dashboard.views.redirects import dashboard_path
from functions.tests.support import make_adder
from schedules.models import Schedule

FOREIGN = [
    "https://evil.example/",
    "http://evil.example/app/",
    "//evil.example/app/",
    "/\\evil.example/app/",
    "\\\\evil.example/app/",
    "https:evil.example",
    "http://testserver/app/",  # this site, but a form only ever sends a path
    "javascript:alert(1)",
    "/app/\nLocation: https://evil.example/",
]
ELSEWHERE_ON_THIS_SITE = [
    "/admin/",
    "/api/v1/jobs",
    "/logout/",
    "/app/../admin/",
    "/app/%2e%2e/admin/",
    "/app/%2E%2E/%2E%2E/metrics",
    "/application",
    "app/jobs/",
    "",
]


@pytest.mark.parametrize(
    "target",
    ["/app/", "/app/jobs/", "/app/schedules/nightly/", "/app/jobs/?status=failed", "/password/"],
)
def test_dashboard_pages_are_allowed(rf: RequestFactory, target):
    assert dashboard_path(rf.get("/"), target)


@pytest.mark.parametrize("target", FOREIGN + ELSEWHERE_ON_THIS_SITE)
def test_anything_else_is_not(rf: RequestFactory, target):
    assert not dashboard_path(rf.get("/"), target)


@pytest.fixture
def nightly(alice):
    make_adder(alice.tenant)
    from schedules.services import manage

    spec = manage.ScheduleSpec(cron="30 2 * * *", function="adder", args=[1, 2])
    return manage.schedule_create(tenant=alice.tenant, name="nightly", spec=spec)


def signed_in(persona) -> Client:
    client = Client()
    client.force_login(persona.user)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("target", FOREIGN + ELSEWHERE_ON_THIS_SITE)
def test_a_schedule_action_goes_back_only_to_a_dashboard_page(alice, nightly, target):
    """Before: redirect(request.POST["next"]), any URL at all."""
    web = signed_in(alice)
    for action in ("pause", "resume"):
        response = web.post(f"/app/schedules/nightly/{action}", {"next": target})
        assert response.status_code == 302 and response["Location"] == "/app/schedules/", target
    assert Schedule.objects.get().enabled
    back = web.post("/app/schedules/nightly/pause", {"next": "/app/schedules/nightly/"})
    assert back["Location"] == "/app/schedules/nightly/"


@pytest.mark.django_db
@pytest.mark.parametrize("target", FOREIGN + ELSEWHERE_ON_THIS_SITE)
def test_the_tenant_switcher_goes_back_only_to_a_dashboard_page(alice, target):
    second = tenant_create(slug="initech", name="Initech")
    membership_set(tenant=second, user=alice.user, role=Membership.Role.VIEWER)
    response = signed_in(alice).post("/app/switch", {"tenant": "initech", "next": target})
    assert response.status_code == 302 and response["Location"] == "/app/", target


@pytest.mark.django_db
@pytest.mark.parametrize("target", FOREIGN + ELSEWHERE_ON_THIS_SITE)
def test_signing_in_goes_only_to_a_dashboard_page(alice, target):
    web = Client()
    credentials = {"username": alice.user.username, "password": "pw-acme"}
    response = web.post(f"/login/?{urlencode({'next': target})}", credentials)
    assert response.status_code == 302 and response["Location"] == "/app/", target
    web = Client()
    form = web.get("/login/", {"next": target}).content.decode()
    assert "evil" not in form and 'name="next" value=""' in form


@pytest.mark.django_db
def test_signing_in_still_goes_where_the_dashboard_sent_you(alice):
    response = Client().post(
        "/login/?next=/app/jobs/%3Fstatus%3Dfailed", {"username": alice.user.username, "password": "pw-acme"}
    )
    assert response.status_code == 302 and response["Location"] == "/app/jobs/?status=failed"
