"""Routes on the dashboard: a function's routes are listed on its page (``templatetags/routes.py``);
adding and changing one is a form page (POST/redirect/GET: a refusal is shown beside its field, a
success returns to the function's page), deleting one a POST from the list; a route's job is
replayed against any version from its page."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from jobs.services.submit import Origin
from lambdasite.exceptions import ApplicationError
from routes import selectors, signatures
from routes.models import METHODS, AuthType, Mode
from routes.services import manage, replay
from vault import selectors as vault_selectors

from .. import tenancy
from ..templatetags.routes import qualifier_choices
from ..tenancy import dashboard_view
from .common import found_or_404, job_or_404
from .functions import function_or_404

FIELDS = (
    "path",
    "qualifier",
    "mode",
    "auth_type",
    "username",
    "secret",
    "preset",
    "header",
    "algorithm",
    "encoding",
    "prefix",
    "delivery_header",
    "cors",
    "max_body_bytes",
    "rate_limit_per_minute",
    "description",
)
AUTH_SETTINGS = ("username", "secret", "preset", "header", "algorithm", "encoding", "prefix")


def _form_of(route) -> dict:
    if route is None:
        return {
            **{name: "" for name in FIELDS},
            "path": "/",
            "methods": ["GET", "POST"],
            "mode": Mode.SYNC,
            "auth_type": AuthType.NONE,
            "preset": "github",
            "algorithm": "sha256",
            "encoding": "hex",
            "rate_limit_per_minute": "0",
            "expose_errors": False,
        }
    auth = route.auth or {}
    return {
        "path": route.path,
        "methods": list(route.methods),
        "qualifier": route.qualifier,
        "mode": route.mode,
        "auth_type": auth.get("type", AuthType.NONE),
        **{name: auth.get(name, "") for name in AUTH_SETTINGS},
        "delivery_header": route.delivery_header,
        "cors": "\n".join(route.cors),
        "max_body_bytes": str(route.max_body_bytes),
        "rate_limit_per_minute": str(route.rate_limit_per_minute),
        "expose_errors": route.expose_errors,
        "description": route.description,
    }


def _posted(request, form: dict) -> dict:
    form = {**form, **{name: request.POST.get(name, "").strip() for name in FIELDS}}
    form["methods"] = [m for m in request.POST.getlist("methods") if m in METHODS]
    form["expose_errors"] = bool(request.POST.get("expose_errors"))
    return form


def _spec_fields(form: dict, errors: dict) -> dict:
    """The service's keyword arguments of a posted form; a number that is not one is an error beside it."""
    numbers = {}
    for name in ("max_body_bytes", "rate_limit_per_minute"):
        text = form[name]
        if text == "" and name == "max_body_bytes":
            numbers[name] = None
        elif text.isdigit() and len(text) <= 9:
            numbers[name] = int(text)
        else:
            errors[name] = "Enter a whole number."
    kind = form["auth_type"]
    auth = {"type": kind}
    if kind == AuthType.BASIC:
        auth.update(username=form["username"], secret=form["secret"])
    elif kind == AuthType.HMAC:
        auth.update(preset=form["preset"], secret=form["secret"])
        if form["preset"] == "custom":
            auth.update({name: form[name] for name in ("header", "algorithm", "encoding", "prefix")})
    return {
        "path": form["path"],
        "methods": form["methods"],
        "qualifier": form["qualifier"],
        "mode": form["mode"],
        "auth": auth,
        "delivery_header": form["delivery_header"],
        "cors": [line.strip() for line in form["cors"].splitlines() if line.strip()],
        "expose_errors": form["expose_errors"],
        "description": form["description"],
        **numbers,
    }


def _refusal(exc: ApplicationError, form: dict, errors: dict) -> None:
    fields = (exc.details or {}).get("fields") or {}
    name = next(iter(fields), "")
    message = exc.message.removeprefix(f"{name}: ")
    message = message[:1].upper() + message[1:]
    errors[name if name in form or name == "auth" else "form"] = message


def _route_form(request, function, route):
    form = _form_of(route)
    errors: dict[str, str] = {}
    if request.method == "POST":
        form = _posted(request, form)
        fields = _spec_fields(form, errors)
        if not errors:
            try:
                if route is None:
                    route = manage.route_create(function=function, spec=manage.RouteSpec(**fields))
                    messages.success(request, f"Route {route.path} added.")
                else:
                    manage.route_update(route=route, **fields)
                    messages.success(request, f"Route {route.path} saved.")
                return redirect(f"{_function_url(function)}#routes")
            except ApplicationError as exc:
                _refusal(exc, form, errors)
    context = {
        "function": function,
        "route": route,
        "form": form,
        "errors": errors,
        "methods": METHODS,
        "qualifiers": qualifier_choices(function),
        "secrets": [s.name for s in vault_selectors.secret_list(tenant=function.tenant)],
        "presets": signatures.PRESETS,
        "algorithms": list(signatures.ALGORITHMS),
        "encodings": signatures.ENCODINGS,
        "body_cap": manage.body_cap(function.tenant),
    }
    return render(request, "dashboard/route_form.html", context, status=400 if errors else 200)


def _function_url(function) -> str:
    from django.urls import reverse

    return reverse("dashboard:function-detail", args=[function.name])


@dashboard_view(write=True)
def route_new(request, name):
    return _route_form(request, function_or_404(request, name), None)


@dashboard_view(write=True)
def route_edit(request, name, route_id):
    function = function_or_404(request, name)
    route = found_or_404(selectors.route_get(function=function, route_id=route_id), "route")
    return _route_form(request, function, route)


@require_POST
@dashboard_view(write=True)
def route_delete(request, name, route_id):
    function = function_or_404(request, name)
    route = found_or_404(selectors.route_get(function=function, route_id=route_id), "route")
    try:
        manage.route_delete(route=route)
        messages.success(request, f"Route {route.path} deleted; its URL answers 404.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect(f"{_function_url(function)}#routes")


@require_POST
@dashboard_view()
def job_replay(request, job_id):
    """Run a route's job's request again as the chosen version or alias, by the signed-in user; -> the
    new job's page (authorised in the job's own tenant)."""
    job = job_or_404(request, job_id)
    if not request.ctx.can_write:
        return tenancy.forbidden(request, "owner or member")
    try:
        qualifier = request.POST.get("qualifier", "").strip() or None
        again, _ = replay.job_replay(job=job, qualifier=qualifier, origin=Origin.of_user(request.user))
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("dashboard:job-detail", job_id=job.id)
    messages.success(request, f"Replayed as {again.function_name}@v{again.version_number}.")
    return redirect("dashboard:job-detail", job_id=again.id)
