"""A test event for an endpoint ("Send test event"): a small signed ``webhook.test`` message sent through
the ordinary delivery path (stored event, delivery row, the delivery process's lease, the same SSRF
check at send time, the same signature), so what the receiver sees and what the delivery list shows
are exactly what a real event would give. It is tried once, never retried, and does not count
towards disabling a failing endpoint. At most one per endpoint every ``WEBHOOK_TEST_INTERVAL_S``, and
it counts as one of the tenant's webhook writes."""

from __future__ import annotations

import json
import math
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.guards import tenant_require_active
from lambdasite.exceptions import RateLimited

from ..exceptions import EndpointDisabled
from ..models import Delivery, Event, WebhookEndpoint
from .delivery import TEST_EVENT, _new
from .throttle import webhook_write_admit


def ping_body(endpoint: WebhookEndpoint, now: datetime) -> str:
    return json.dumps(
        {
            "type": TEST_EVENT,
            "timestamp": now.isoformat(),
            "data": {
                "endpoint": str(endpoint.id),
                "url": endpoint.url,
                "message": "A test event from Lambdasite: this endpoint receives its signed deliveries.",
            },
        }
    )


@transaction.atomic
def endpoint_send_test(*, endpoint: WebhookEndpoint, now: datetime | None = None) -> Delivery:
    """Queue a test event to the endpoint; -> its delivery (pending, due now). 409 when the endpoint is
    disabled, 429 when one was sent less than WEBHOOK_TEST_INTERVAL_S ago."""
    now = now or timezone.now()
    tenant_require_active(endpoint.tenant)
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)  # one test at a time
    if not endpoint.enabled:
        raise EndpointDisabled("the endpoint is disabled: enable it to send a test event")
    interval = settings.WEBHOOK_TEST_INTERVAL_S
    last = (
        Delivery.objects.filter(endpoint=endpoint, type=TEST_EVENT)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    if last is not None and (since := (now - last).total_seconds()) < interval:
        wait = max(1, math.ceil(interval - since))
        raise RateLimited(
            f"a test event went to this endpoint {max(since, 0):.0f} s ago: wait {wait} s for the next",
            retry_after=wait,
        )
    webhook_write_admit(tenant_id=endpoint.tenant_id)
    event = Event.objects.create(
        tenant_id=endpoint.tenant_id, type=TEST_EVENT, job_id=None, body=ping_body(endpoint, now)
    )
    delivery = _new(event, endpoint.url, now, endpoint=endpoint)
    delivery.save(force_insert=True)
    return delivery
