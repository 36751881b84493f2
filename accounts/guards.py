"""Rules every tenant-scoped write obeys, whichever edge it comes from (API, dashboard, admin action):
a suspended tenant changes nothing, and deploys are rate limited per tenant (every other API write
is, by ``accounts.throttle.TenantWriteThrottle``).

Called by the services (not by the API's permission class alone), so the dashboard, commands and
any future transport are held to the same rules."""

from __future__ import annotations

from lambdasite.exceptions import RateLimited

from . import ratelimit
from .exceptions import TenantSuspended


def tenant_require_active(tenant) -> None:
    """Raise 403 ``tenant_suspended`` for a suspended tenant (read fresh: a cached row may be old)."""
    from .models import Tenant

    if Tenant.objects.filter(pk=tenant.pk, is_suspended=True).exists():
        raise TenantSuspended()


def tenant_take(tenant_id, *, what: str, per_minute: int, message: str, code: str = "rate_limited") -> None:
    """Take one token of the tenant's ``what`` bucket; 429 with Retry-After when it is empty."""
    allowed, wait = ratelimit.take(bucket=f"{what}:{tenant_id}", per_minute=per_minute)
    if not allowed:
        raise RateLimited(message, retry_after=wait, code=code, details={"limit_per_minute": per_minute})


def tenant_deploy(tenant) -> None:
    """A deploy (a new function or version: it may start a build), within ``deploys_per_minute``."""
    tenant_require_active(tenant)
    tenant_take(
        tenant.pk,
        what="deploys",
        per_minute=tenant.quota.deploys_per_minute,
        message=f"more than {tenant.quota.deploys_per_minute} deploys a minute: slow down",
        code="deploy_rate_limited",
    )
