"""A tenant's webhook writes (registering, changing and deleting endpoints, rotating secrets,
redelivering) are rate-limited per tenant with the token bucket that limits submissions
(``accounts.ratelimit``): each write can make the delivery process resolve a name or send a request,
so none may come in a flood. Refused with 429 and Retry-After."""

from __future__ import annotations

from django.conf import settings

from accounts.guards import tenant_take


def webhook_write_admit(*, tenant_id) -> None:
    per_minute = settings.WEBHOOK_WRITES_PER_MINUTE
    tenant_take(
        tenant_id,
        what="webhook-writes",
        per_minute=per_minute,
        message=f"over the limit of {per_minute} webhook changes per minute",
    )
