"""The people of a tenant: members and their roles, invitations, and the invitee's side of them.

Rules live in ``accounts/services.py``; these views parse forms and show results.
Nobody is made a member without accepting, and inviting an address says nothing
about whether it has an account.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse

from accounts import services as accounts
from accounts.models import Invitation, Membership
from lambdasite.exceptions import ApplicationError

from ..forms import in_words, service_error
from ..tenancy import dashboard_view

_INVITE_LINK = "lambdasite.invite_link"  # the session key of a new invitation's link until it is shown


@dashboard_view(owner=True)
def members(request):
    tenant = request.ctx.tenant
    status = 200
    errors: dict[str, str] = {}
    invite = {"email": "", "role": "member"}
    if request.method == "POST":
        try:
            link = _members_change(request, tenant)
            if link is not None:  # shown once, on the page the redirect leads to (a reload repeats nothing)
                request.session[_INVITE_LINK] = link
            return redirect("dashboard:members")
        except ApplicationError as exc:
            if request.POST.get("action") == "invite":  # beside the invitation form's field
                invite = {name: request.POST.get(name, "") for name in invite}
                service_error(exc, invite, errors)
                if "form" in errors:
                    messages.error(request, errors.pop("form"))
            else:
                messages.error(request, in_words(exc.message))
            status = 400
    link = request.session.pop(_INVITE_LINK, None) if status == 200 else None
    context = {
        "members": Membership.objects.filter(tenant=tenant).select_related("user").order_by("user__username"),
        "invitations": Invitation.objects.filter(
            tenant=tenant, accepted_at=None, closed_at=None
        ).select_related("invited_by"),
        "roles": Membership.Role.values,
        "invite_link": link,
        "invite": invite,
        "errors": errors,
    }
    response = render(request, "dashboard/members.html", context, status=status)
    response["Cache-Control"] = "no-store"  # the invitation link is shown once
    return response


def _members_change(request, tenant) -> str | None:
    """Apply one form; -> the new invitation's link (shown once), else None."""
    action = request.POST.get("action")
    if action == "invite":
        issued = accounts.invitation_create(
            tenant=tenant,
            email=request.POST.get("email", ""),
            role=request.POST.get("role", "member"),
            invited_by=request.user,
        )
        replaced = (
            " The link of the earlier invitation to this address no longer works." if issued.replaced else ""
        )
        messages.success(
            request,
            f"Invitation for {issued.invitation.email} created. Nobody joins without "
            f"accepting: they accept under "
            f"Invitations once signed in, or with the link below, which is shown only now.{replaced}",
        )
        return request.build_absolute_uri(reverse("dashboard:invitation-link", args=[issued.token]))
    if action == "role":
        changed = accounts.membership_change_role(
            tenant=tenant,
            membership_id=_int(request.POST.get("membership")),
            role=request.POST.get("role", ""),
        )
        messages.success(request, f"{changed.user.username} is now {changed.role}.")
    elif action == "remove":
        removed = accounts.membership_remove(
            tenant=tenant, membership_id=_int(request.POST.get("membership"))
        )
        messages.success(
            request, f"{removed.user.username} removed; their API keys for {tenant.name} are revoked."
        )
    elif action == "withdraw":
        accounts.invitation_withdraw(tenant=tenant, invitation_id=_int(request.POST.get("invitation")))
        messages.success(request, "Invitation withdrawn.")
    else:
        messages.error(request, "Unknown action.")
    return None


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


@login_required
def invitations(request):
    """The signed-in person's open invitations, to accept or decline."""
    if request.method == "POST":
        invitation_id = _int(request.POST.get("invitation"))
        try:
            if request.POST.get("action") == "accept":
                membership = accounts.invitation_accept(invitation_id=invitation_id, user=request.user)
                messages.success(
                    request,
                    f"You are now {membership.role} of {membership.tenant.name}; switch to it from "
                    f"the header.",
                )
            else:
                accounts.invitation_decline(invitation_id=invitation_id, user=request.user)
                messages.success(request, "Invitation declined.")
        except ApplicationError as exc:
            messages.error(request, exc.message)
        return redirect("dashboard:invitations")
    return render(
        request, "dashboard/invitations.html", {"invitations": accounts.invitations_for(request.user)}
    )


def invitation_link(request, token: str):
    """The link an owner shares: shows the invitation; a new person creates their account here,
    an existing one signs in and accepts it under Invitations."""
    try:
        invitation = accounts.invitation_by_token(token=token)
    except ApplicationError as exc:
        return render(
            request, "dashboard/error.html", {"title": "Invitation", "message": exc.message}, status=404
        )
    error = None
    status = 200
    if request.method == "POST" and not request.user.is_authenticated:
        password, again = request.POST.get("password", ""), request.POST.get("password2", "")
        if password != again:
            error, status = "The two passwords differ.", 400
        else:
            try:
                user = accounts.invitation_sign_up(token=token, password=password)
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                messages.success(request, f"Welcome! You are now a member of {invitation.tenant.name}.")
                return redirect("dashboard:overview")
            except ApplicationError as exc:
                error, status = exc.message, 400
    mine = request.user.is_authenticated and request.user.username.lower() == invitation.email
    context = {"invitation": invitation, "error": error, "mine": mine}
    response = render(request, "dashboard/invitation_link.html", context, status=status)
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"  # the token is in the URL
    return response
