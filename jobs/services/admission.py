"""Admission: may this tenant start more work now? Suspension, the monthly compute budget, the rate limit.

Every new run passes here: a submission, a batch (all of it), a requeue."""

from __future__ import annotations

from django.utils import timezone

from accounts import ratelimit
from accounts.exceptions import TenantSuspended
from accounts.models import Tenant
from lambdasite.exceptions import RateLimited

from .. import billing
from ..exceptions import QuotaExceeded


def tenant_admit(*, tenant: Tenant, count: int = 1) -> None:
    """A suspended tenant is refused (403); a spent compute budget or an empty rate bucket gets 429."""
    if tenant.is_suspended:
        raise TenantSuspended()
    quota = tenant.quota
    _, resets_at = billing.billing_period()
    used = billing.gb_seconds_used_fast(tenant=tenant)
    if used >= quota.monthly_gb_seconds:
        raise QuotaExceeded(
            f"the monthly compute budget of {quota.monthly_gb_seconds:g} GB-s is spent; it "
            f"resets {resets_at.isoformat()}",
            retry_after=max(1, int((resets_at - timezone.now()).total_seconds())),
            details={
                "used_gb_seconds": round(used, 6),
                "limit_gb_seconds": quota.monthly_gb_seconds,
                "resets_at": resets_at.isoformat(),
            },
        )
    allowed, wait = ratelimit.take(
        bucket=ratelimit.tenant_bucket(tenant), per_minute=quota.submissions_per_minute, count=count
    )
    if not allowed:
        raise RateLimited(
            f"over the limit of {quota.submissions_per_minute} submissions per minute",
            retry_after=wait,
            details={"limit_per_minute": quota.submissions_per_minute},
        )
