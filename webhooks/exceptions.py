"""Errors of webhooks (see lambdasite/exceptions.py for the base)."""

from __future__ import annotations

from lambdasite.exceptions import Conflict, LimitReached, NotFound


class EndpointNotFound(NotFound):
    code = "webhook_not_found"


class DeliveryNotFound(NotFound):
    code = "delivery_not_found"


class EndpointLimit(LimitReached):
    """A fixed cap (max_webhook_endpoints): deleting an endpoint or an operator lifts it, not time."""


class RedeliveryPending(Conflict):
    code = "redelivery_pending"


class RedeliveryLimit(Conflict):
    """A fixed cap: waiting does not help, so 409 without Retry-After."""

    code = "redelivery_limit"


class EndpointDisabled(Conflict):
    """A test event to a disabled endpoint: it would not be sent."""

    code = "endpoint_disabled"
