"""The egress proxy's monthly budget hook in a worker: the bytes a tenant's jobs may still move
through egress this month, read when a door is bound to an attempt.

The rule is the quota's (``Quota.egress_bytes_left``: ``max_egress_bytes_month`` less what this
month's attempts moved); the reading is kept EGRESS_BUDGET_CACHE_S per tenant in the worker, so a
burst of jobs costs one query. It is what finished attempts moved: attempts running at once each
get what was left when they started, within EGRESS_MAX_BYTES each, so a month may end over its
budget by at most what those moved."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import close_old_connections

from lambdasite.caching import Cache

from . import billing
from .execution import tenant_cached

log = logging.getLogger("lambdasite.worker")

_left: Cache[int | None] = Cache(max_age_s=lambda: settings.EGRESS_BUDGET_CACHE_S)


def egress_bytes_left(tenant_id) -> int | None:
    """What the tenant may still move through egress this month; None: no monthly budget."""
    quota = tenant_cached(int(tenant_id)).quota
    if quota.max_egress_bytes_month is None:
        return None
    start, _ = billing.billing_period()
    return quota.egress_bytes_left(billing.egress_bytes_used(tenant_id=int(tenant_id), since=start))


def budget(tenant: str, job: str, attempt: int) -> int | None:
    """``sandbox.egress.EgressProxy``'s ``budget`` hook (the proxy turns an exception into 0: nothing
    may pass when the budget cannot be read)."""
    try:
        return _left.get_or_load(tenant, lambda: egress_bytes_left(tenant))
    finally:
        if not job:  # a warm-up, on a pool thread: no job's connection to keep
            close_old_connections()
