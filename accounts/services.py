"""Writes on tenants, members, invitations and keys; every membership rule lives here."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from lambdasite.exceptions import Forbidden, NotFound, ValidationFailed
from lambdasite.live import notify_user

from . import authcache, keys
from .exceptions import AccountExists, AlreadyMember, LastOwner, TenantExists
from .models import ApiKey, Invitation, Membership, Quota, Tenant

INVITATION_TTL = timedelta(days=7)


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    plaintext: str  # shown exactly once, never stored


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    token: str  # goes into the link shown once to the inviting owner, never stored
    replaced: bool = False  # an open invitation to the same address was closed (its link no longer works)


@transaction.atomic
def tenant_create(*, slug: str, name: str = "", owner_email: str | None = None) -> Tenant:
    if Tenant.objects.filter(slug=slug).exists():
        raise TenantExists(f"tenant {slug!r} already exists")
    tenant = Tenant.objects.create(slug=slug, name=name or slug)
    Quota.objects.create(tenant=tenant)
    if owner_email:
        user = user_get_or_create(email=owner_email)
        membership_set(tenant=tenant, user=user, role=Membership.Role.OWNER)
    return tenant


def user_get_or_create(*, email: str, password: str | None = None):
    """Operators' tool (manage.py, tests): owners never create or look up accounts, they invite."""
    User = get_user_model()
    user, created = User.objects.get_or_create(username=email, defaults={"email": email})
    if password:
        user.set_password(password)
        user.save(update_fields=["password"])
    elif created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


# -- memberships ------------------------------------------------------------------------


@transaction.atomic
def membership_set(*, tenant: Tenant, user, role: str) -> Membership:
    """Operators' direct assignment (manage.py, admin, tests). Owners use invitations and the
    guarded changes below."""
    if role not in Membership.Role.values:
        raise ValidationFailed(f"role must be one of {', '.join(Membership.Role.values)}")
    membership, _ = Membership.objects.update_or_create(tenant=tenant, user=user, defaults={"role": role})
    _access_changed(user.id)
    return membership


def _owners_left(tenant: Tenant, without: Membership) -> int:
    return Membership.objects.filter(tenant=tenant, role=Membership.Role.OWNER).exclude(pk=without.pk).count()


def _locked_membership(tenant: Tenant, membership_id) -> Membership:
    # the tenant row is locked first so two owners demoting each other cannot both pass the guard
    Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
    membership = Membership.objects.select_related("user").filter(tenant=tenant, pk=membership_id).first()
    if membership is None:
        raise NotFound("no such member")
    return membership


@transaction.atomic
def membership_change_role(*, tenant: Tenant, membership_id, role: str) -> Membership:
    """Change a member's role; a tenant always keeps at least one owner."""
    if role not in Membership.Role.values:
        raise ValidationFailed(f"role must be one of {', '.join(Membership.Role.values)}")
    membership = _locked_membership(tenant, membership_id)
    if (
        membership.role == Membership.Role.OWNER
        and role != Membership.Role.OWNER
        and not _owners_left(tenant, membership)
    ):
        raise LastOwner()
    membership.role = role
    membership.save(update_fields=["role"])
    _access_changed(membership.user_id)
    return membership


def membership_remove(*, tenant: Tenant, membership_id) -> Membership:
    """Remove a member: their keys for this tenant are revoked (in no process accepted once this
    returns, else a 503: authcache.revocation) and their open pages disconnected."""
    with authcache.revocation(), transaction.atomic():
        membership = _locked_membership(tenant, membership_id)
        if membership.role == Membership.Role.OWNER and not _owners_left(tenant, membership):
            raise LastOwner()
        membership.delete()
        ApiKey.objects.filter(
            tenant=tenant, created_by_id=membership.user_id, kind=ApiKey.Kind.USER, revoked_at=None
        ).update(revoked_at=timezone.now())
        _access_changed(membership.user_id)
    return membership


def _access_changed(user_id) -> None:
    """Open websockets of this user re-check what they may see once this commits."""
    transaction.on_commit(lambda: notify_user(user_id))


