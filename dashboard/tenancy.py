"""Which tenant a dashboard request acts for, and what the signed-in user may do there.

The current tenant lives in the session; a user in several tenants switches it
from the header. Every page reads and writes through ``request.ctx.tenant`` only.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from accounts.models import Membership, Tenant

SESSION_KEY = "tenant_id"


@dataclass
class TenantContext:
    tenant: Tenant
    role: str
    memberships: list[Membership]

    @property
    def can_write(self) -> bool:
        return self.role in (Membership.Role.OWNER, Membership.Role.MEMBER)

    @property
    def is_owner(self) -> bool:
        return self.role == Membership.Role.OWNER


def memberships_of(user) -> list[Membership]:
    return list(Membership.objects.filter(user=user).select_related("tenant", "tenant__quota").order_by("tenant__slug"))


def resolve(request) -> TenantContext | None:
    memberships = memberships_of(request.user)
    if not memberships:
        return None
    wanted = request.session.get(SESSION_KEY)
    current = next((m for m in memberships if m.tenant_id == wanted), memberships[0])
    if current.tenant_id != wanted:
        request.session[SESSION_KEY] = current.tenant_id
    return TenantContext(tenant=current.tenant, role=current.role, memberships=memberships)


def switch(request, tenant_id) -> bool:
    """Make ``tenant_id`` current if the user is a member of it."""
    if Membership.objects.filter(user=request.user, tenant_id=tenant_id).exists():
        request.session[SESSION_KEY] = tenant_id
        return True
    return False


def dashboard_view(*, write: bool = False, owner: bool = False):
    """Signed in, member of a tenant, and (for write/owner pages) holding the role for it."""

    def decorate(view):
        @login_required
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            ctx = resolve(request)
            if ctx is None:
                return render(request, "dashboard/no_tenant.html", status=403)
            request.ctx = ctx
            if (owner and not ctx.is_owner) or (write and not ctx.can_write):
                needed = "owner" if owner else "owner or member"
                return render(
                    request, "dashboard/error.html",
                    {"title": "Not allowed", "message": f"This needs the {needed} role in {ctx.tenant.name}; you are {ctx.role}."},
                    status=403,
                )
            return view(request, *args, **kwargs)

        return wrapper

    return decorate
