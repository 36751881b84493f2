"""The per-process key cache (accounts/authcache.py) against real PostgreSQL and Redis, with Redis
failures injected: a revocation that returns has been seen by every process."""

from __future__ import annotations

import pytest
import redis
from rest_framework.test import APIClient

from accounts import authcache
from accounts.models import ApiKey, Membership
from accounts.services import (
    api_key_authenticate,
    api_key_issue,
    api_key_revoke,
    membership_remove,
    membership_set,
    user_get_or_create,
)
from lambdasite.exceptions import ServiceUnavailable
from lambdasite.redis_client import get_redis

pytestmark = pytest.mark.django_db(transaction=True)  # commits happen: on_commit hooks run


class FlakyRedis:
    """The real client, but INCR fails after ``ok_incrs`` successful calls (a Redis that is
    readable yet refuses or loses the bump: a restart, a failover, a full memory)."""

    def __init__(self, ok_incrs: int = 0) -> None:
        self.real = get_redis()
        self.ok_incrs = ok_incrs

    def incr(self, *args, **kwargs):
        if self.ok_incrs <= 0:
            raise redis.exceptions.ConnectionError("injected: INCR failed")
        self.ok_incrs -= 1
        return self.real.incr(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.real, name)


@pytest.fixture
def no_waiting(monkeypatch):
    monkeypatch.setattr(authcache, "_BUMP_ATTEMPTS", (0.0, 0.0, 0.0), raising=False)


def another_process_caches(plaintext: str) -> dict:
    """Authenticate once so the key is cached; -> the cache as another web process holds it."""
    assert api_key_authenticate(plaintext=plaintext) is not None
    cached = dict(authcache._keys._entries)
    assert cached, "the key was not cached"
    return cached


def as_held_by(elsewhere: dict) -> None:
    """This process's cache becomes the other process's copy."""
    authcache._keys._entries.update(elsewhere)


def client_for(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def test_a_revocation_is_refused_with_nothing_written_when_redis_cannot_bump(alice, monkeypatch, no_waiting):
    """Before: the revoke succeeded, the bump failed with a warning, and every other process kept
    accepting the key for up to API_KEY_CACHE_MAX_AGE_S."""
    elsewhere = another_process_caches(alice.key)
    monkeypatch.setattr(authcache, "get_redis", lambda: FlakyRedis(ok_incrs=0))
    with pytest.raises(ServiceUnavailable) as refused:
        api_key_revoke(api_key=alice.api_key)
    assert refused.value.status == 503 and "nothing was changed" in refused.value.message
    assert ApiKey.objects.get(pk=alice.api_key.pk).revoked_at is None  # the refusal wrote nothing
    monkeypatch.undo()
    as_held_by(elsewhere)
    assert api_key_authenticate(plaintext=alice.key) is not None  # not revoked, as the 503 said


def test_a_bump_lost_after_the_commit_is_a_503_and_repeating_makes_it_certain(alice, monkeypatch, no_waiting):
    elsewhere = another_process_caches(alice.key)
    flaky = FlakyRedis(ok_incrs=1)  # the bump before the change only
    monkeypatch.setattr(authcache, "get_redis", lambda: flaky)
    with pytest.raises(ServiceUnavailable) as failed:
        api_key_revoke(api_key=alice.api_key)
    assert "repeat it" in failed.value.message
    assert ApiKey.objects.get(pk=alice.api_key.pk).revoked_at is not None  # committed, not yet certain
    monkeypatch.undo()
    as_held_by(elsewhere)
    api_key_revoke(api_key=ApiKey.objects.get(pk=alice.api_key.pk))  # repeated: bumps again, returns
    as_held_by(elsewhere)  # the other process still holds its copy...
    assert api_key_authenticate(plaintext=alice.key) is None  # ...and no longer uses it
    assert client_for(alice.key).get("/api/v1/jobs").status_code == 401


def test_a_revoke_that_returns_is_seen_through_every_processs_cache(alice):
    elsewhere = another_process_caches(alice.key)
    api_key_revoke(api_key=alice.api_key)
    as_held_by(elsewhere)
    assert api_key_authenticate(plaintext=alice.key) is None
    assert client_for(alice.key).get("/api/v1/jobs").status_code == 401


def test_removing_a_member_revokes_their_keys_everywhere_or_fails(alice, monkeypatch, no_waiting):
    dave = user_get_or_create(email="dave@acme.test", password="pw-dave-1")
    membership = membership_set(tenant=alice.tenant, user=dave, role=Membership.Role.MEMBER)
    issued = api_key_issue(tenant=alice.tenant, name="dave's", created_by=dave)
    elsewhere = another_process_caches(issued.plaintext)
    monkeypatch.setattr(authcache, "get_redis", lambda: FlakyRedis(ok_incrs=0))
    with pytest.raises(ServiceUnavailable):
        membership_remove(tenant=alice.tenant, membership_id=membership.id)
    assert Membership.objects.filter(pk=membership.id).exists()  # nothing written
    monkeypatch.undo()
    membership_remove(tenant=alice.tenant, membership_id=membership.id)
    as_held_by(elsewhere)
    assert api_key_authenticate(plaintext=issued.plaintext) is None


def test_the_dashboard_says_a_refused_revocation_failed(alice, client, monkeypatch, no_waiting):
    client.force_login(alice.user)
    monkeypatch.setattr(authcache, "get_redis", lambda: FlakyRedis(ok_incrs=0))
    page = client.post(f"/app/keys/{alice.api_key.pk}/revoke", follow=True)
    assert page.status_code == 200 and "could not be revoked" in page.content.decode()
    assert ApiKey.objects.get(pk=alice.api_key.pk).revoked_at is None