def tenant_default_for(user) -> Membership | None:
    """The tenant a session starts in: the user's first membership (never one they did not accept)."""
    return Membership.objects.filter(user=user).select_related("tenant").order_by("created_at", "pk").first()


# -- invitations ------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), f"invitation:{token}".encode(), hashlib.sha256).hexdigest()


def _normal_email(email: str) -> str:
    email = (email or "").strip().lower()
    if "@" not in email or len(email) > 150 or any(c.isspace() for c in email):
        raise ValidationFailed("enter the person's email address", details={"field": "email"})
    return email


@transaction.atomic
def invitation_create(*, tenant: Tenant, email: str, role: str, invited_by) -> IssuedInvitation:
    """Invite an email address. The answer is the same whether or not it has an account, and
    nobody becomes a member before accepting. A repeated invitation replaces the open one."""
    email = _normal_email(email)
    if role not in Membership.Role.values:
        raise ValidationFailed(
            f"role must be one of {', '.join(Membership.Role.values)}", details={"field": "role"}
        )
    if Membership.objects.filter(tenant=tenant, user__username__iexact=email).exists():
        raise AlreadyMember(f"{email} is already a member")  # the owner sees the member list anyway
    replaced = Invitation.objects.filter(tenant=tenant, email=email, accepted_at=None, closed_at=None).update(
        closed_at=timezone.now()
    )
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        tenant=tenant,
        email=email,
        role=role,
        token_hash=_token_hash(token),
        invited_by=invited_by,
        expires_at=timezone.now() + INVITATION_TTL,
    )
    return IssuedInvitation(invitation=invitation, token=token, replaced=bool(replaced))


def invitation_by_token(*, token: str) -> Invitation:
    invitation = (
        Invitation.objects.select_related("tenant", "invited_by")
        .filter(token_hash=_token_hash(token or ""))
        .first()
    )
    if invitation is None or not invitation.is_open:
        raise NotFound("this invitation does not exist, has expired or was already answered")
    return invitation


def invitations_for(user) -> list[Invitation]:
    """Open invitations addressed to this user's email."""
    return list(
        Invitation.objects.filter(
            email__iexact=user.username, accepted_at=None, closed_at=None, expires_at__gt=timezone.now()
        )
        .select_related("tenant", "invited_by")
        .order_by("created_at")
    )


def _open_invitation_for(user, invitation_id) -> Invitation:
    invitation = (
        Invitation.objects.select_for_update()
        .select_related("tenant")
        .filter(pk=invitation_id, email__iexact=user.username)
        .first()
    )
    if invitation is None or not invitation.is_open:
        raise NotFound("no such open invitation for you")
    return invitation


@transaction.atomic
def invitation_accept(*, invitation_id, user) -> Membership:
    """The invitee accepts: only the account whose email was invited can."""
    invitation = _open_invitation_for(user, invitation_id)
    membership, created = Membership.objects.get_or_create(
        tenant=invitation.tenant, user=user, defaults={"role": invitation.role}
    )
    invitation.accepted_at, invitation.accepted_by = timezone.now(), user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    if created:
        _access_changed(user.id)
    return membership


@transaction.atomic
def invitation_decline(*, invitation_id, user) -> None:
    invitation = _open_invitation_for(user, invitation_id)
    invitation.closed_at = timezone.now()
    invitation.save(update_fields=["closed_at"])


@transaction.atomic
def invitation_withdraw(*, tenant: Tenant, invitation_id) -> None:
    updated = Invitation.objects.filter(
        tenant=tenant, pk=invitation_id, accepted_at=None, closed_at=None
    ).update(closed_at=timezone.now())
    if not updated:
        raise NotFound("no such open invitation")


@transaction.atomic
def invitation_sign_up(*, token: str, password: str):
    """A new person creates the invited account from the link, choosing their own password."""
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    invitation = invitation_by_token(token=token)
    User = get_user_model()
    if User.objects.filter(username__iexact=invitation.email).exists():
        raise AccountExists()
    user = User(username=invitation.email, email=invitation.email)
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ValidationFailed(" ".join(exc.messages), details={"field": "password"}) from None
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        raise AccountExists() from None
    invitation_accept(invitation_id=invitation.pk, user=user)
    return user


