"""Which tenant a dashboard request acts for, and what the signed-in user may do there.

The current tenant lives in the session and changes only by a POST to the
switcher (a link from another site can never change it). A page about one object
(a job) is shown in that object's tenant, with the user's role *there*, without
touching the session; every write is authorised against the tenant it acts on.
A session without a current tenant starts in the user's first membership.
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
    foreign: bool = False  # shown for an object of this tenant; the session's current tenant is another

    @property
    def can_write(self) -> bool:
        return self.role in (Membership.Role.OWNER, Membership.Role.MEMBER)

    @property
    def is_owner(self) -> bool:
        return self.role == Membership.Role.OWNER


def memberships_of(user) -> list[Membership]:
    return list(
        Membership.objects.filter(user=user)
        .select_related("tenant", "tenant__quota")
        .order_by("tenant__slug")
    )


def resolve(request) -> TenantContext | None:
    memberships = memberships_of(request.user)
    if not memberships:
        return None
    wanted = request.session.get(SESSION_KEY)
    current = next((m for m in memberships if m.tenant_id == wanted), None)
    if current is None:
        first = min(
            memberships, key=lambda m: (m.created_at, m.pk)
        )  # the user's first tenant, not the alphabetical one
        current = first
        request.session[SESSION_KEY] = current.tenant_id
    return TenantContext(tenant=current.tenant, role=current.role, memberships=memberships)


def context_for(request, tenant_id) -> TenantContext | None:
    """The user's context in ``tenant_id`` (None if not a member), leaving the session alone."""
    ctx = request.ctx
    membership = next((m for m in ctx.memberships if m.tenant_id == tenant_id), None)
    if membership is None:
        return None
    if membership.tenant_id == ctx.tenant.id:
        return ctx
    return TenantContext(
        tenant=membership.tenant, role=membership.role, memberships=ctx.memberships, foreign=True
    )


def switch(request, tenant_id) -> bool:
    """Make ``tenant_id`` current if the user is a member of it (only ever from a POST)."""
    if request.method != "POST":
        return False
    if Membership.objects.filter(user=request.user, tenant_id=tenant_id).exists():
        request.session[SESSION_KEY] = tenant_id
        return True
    return False


def forbidden(request, needed: str, *, message: str | None = None):
    ctx = request.ctx
    text = message or f"This needs the {needed} role in {ctx.tenant.name}; you are {ctx.role}."
    return render(request, "dashboard/error.html", {"title": "Not allowed", "message": text}, status=403)


def dashboard_view(*, write: bool = False, owner: bool = False):
    """Signed in, member of a tenant, and (for write/owner pages) holding the role for it."""

    def decorate(view):
        @login_required
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            ctx = resolve(request)
            if ctx is None:
                from accounts.services import invitations_for

                return render(
                    request,
                    "dashboard/no_tenant.html",
                    {"invitations": invitations_for(request.user)},
                    status=403,
                )
            request.ctx = ctx
            if (owner and not ctx.is_owner) or (write and not ctx.can_write):
                return forbidden(request, "owner" if owner else "owner or member")
            return view(request, *args, **kwargs)

        return wrapper

    return decorate
