"""Secrets: the tenant's secrets by name, revision, fingerprint, when and by whom (never a value);
owners set, rotate and delete them (POST/redirect/GET: a value is never sent back to the browser)."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_POST

from lambdasite.exceptions import ApplicationError
from vault import selectors
from vault.services import Actor, secret_delete, secret_put
from vault.validation import NAME_RULE

from .. import tenancy
from ..tenancy import dashboard_view
from .common import no_store


def _actor(request) -> Actor:
    return Actor(label=request.user.get_username(), is_owner=request.ctx.is_owner, user=request.user)


@sensitive_post_parameters("value")
@sensitive_variables("value")
@dashboard_view()
def secret_list(request):
    form = {"name": request.GET.get("name", "")[:64]}  # "Rotate" links fill the name in
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        if not request.ctx.is_owner:
            return tenancy.forbidden(request, "owner", message="Only owners set secrets; members bind them.")
        form["name"] = request.POST.get("name", "").strip()[:64]
        value = request.POST.get("value", "").replace("\r\n", "\n")
        if request.POST.get("trim"):  # a pasted token's final newline is rarely part of it
            value = value.strip()
        try:
            revision = secret_put(
                tenant=request.ctx.tenant, name=form["name"], value=value, actor=_actor(request)
            )
        except ApplicationError as exc:
            field = (exc.details or {}).get("field") or next(
                iter((exc.details or {}).get("fields") or {}), ""
            )
            errors[field if field in ("name", "value") else "form"] = exc.message.removeprefix(f"{field}: ")
            status = 400
        else:
            said = "created" if revision.created else f"rotated to revision {revision.number}"
            messages.success(request, f"Secret {form['name']} {said} (fingerprint {revision.fingerprint}).")
            return redirect("dashboard:secrets")
    context = {
        "secrets": list(selectors.secret_list(tenant=request.ctx.tenant)),
        "form": form,
        "errors": errors,
        "name_rule": NAME_RULE,
        "max_secrets": request.ctx.tenant.quota.max_secrets,
    }
    return no_store(render(request, "dashboard/secrets.html", context, status=status))


@require_POST
@dashboard_view(owner=True)
def secret_delete_view(request, name):
    try:
        secret_delete(tenant=request.ctx.tenant, name=name, actor=_actor(request))
        messages.success(
            request, f"Secret {name} deleted; versions that bind it fail to run until it is set again."
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("dashboard:secrets")
