"""Dashboard authorisation as a review attacked it: writes checked against the tenant they act on,
no tenant switch by GET, no membership without consent, no account disclosure, throttled sign-in."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts.models import Invitation, Membership
from accounts.services import membership_set, tenant_create, user_get_or_create
from jobs.models import Job, Status

from .pages import ADD, signed_in

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def carol(alice, bob):
    """A member of Acme (her current tenant) and only a viewer of Globex."""
    user = user_get_or_create(email="carol@both.test", password="pw-carol-1")
    membership_set(tenant=alice.tenant, user=user, role=Membership.Role.MEMBER)
    membership_set(tenant=bob.tenant, user=user, role=Membership.Role.VIEWER)
    return user


def test_a_viewer_cannot_cancel_retry_or_delete_through_a_tenant_where_she_writes(alice, bob, carol):
    web = signed_in(carol)
    web.post("/app/switch", {"tenant": alice.tenant.slug})  # acting as a member of Acme
    job_id = bob.post_job(ADD).json()["id"]  # a job of Globex, where carol only views
    for action in ("cancel", "retry", "delete"):
        response = web.post(f"/app/jobs/{job_id}/{action}")
        assert response.status_code == 403, action
        assert b"you are viewer" in response.content
    job = Job.objects.get(pk=job_id)
    assert job.status in (Status.QUEUED, Status.DISPATCHED) and not job.cancel_requested
    Job.objects.filter(pk=job_id).update(status=Status.FAILED)
    assert web.post(f"/app/jobs/{job_id}/retry").status_code == 403
    assert web.post(f"/app/jobs/{job_id}/delete").status_code == 403
    assert Job.objects.get(pk=job_id).status == Status.FAILED
    # where she is a member, the same actions work
    mine = alice.post_job(ADD).json()["id"]
    assert web.post(f"/app/jobs/{mine}/cancel").status_code == 302
    assert Job.objects.get(pk=mine).status == Status.CANCELLED


def test_a_get_never_switches_the_current_tenant(alice, bob, carol):
    web = signed_in(carol)
    web.post("/app/switch", {"tenant": alice.tenant.slug})
    theirs = bob.post_job(ADD).json()["id"]
    page = web.get(f"/app/jobs/{theirs}/")
    assert page.status_code == 200 and b"This page belongs to Globex" in page.content
    assert b"Edit and run again" not in page.content  # no write controls as a viewer there
    for path in (
        f"/app/jobs/{theirs}/",
        f"/app/jobs/{theirs}/lines",
        f"/app/switch?tenant={bob.tenant.slug}",
    ):
        web.get(path)
    assert web.session["tenant_id"] == alice.tenant.id
    # a submission from the editor therefore lands in Acme
    web.post(
        "/app/jobs/new",
        {
            "runtime": "python",
            "handler": "main",
            "code": ADD["code"],
            "args": "[1, 2]",
            "timeout_ms": "1000",
            "memory_mb": "128",
            "max_retries": "0",
        },
    )
    assert (
        Job.objects.filter(tenant=alice.tenant).count() == 1
        and Job.objects.filter(tenant=bob.tenant).count() == 1
    )


def test_nobody_becomes_a_member_without_accepting(alice, bob):
    """An owner cannot pull an existing account into a tenant (where it would default, and capture
    its dashboard submissions and new keys)."""
    attacker = signed_in(bob.user)
    invited = attacker.post(
        "/app/members/", {"action": "invite", "email": alice.user.username, "role": "owner"}, follow=True
    )
    assert invited.status_code == 200 and invited.redirect_chain == [("/app/members/", 302)]
    assert not Membership.objects.filter(tenant=bob.tenant, user=alice.user).exists()
    victim = signed_in(alice.user)
    assert victim.get("/app/").context["request"].ctx.tenant == alice.tenant
    listing = victim.get("/app/invitations/")
    assert b"Globex" in listing.content
    invitation = Invitation.objects.get(tenant=bob.tenant, email=alice.user.username)
    # someone else cannot accept it for her
    outsider = user_get_or_create(email="mallory@x.test", password="pw-mallory")
    signed_in(outsider).post("/app/invitations/", {"invitation": invitation.id, "action": "accept"})
    assert not Membership.objects.filter(tenant=bob.tenant, user=outsider).exists()
    victim.post("/app/invitations/", {"invitation": invitation.id, "action": "decline"})
    assert not Membership.objects.filter(tenant=bob.tenant).exclude(user=bob.user).exists()
    # a fresh invitation she accepts makes her a member, but her session stays in her own tenant
    attacker.post("/app/members/", {"action": "invite", "email": alice.user.username, "role": "member"})
    invitation = Invitation.objects.get(tenant=bob.tenant, email=alice.user.username, closed_at=None)
    victim.post("/app/invitations/", {"invitation": invitation.id, "action": "accept"})
    assert Membership.objects.get(tenant=bob.tenant, user=alice.user).role == "member"
    assert victim.get("/app/").context["request"].ctx.tenant == alice.tenant


def test_a_new_session_starts_in_the_first_tenant_joined_not_the_alphabetically_first(alice):
    aardvark = tenant_create(slug="aardvark", name="Aardvark")
    membership_set(tenant=aardvark, user=alice.user, role=Membership.Role.OWNER)  # joined after acme
    assert signed_in(alice.user).get("/app/").context["request"].ctx.tenant == alice.tenant


def _without_volatile(html: str) -> str:
    html = re.sub(r"csrfmiddlewaretoken\" value=\"[^\"]+", "", html)
    html = re.sub(r"/app/invite/[^\"]+", "", html)
    html = re.sub(r"<time[^>]*>.*?</time>", "", html)
    return re.sub(r"data-invitation=\"\d+\"|name=\"invitation\" value=\"\d+\"", "", html)


def test_inviting_says_nothing_about_whether_an_account_exists(alice, bob):
    web = signed_in(alice.user)
    exists = web.post(
        "/app/members/", {"action": "invite", "email": bob.user.username, "role": "viewer"}, follow=True
    )
    Invitation.objects.filter(tenant=alice.tenant).update(
        closed_at="2000-01-01T00:00:00Z"
    )  # so both pages list one
    missing = web.post(
        "/app/members/", {"action": "invite", "email": "nobody@nowhere.test", "role": "viewer"}, follow=True
    )
    assert exists.status_code == missing.status_code == 200
    same = _without_volatile(exists.content.decode()).replace(bob.user.username, "EMAIL")
    other = _without_volatile(missing.content.decode()).replace("nobody@nowhere.test", "EMAIL")
    assert same == other


def test_the_last_owner_guard_holds_on_every_path(alice):
    web = signed_in(alice.user)
    me = Membership.objects.get(tenant=alice.tenant, user=alice.user)
    for form in (
        {"action": "role", "membership": me.id, "role": "viewer"},
        {"action": "remove", "membership": me.id},
        {"action": "invite", "email": alice.user.username, "role": "viewer"},
        {
            "action": "add",
            "email": alice.user.username,
            "role": "viewer",
        },  # the old "add" path demoted silently
    ):
        web.post("/app/members/", form)
        assert Membership.objects.get(pk=me.id).role == "owner", form


def test_removing_a_member_revokes_their_keys(alice):
    web = signed_in(alice.user)
    dave = user_get_or_create(email="dave@acme.test", password="pw-dave-1")
    membership_set(tenant=alice.tenant, user=dave, role=Membership.Role.MEMBER)
    created = signed_in(dave).post("/app/keys/", {"name": "dave's", "scope": "write"}, follow=True)
    key = re.search(r"lsk_[a-z0-9]{8}_[A-Za-z0-9_-]{43}", created.content.decode()).group(0)
    assert Client().get("/api/v1/jobs", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    membership = Membership.objects.get(tenant=alice.tenant, user=dave)
    web.post("/app/members/", {"action": "remove", "membership": membership.id})
    response = Client().get("/api/v1/jobs", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 401


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_sign_in_is_throttled_per_account_and_per_address(alice, settings, path):
    settings.LOGIN_ATTEMPTS_PER_ACCOUNT_PER_MINUTE = 5
    client = Client()
    statuses = [
        client.post(path, {"username": alice.user.username, "password": f"guess-{i}"}).status_code
        for i in range(7)
    ]
    assert statuses[:5] == [200] * 5 and statuses[5:] == [429, 429]
    refused = client.post(path, {"username": alice.user.username, "password": "pw-acme"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1  # even the right password waits
    settings.LOGIN_ATTEMPTS_PER_IP_PER_MINUTE = 8
    other = [
        client.post(path, {"username": f"user{i}@x.test", "password": "x"}).status_code for i in range(10)
    ]
    assert 429 in other  # many accounts from one address run into the address's bucket
