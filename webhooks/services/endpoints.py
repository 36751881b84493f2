"""Webhook endpoints and the tenant's callback secret: registering (URLs checked against the SSRF
rule), changing, rotating secrets, deleting. Every change a tenant makes passes the per-tenant
webhook write throttle first (``throttle.py``)."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from accounts.guards import tenant_require_active
from accounts.models import Tenant
from functions.models import Function
from lambdasite import ssrf, standard_webhooks
from lambdasite.exceptions import ValidationFailed

from .. import outbox
from ..exceptions import EndpointLimit
from ..models import EVENT_TYPES, CallbackSecret, WebhookEndpoint
from .throttle import webhook_write_admit


def _check_url(url: str, tenant_id) -> str:
    return ssrf.check(url, owner=tenant_id, per_owner=settings.WEBHOOK_RESOLVE_PER_TENANT)


def _events(events) -> list[str]:
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise ValidationFailed(
            "events: a non-empty list of event types", details={"fields": {"events": ["a non-empty list"]}}
        )
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        message = f"unknown event type {unknown[0]!r}; use {', '.join(EVENT_TYPES)}"
        raise ValidationFailed(f"events: {message}", details={"fields": {"events": [message]}})
    return sorted(set(events))


def _function(tenant: Tenant, name: str | None) -> Function | None:
    if not name:
        return None
    function = Function.objects.filter(tenant=tenant, name=name).first()
    if function is None:
        raise ValidationFailed(  # a name in the body, not the URL's target: 400 naming the field
            f"function: no function named {name}",
            details={"fields": {"function": [f"no function named {name}"]}},
        )
    return function


def endpoint_create(
    *, tenant: Tenant, url: str, events: list, function: str | None = None, description: str = ""
) -> WebhookEndpoint:
    """-> the endpoint; its ``secret`` is shown to the caller this once."""
    tenant_require_active(tenant)
    webhook_write_admit(tenant_id=tenant.id)
    _check_url(url, tenant.id)
    endpoint = WebhookEndpoint(
        tenant=tenant,
        url=url,
        events=_events(events),
        function=_function(tenant, function),
        description=description[:200],
        secret=standard_webhooks.new_secret(),
    )
    with transaction.atomic():
        if WebhookEndpoint.objects.filter(tenant=tenant).count() >= tenant.quota.max_webhook_endpoints:
            cap = tenant.quota.max_webhook_endpoints
            raise EndpointLimit(
                f"this tenant has {cap} webhook endpoints, its cap",
                details={"quota": "max_webhook_endpoints", "limit": cap},
            )
        endpoint.save(force_insert=True)
    outbox.forget(tenant.id)
    return endpoint


def endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    events: list | None = None,
    enabled: bool | None = None,
    description: str | None = None,
    throttled: bool = True,
) -> WebhookEndpoint:
    """Change an endpoint; enabling it again clears the reason it was disabled. ``throttled=False``
    for operators (admin), whose changes are not the tenant's."""
    if throttled:
        if (url, events, enabled, description) != (None, None, False, None):
            tenant_require_active(endpoint.tenant)  # a suspended tenant may only disable one
        webhook_write_admit(tenant_id=endpoint.tenant_id)
    if url is not None:
        endpoint.url = _check_url(url, endpoint.tenant_id)
    if events is not None:
        endpoint.events = _events(events)
    if description is not None:
        endpoint.description = description[:200]
    if enabled is not None:
        endpoint.enabled = enabled
        if enabled:
            endpoint.disabled_reason, endpoint.failing_since = "", None
    endpoint.save()
    outbox.forget(endpoint.tenant_id)
    return endpoint


def endpoint_rotate_secret(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    webhook_write_admit(tenant_id=endpoint.tenant_id)
    endpoint.secret = standard_webhooks.new_secret()
    endpoint.save(update_fields=["secret"])
    return endpoint


def endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    webhook_write_admit(tenant_id=endpoint.tenant_id)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).delete()
    outbox.forget(endpoint.tenant_id)


def callback_secret(*, tenant: Tenant) -> str:
    """The secret signing the tenant's ``callback_url`` deliveries (made on first use)."""
    found, _ = CallbackSecret.objects.get_or_create(
        tenant=tenant, defaults={"secret": standard_webhooks.new_secret()}
    )
    return found.secret


def callback_secret_rotate(*, tenant: Tenant) -> str:
    webhook_write_admit(tenant_id=tenant.id)
    found, _ = CallbackSecret.objects.update_or_create(
        tenant=tenant, defaults={"secret": standard_webhooks.new_secret()}
    )
    return found.secret
