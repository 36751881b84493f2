"""Writes on tenants, members and keys."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from lambdasite.errors import Conflict, ValidationFailed

from . import keys
from .models import ApiKey, Membership, Quota, Tenant


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    plaintext: str  # shown exactly once, never stored


@transaction.atomic
def tenant_create(*, slug: str, name: str = "", owner_email: str | None = None) -> Tenant:
    if Tenant.objects.filter(slug=slug).exists():
        raise Conflict(f"tenant {slug!r} already exists", code="tenant_exists")
    tenant = Tenant.objects.create(slug=slug, name=name or slug)
    Quota.objects.create(tenant=tenant)
    if owner_email:
        user = user_get_or_create(email=owner_email)
        membership_set(tenant=tenant, user=user, role=Membership.Role.OWNER)
    return tenant


def user_get_or_create(*, email: str, password: str | None = None):
    User = get_user_model()
    user, created = User.objects.get_or_create(username=email, defaults={"email": email})
    if password:
        user.set_password(password)
        user.save(update_fields=["password"])
    elif created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


@transaction.atomic
def membership_set(*, tenant: Tenant, user, role: str) -> Membership:
    if role not in Membership.Role.values:
        raise ValidationFailed(f"role must be one of {', '.join(Membership.Role.values)}")
    membership, _ = Membership.objects.update_or_create(tenant=tenant, user=user, defaults={"role": role})
    return membership


@transaction.atomic
def api_key_issue(*, tenant: Tenant, name: str, scope: str = ApiKey.Scope.WRITE, created_by=None) -> IssuedKey:
    if scope not in ApiKey.Scope.values:
        raise ValidationFailed(f"scope must be one of {', '.join(ApiKey.Scope.values)}")
    while True:
        key_id, plaintext = keys.new_key()
        if not ApiKey.objects.filter(key_id=key_id).exists():
            break
    api_key = ApiKey.objects.create(
        tenant=tenant, name=name, key_id=key_id, key_hash=keys.hash_key(plaintext), scope=scope, created_by=created_by
    )
    return IssuedKey(api_key=api_key, plaintext=plaintext)


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def api_key_authenticate(*, plaintext: str) -> ApiKey | None:
    """The active key matching ``plaintext`` (with its tenant and quota loaded), or None."""
    key_id = keys.parse_key(plaintext)
    if key_id is None:
        return None
    api_key = ApiKey.objects.select_related("tenant", "tenant__quota").filter(key_id=key_id).first()
    if api_key is None or api_key.revoked_at is not None or not keys.matches(plaintext, api_key.key_hash):
        return None
    _touch(api_key)
    return api_key


def _touch(api_key: ApiKey) -> None:
    """Record last use, at most once per resolution window so reads do not become writes."""
    now = timezone.now()
    window = timedelta(seconds=settings.API_KEY_LAST_USED_RESOLUTION_S)
    if api_key.last_used_at is None or now - api_key.last_used_at >= window:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
