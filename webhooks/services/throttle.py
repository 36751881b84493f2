"""A tenant's webhook writes (registering, changing and deleting endpoints, rotating secrets,
redelivering) are rate-limited per tenant with the token bucket that limits submissions
(``accounts.ratelimit``): each write can make the delivery process resolve a name or send a request,
so none may come in a flood. Refused with 429 and Retry-After."""

from __future__ import annotations

from django.conf import settings

from accounts import ratelimit
from lambdasite.exceptions import RateLimited


def webhook_write_admit(*, tenant_id) -> None:
    per_minute = settings.WEBHOOK_WRITES_PER_MINUTE
    allowed, wait = ratelimit.take(bucket=f"webhook-writes:{tenant_id}", per_minute=per_minute)
    if not allowed:
        raise RateLimited(
            f"over the limit of {per_minute} webhook changes per minute",
            retry_after=wait,
            details={"limit_per_minute": per_minute},
        )
