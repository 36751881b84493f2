"""API keys follow their people: a user key lives only while its creator is an active member;
operator keys are explicit, never the accidental result of a missing creator."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.core.management import call_command
from rest_framework.test import APIClient

from accounts.models import ApiKey, Membership
from accounts.services import api_key_issue, membership_remove, membership_set, user_get_or_create
from lambdasite.exceptions import ValidationFailed

pytestmark = pytest.mark.django_db


def client_for(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def member_key(alice):
    dave = user_get_or_create(email="dave@acme.test", password="pw-dave-1")
    membership_set(tenant=alice.tenant, user=dave, role=Membership.Role.MEMBER)
    issued = api_key_issue(tenant=alice.tenant, name="dave's", created_by=dave)
    assert client_for(issued.plaintext).get("/api/v1/jobs").status_code == 200
    return dave, issued


def test_a_removed_members_key_stops_working_even_for_reads(alice, member_key):
    dave, issued = member_key
    membership_remove(tenant=alice.tenant, membership_id=Membership.objects.get(user=dave).id)
    assert client_for(issued.plaintext).get("/api/v1/jobs").status_code == 401
    assert ApiKey.objects.get(pk=issued.api_key.pk).revoked_at is not None  # revoked, visibly


def test_a_membership_deleted_anywhere_disables_the_key_on_the_next_request(alice, member_key):
    dave, issued = member_key
    Membership.objects.filter(user=dave).delete()  # e.g. the admin's inline, bypassing the services
    assert client_for(issued.plaintext).get("/api/v1/jobs").status_code == 401


def test_a_deleted_creators_key_does_not_become_an_operator_key(alice, member_key):
    dave, issued = member_key
    dave.delete()
    key = ApiKey.objects.get(pk=issued.api_key.pk)
    assert key.created_by is None and key.kind == ApiKey.Kind.USER and key.revoked_at is not None
    client = client_for(issued.plaintext)
    assert client.get("/api/v1/jobs").status_code == 401
    assert (
        client.post(
            "/api/v1/jobs", {"runtime": "python", "code": "def main(): pass"}, format="json"
        ).status_code
        == 401
    )


def test_a_deactivated_users_key_stops_working(alice, member_key):
    dave, issued = member_key
    dave.is_active = False
    dave.save()
    assert client_for(issued.plaintext).get("/api/v1/jobs").status_code == 401


def test_a_demoted_members_key_reads_but_no_longer_writes(alice, member_key):
    dave, issued = member_key
    membership_set(tenant=alice.tenant, user=dave, role=Membership.Role.VIEWER)
    client = client_for(issued.plaintext)
    assert client.get("/api/v1/jobs").status_code == 200
    response = client.post("/api/v1/jobs", {"runtime": "python", "code": "def main(): pass"}, format="json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "read_only_key"


def test_operator_keys_are_explicit_and_need_no_member(db, capsys):
    call_command("tenant_create", "hooli")
    call_command("apikey_create", "hooli", "--name", "ci")
    key = capsys.readouterr().out.strip().splitlines()[-1]
    row = ApiKey.objects.get(key_id=key.split("_")[1])
    assert row.kind == ApiKey.Kind.OPERATOR and row.created_by is None
    response = client_for(key).post(
        "/api/v1/jobs", {"runtime": "python", "code": "def main(): pass"}, format="json"
    )
    assert response.status_code == 202
    with pytest.raises(ValidationFailed):
        api_key_issue(tenant=row.tenant, name="no owner")  # a user key needs its member


def test_the_migration_classifies_existing_keys_safely(alice, member_key):
    """Keys from before kinds existed: no creator or a non-member staff issuer -> operator;
    any other creator, including a removed member, -> user (and so refused)."""
    dave, issued = member_key
    staff = user_get_or_create(email="ops@op.test", password="pw-ops-1")
    staff.is_staff = True
    staff.save()
    by_admin = api_key_issue(tenant=alice.tenant, name="admin", created_by=staff, operator=True).api_key
    by_manage = api_key_issue(tenant=alice.tenant, name="cli", operator=True).api_key
    Membership.objects.filter(user=dave).delete()  # removed before the upgrade
    ApiKey.objects.update(kind="user")
    migration = importlib.import_module("accounts.migrations.0002_keys_kind_invitations_log_lines")
    migration.classify_keys(apps, None)
    kinds = dict(ApiKey.objects.values_list("pk", "kind"))
    assert kinds[by_admin.pk] == kinds[by_manage.pk] == "operator"
    assert kinds[issued.api_key.pk] == kinds[alice.api_key.pk] == "user"
    assert client_for(issued.plaintext).get("/api/v1/jobs").status_code == 401


# --- keys cached per process (accounts.authcache): one Redis GET per request instead of a query,
# dropped everywhere at once when anything a key depends on changes


def test_a_cached_key_is_authenticated_without_a_query(alice, redis_conn, django_assert_num_queries):
    from accounts.services import api_key_authenticate

    assert api_key_authenticate(plaintext=alice.key) is not None  # read and cached
    with django_assert_num_queries(0):
        assert api_key_authenticate(plaintext=alice.key).pk == alice.api_key.pk


def test_another_process_revoking_a_key_stops_it_here_on_the_next_request(alice, redis_conn):
    """Another web process changes the database and bumps the generation in Redis (as its commit
    hook does); this process must not trust its cached copy any more."""
    from django.utils import timezone

    from accounts import authcache
    from accounts.services import api_key_authenticate

    assert api_key_authenticate(plaintext=alice.key) is not None
    ApiKey.objects.filter(pk=alice.api_key.pk).update(revoked_at=timezone.now())  # no signal here
    assert api_key_authenticate(plaintext=alice.key) is not None  # still the cached copy: the control
    redis_conn.incr(authcache.GENERATION_KEY)  # what the other process's commit does
    assert api_key_authenticate(plaintext=alice.key) is None


def test_a_change_made_behind_djangos_back_is_stale_for_at_most_the_age_cap(
    alice, redis_conn, settings, monkeypatch
):
    from django.utils import timezone

    from accounts import authcache
    from accounts.services import api_key_authenticate

    now = [1000.0]
    monkeypatch.setattr(authcache._keys, "clock", lambda: now[0])
    settings.API_KEY_CACHE_MAX_AGE_S = 0.5
    assert api_key_authenticate(plaintext=alice.key) is not None
    ApiKey.objects.filter(pk=alice.api_key.pk).update(revoked_at=timezone.now())
    now[0] += 0.4
    assert api_key_authenticate(plaintext=alice.key) is not None  # the cached copy, within the cap
    now[0] += 0.1
    assert api_key_authenticate(plaintext=alice.key) is None


@pytest.mark.parametrize(
    "change",
    ["suspend_tenant", "shrink_quota", "demote_creator", "deactivate_creator", "revoke_key"],
)
def test_every_change_a_key_depends_on_is_seen_by_the_next_request(alice, redis_conn, change):
    from accounts.services import api_key_authenticate

    cached = api_key_authenticate(plaintext=alice.key)
    assert cached is not None
    if change == "suspend_tenant":
        alice.tenant.is_suspended = True
        alice.tenant.save()
    elif change == "shrink_quota":
        alice.tenant.quota.max_concurrency = 1
        alice.tenant.quota.save()
    elif change == "demote_creator":
        Membership.objects.filter(tenant=alice.tenant, user=alice.user).update(role="viewer")
        Membership.objects.get(tenant=alice.tenant, user=alice.user).save()  # as a form saves it
    elif change == "deactivate_creator":
        alice.user.is_active = False
        alice.user.save()
    else:
        key = ApiKey.objects.get(pk=alice.api_key.pk)
        key.revoked_at = key.created_at
        key.save()
    fresh = api_key_authenticate(plaintext=alice.key)
    assert fresh is not cached  # read again
    if change == "suspend_tenant":
        assert fresh.tenant.is_suspended
    elif change == "shrink_quota":
        assert fresh.tenant.quota.max_concurrency == 1
    elif change == "demote_creator":
        assert fresh.creator_role == "viewer"
    else:
        assert fresh is None


def test_without_redis_nothing_is_cached(alice, monkeypatch, django_assert_num_queries):
    from accounts import authcache
    from accounts.services import api_key_authenticate

    def no_redis():
        raise ConnectionError("Redis is away")

    monkeypatch.setattr(authcache, "get_redis", no_redis)
    assert api_key_authenticate(plaintext=alice.key) is not None
    with django_assert_num_queries(1):
        assert api_key_authenticate(plaintext=alice.key) is not None
