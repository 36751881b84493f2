"""API keys: create one (the secret shown once, with a copy button and a curl line), revoke, last used."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.models import ApiKey
from accounts.services import api_key_issue, api_key_revoke
from lambdasite.exceptions import ApplicationError

from .. import tenancy
from ..forms import in_words
from ..tenancy import dashboard_view
from .common import found_or_404, no_store

_NEW_KEY = "lambdasite.new_api_key"  # the session key holding a new key's secret until it is shown


@dashboard_view()
def api_keys(request):
    tenant = request.ctx.tenant
    issued = None
    status = 200
    errors: dict[str, str] = {}
    form = {"name": "", "scope": ApiKey.Scope.WRITE}
    if request.method == "POST":
        if not request.ctx.can_write:
            return tenancy.forbidden(request, "owner or member", message="Viewers cannot create keys.")
        name = request.POST.get("name", "").strip()[:100]
        scope = request.POST.get("scope", ApiKey.Scope.WRITE)
        form = {"name": name, "scope": scope}
        if not name:
            errors["name"] = "Name is required: say what will use the key, such as billing-service."
            status = 400
        elif scope not in ApiKey.Scope.values:
            errors["scope"] = "Scope must be read or write."
            status = 400
        else:
            made = api_key_issue(tenant=tenant, name=name, scope=scope, created_by=request.user)
            # shown once, on the page the redirect leads to: a reload issues nothing
            request.session[_NEW_KEY] = {"api_key": {"name": made.api_key.name}, "plaintext": made.plaintext}
            return redirect("dashboard:api-keys")
    else:
        issued = request.session.pop(_NEW_KEY, None)
    keys = (
        ApiKey.objects.filter(tenant=tenant)
        .select_related("created_by")
        .order_by("revoked_at", "-created_at")
    )
    context = {
        "keys": keys,
        "issued": issued,
        "api_url": request.build_absolute_uri("/api/v1/"),
        "form": form,
        "errors": errors,
    }
    return no_store(render(request, "dashboard/api_keys.html", context, status=status))


@require_POST
@dashboard_view(write=True)
def api_key_revoke_view(request, key_id):
    key = found_or_404(ApiKey.objects.filter(tenant=request.ctx.tenant, pk=key_id).first(), "key")
    try:
        api_key_revoke(api_key=key, by=request.user, by_role=request.ctx.role)
        messages.success(request, f"Key {key.name} revoked; requests with it now get 401.")
    except ApplicationError as exc:
        messages.error(request, in_words(exc.message))
    return redirect("dashboard:api-keys")
