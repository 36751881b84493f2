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


def tenant_admit(*, tenant: Tenant, count: int = 1, also: ratelimit.Bucket | None = None) -> None:
    """A suspended tenant is refused (403); a spent compute budget or an empty rate bucket gets 429
    (the budget first: a spent budget takes no token). ``also``: a second bucket (a route's), taken
    in the same Redis call, from both or neither."""
    if tenant.is_suspended:
        raise TenantSuspended()
    quota = tenant.quota
    per_minute, bucket = quota.submissions_per_minute, ratelimit.tenant_bucket(tenant)
    if also is not None:
        return _admit_with(tenant, quota, per_minute, bucket, count, also)
    if 0 < count <= per_minute:
        # the common case, one Redis round trip: the budget's cached counter and the bucket together
        kind, wait, used = ratelimit.take_within(
            bucket=bucket,
            per_minute=per_minute,
            counter_key=billing.usage_key(tenant.id),
            limit=quota.monthly_gb_seconds,
            count=count,
        )
        if kind == "ok":
            return
        if kind == "over":
            _budget_spent(quota, used)
        if kind == "rate":
            _rate_limited(per_minute, wait)
    # the counter is not cached yet (or the batch can never fit): the budget from PostgreSQL, then the bucket
    used = billing.gb_seconds_used_fast(tenant=tenant)
    if used >= quota.monthly_gb_seconds:
        _budget_spent(quota, used)
    allowed, wait = ratelimit.take(bucket=bucket, per_minute=per_minute, count=count)
    if not allowed:
        _rate_limited(per_minute, wait)


def _admit_with(tenant, quota, per_minute: int, bucket: str, count: int, also: ratelimit.Bucket) -> None:
    counter = {"counter_key": billing.usage_key(tenant.id), "limit": quota.monthly_gb_seconds}
    kind, wait, used = ratelimit.take_both(
        bucket=bucket, per_minute=per_minute, also=also, count=count, **counter
    )
    if kind == "none":  # the counter is not cached yet: the budget from PostgreSQL, then both buckets
        used = billing.gb_seconds_used_fast(tenant=tenant)
        if used >= quota.monthly_gb_seconds:
            _budget_spent(quota, used)
        kind, wait, _ = ratelimit.take_both(bucket=bucket, per_minute=per_minute, also=also, count=count)
    if kind == "over":
        _budget_spent(quota, used)
    if kind == "rate":
        _rate_limited(per_minute, wait)
    if kind == "also":
        raise RateLimited(
            f"over the limit of {also.per_minute} {also.what}",
            retry_after=wait,
            details={"limit_per_minute": also.per_minute},
        )


def _budget_spent(quota, used: float):
    _, resets_at = billing.billing_period()
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


def _rate_limited(per_minute: int, wait: int):
    raise RateLimited(
        f"over the limit of {per_minute} submissions per minute",
        retry_after=wait,
        details={"limit_per_minute": per_minute},
    )
