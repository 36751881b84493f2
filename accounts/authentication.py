"""DRF authentication by API key: ``Authorization: Bearer lsk_…`` or ``X-API-Key: lsk_…``."""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework import authentication, exceptions

from .models import ApiKey, Membership, Tenant
from .services import api_key_authenticate


@dataclass
class ApiPrincipal:
    """The caller of an API request: a tenant acting through one key."""

    api_key: ApiKey

    is_authenticated = True
    is_anonymous = False

    @property
    def tenant(self) -> Tenant:
        return self.api_key.tenant

    @property
    def can_write(self) -> bool:
        """A write-scoped operator key, or a write-scoped user key whose creator is an owner or member
        (a viewer's key only reads). The creator's role was loaded with the key."""
        if self.api_key.scope != ApiKey.Scope.WRITE:
            return False
        if self.api_key.kind == ApiKey.Kind.OPERATOR:
            return True
        return getattr(self.api_key, "creator_role", None) in (Membership.Role.OWNER, Membership.Role.MEMBER)

    @property
    def is_owner(self) -> bool:
        """Acts with an owner's rights (what only owners may do, such as setting secrets): a
        write-scoped operator key (the tenant's own), or a write-scoped user key whose creator is
        an owner now. A member's, a viewer's or a read-scoped key never does."""
        if self.api_key.scope != ApiKey.Scope.WRITE:
            return False
        if self.api_key.kind == ApiKey.Kind.OPERATOR:
            return True
        return getattr(self.api_key, "creator_role", None) == Membership.Role.OWNER

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.api_key.prefix}"


def presented_key(authorization: str, x_api_key: str) -> str | None:
    """The key a request presents (None: it presents none); a malformed Authorization header is a 401."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <api key>'")
        return value.strip()
    if x_api_key:
        return x_api_key.strip()
    return None


def principal_for(authorization: str, x_api_key: str) -> ApiPrincipal | None:
    """The caller a request's headers name, or None for no key, a malformed header or an unusable key
    (the fast path then leaves the request to DRF, whose ApiKeyAuthentication answers it)."""
    try:
        raw = presented_key(authorization, x_api_key)
    except exceptions.AuthenticationFailed:
        return None
    api_key = api_key_authenticate(plaintext=raw) if raw else None
    return ApiPrincipal(api_key) if api_key is not None else None


def admitted(authorization: str, x_api_key: str, *, write: bool) -> ApiPrincipal | None:
    """The caller as ApiKeyAuthentication and HasTenant would admit it to an endpoint that reads
    (``write=False``) or writes, or None: no usable key, a suspended tenant, a key that may not
    write. The fast path then leaves the request to DRF, which gives the refusal."""
    caller = principal_for(authorization, x_api_key)
    if caller is None or caller.tenant.is_suspended or (write and not caller.can_write):
        return None
    return caller


class ApiKeyAuthentication(authentication.BaseAuthentication):
    www_authenticate_realm = "api"

    def authenticate(self, request):
        raw = presented_key(
            request.META.get("HTTP_AUTHORIZATION", ""), request.META.get("HTTP_X_API_KEY", "")
        )
        if raw is None:
            return None
        api_key = api_key_authenticate(plaintext=raw)
        if api_key is None:
            raise exceptions.AuthenticationFailed("invalid or revoked API key")
        return ApiPrincipal(api_key), api_key

    def authenticate_header(self, request) -> str:
        # a 401 (not 403) for a missing or bad key needs a WWW-Authenticate value
        return f'Bearer realm="{self.www_authenticate_realm}"'