# -- API keys ------------------------------------------------------------------------------


@transaction.atomic
def api_key_issue(
    *, tenant: Tenant, name: str, scope: str = ApiKey.Scope.WRITE, created_by=None, operator: bool = False
) -> IssuedKey:
    """A key for ``created_by`` (a member: the key lives and writes only as long as they may), or an
    operator key of the tenant itself (``operator=True``; ``created_by`` then only records who issued it)."""
    if scope not in ApiKey.Scope.values:
        raise ValidationFailed(f"scope must be one of {', '.join(ApiKey.Scope.values)}")
    if not operator and created_by is None:
        raise ValidationFailed("a user key needs the member it acts for")
    while True:
        key_id, plaintext = keys.new_key()
        if not ApiKey.objects.filter(key_id=key_id).exists():
            break
    api_key = ApiKey.objects.create(
        tenant=tenant,
        name=name,
        key_id=key_id,
        key_hash=keys.hash_key(plaintext),
        scope=scope,
        created_by=created_by,
        kind=ApiKey.Kind.OPERATOR if operator else ApiKey.Kind.USER,
    )
    return IssuedKey(api_key=api_key, plaintext=plaintext)


def api_key_revoke(*, api_key: ApiKey, by=None, by_role: str | None = None) -> ApiKey:
    """Revoke a key. A member acting (``by``, with their role) may revoke their own keys; owners any.

    Once this returns, no process accepts the key; when that cannot be made sure (Redis away) it
    raises ServiceUnavailable (authcache.revocation). Revoking a revoked key is how to repeat it."""
    if by is not None and by_role != Membership.Role.OWNER and api_key.created_by_id != by.id:
        raise Forbidden("Only an owner can revoke someone else's key.")
    with authcache.revocation(), transaction.atomic():
        if api_key.revoked_at is None:
            api_key.revoked_at = timezone.now()
            api_key.save(update_fields=["revoked_at"])
    return api_key


def user_keys_revoke(*, user) -> int:
    """Every user key a person created, in every tenant (their account is going away)."""
    with authcache.revocation(), transaction.atomic():
        return ApiKey.objects.filter(created_by=user, kind=ApiKey.Kind.USER, revoked_at=None).update(
            revoked_at=timezone.now()
        )


def api_key_authenticate(*, plaintext: str) -> ApiKey | None:
    """The usable key matching ``plaintext`` (tenant, quota and creator's role loaded), or None.

    One query: the key, its tenant and quota, its creator, and the creator's current role in
    the tenant. A user key is refused when its creator is gone, inactive, or no longer a member."""
    key_id = keys.parse_key(plaintext)
    if key_id is None:
        return None
    digest = keys.hash_key(plaintext)
    at_generation, cached = authcache.lookup(digest)
    if cached is not None:
        _touch(cached)
        return cached
    role = Membership.objects.filter(
        tenant_id=OuterRef("tenant_id"), user_id=OuterRef("created_by_id")
    ).values("role")[:1]
    api_key = (
        ApiKey.objects.select_related("tenant", "tenant__quota", "created_by")
        .annotate(creator_role=Subquery(role))
        .filter(key_id=key_id)
        .first()
    )
    if api_key is None or api_key.revoked_at is not None or not keys.matches(plaintext, api_key.key_hash):
        return None
    if api_key.kind != ApiKey.Kind.OPERATOR:
        creator = api_key.created_by
        if creator is None or not creator.is_active or api_key.creator_role is None:
            return None
    authcache.store(digest, at_generation, api_key)
    _touch(api_key)
    return api_key


def _touch(api_key: ApiKey) -> None:
    """Record last use, at most once per resolution window so reads do not become writes."""
    now = timezone.now()
    window = timedelta(seconds=settings.API_KEY_LAST_USED_RESOLUTION_S)
    if api_key.last_used_at is None or now - api_key.last_used_at >= window:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
