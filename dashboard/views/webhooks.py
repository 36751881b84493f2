"""Webhooks: endpoints (create, with the secret shown once; enable, disable, rotate, delete, send a test
event), an endpoint's deliveries with every attempt, and redelivery.

Creating and rotating redirect to the endpoint's page (POST/redirect/GET: a reload repeats nothing);
the new secret waits in the session for that page's next view, which takes it out."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from functions.selectors import function_list
from lambdasite.exceptions import ApplicationError
from webhooks import selectors
from webhooks.models import EVENT_TYPES, WebhookEndpoint
from webhooks.services import delivery, endpoints, ping

from ..forms import in_words, service_error
from ..tenancy import dashboard_view
from .common import found_or_404, no_store


def endpoint_or_404(request, endpoint_id) -> WebhookEndpoint:
    found = selectors.endpoint_get(tenant_ids=[request.ctx.tenant.id], endpoint_id=endpoint_id)
    return found_or_404(found, "endpoint")


@dashboard_view()
def webhook_list(request):
    tenant = request.ctx.tenant
    form = {
        "url": "",
        "events": ["job.succeeded", "job.failed", "job.dead"],
        "function": "",
        "description": "",
    }
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST" and request.ctx.can_write:
        form = {
            "url": request.POST.get("url", "").strip(),
            "events": request.POST.getlist("events"),
            "function": request.POST.get("function", ""),
            "description": request.POST.get("description", ""),
        }
        try:
            created = endpoints.endpoint_create(
                tenant=tenant,
                url=form["url"],
                events=form["events"],
                function=form["function"] or None,
                description=form["description"],
            )
            messages.success(request, "Endpoint added.")
            return _with_secret_once(request, created)
        except ApplicationError as exc:
            service_error(exc, form, errors)
            status = 400
    context = {
        "endpoints": list(selectors.endpoint_list(tenant_ids=[tenant.id])),
        "form": form,
        "errors": errors,
        "allow_private": settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS,
        "event_types": EVENT_TYPES,
        "functions": list(function_list(tenant_ids=[tenant.id])),
    }
    return render(request, "dashboard/webhook_list.html", context, status=status)


@dashboard_view()
def webhook_detail(request, endpoint_id):
    endpoint = endpoint_or_404(request, endpoint_id)
    context = {
        "endpoint": endpoint,
        "deliveries": selectors.delivery_list(endpoint=endpoint, limit=100),
        "secret": request.session.pop(_secret_key(endpoint), ""),
    }
    return no_store(render(request, "dashboard/webhook_detail.html", context))


def _secret_key(endpoint: WebhookEndpoint) -> str:
    return f"webhook-secret:{endpoint.id}"


def _with_secret_once(request, endpoint: WebhookEndpoint):
    """To the endpoint's page, whose next view shows the new secret, once."""
    request.session[_secret_key(endpoint)] = endpoint.secret
    return redirect("dashboard:webhook-detail", endpoint_id=endpoint.id)


@require_POST
@dashboard_view(write=True)
def webhook_action(request, endpoint_id, action):
    endpoint = endpoint_or_404(request, endpoint_id)
    if action not in ("delete", "rotate", "enable", "disable", "redeliver", "test"):
        raise Http404("no such action")
    try:
        return _act(request, endpoint, action)
    except ApplicationError as exc:  # throttled, a redelivery refused, suspended: said on the page
        messages.error(request, in_words(exc.message))
        return redirect("dashboard:webhook-detail", endpoint_id=endpoint.id)


def _act(request, endpoint: WebhookEndpoint, action: str):
    if action == "delete":
        endpoints.endpoint_delete(endpoint=endpoint)
        messages.success(request, "Endpoint deleted.")
        return redirect("dashboard:webhooks")
    if action == "rotate":
        rotated = endpoints.endpoint_rotate_secret(endpoint=endpoint)
        messages.success(request, "Secret rotated: the old one no longer signs.")
        return _with_secret_once(request, rotated)
    if action == "test":
        ping.endpoint_send_test(endpoint=endpoint)
        messages.success(
            request,
            "Test event queued: a signed webhook.test delivery is listed below; reload in a moment "
            "to see how the endpoint answered.",
        )
    elif action in ("enable", "disable"):
        endpoints.endpoint_update(endpoint=endpoint, enabled=action == "enable")
        messages.success(request, f"Endpoint {action}d.")
    else:
        found = selectors.delivery_get(endpoint=endpoint, delivery_id=request.POST.get("delivery", ""))
        delivery.redeliver(delivery=found_or_404(found, "delivery"))
        messages.success(request, "Queued for delivery again (same webhook-id).")
    return redirect("dashboard:webhook-detail", endpoint_id=endpoint.id)
