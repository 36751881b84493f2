"""API permissions: a request acts for exactly one tenant, through a key of that tenant."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from .exceptions import ReadOnlyKey, TenantSuspended


class HasTenant(BasePermission):
    """Authenticated by an API key; write methods need a write-scoped key; suspended tenants are refused."""

    def has_permission(self, request, view) -> bool:
        principal = request.user
        if (
            principal is None
            or not getattr(principal, "is_authenticated", False)
            or not hasattr(principal, "tenant")
        ):
            return False
        if principal.tenant.is_suspended:
            raise TenantSuspended()
        if request.method not in SAFE_METHODS and not principal.can_write:
            raise ReadOnlyKey()
        return True
