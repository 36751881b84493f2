"""Bounded storage for webhooks: finished deliveries (succeeded, or failed for good) and their attempts
are deleted once older than their tenant's retention (``Quota.retention_days``; 0 keeps them), in
small batches, by the delivery process, with the event bodies no other delivery refers to. Pending
deliveries are never touched."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from jobs.services.retention import doomed, purge_in_batches, retention_cutoffs

from ..models import Delivery

_FINISHED = [Delivery.Status.SUCCEEDED, Delivery.Status.FAILED]

_PURGE_SQL = (
    doomed("webhooks_delivery", "created_at")
    + """, attempts AS (
    DELETE FROM webhooks_deliveryattempt WHERE delivery_id IN (SELECT id FROM doomed) RETURNING 1
), deliveries AS (
    DELETE FROM webhooks_delivery WHERE id IN (SELECT id FROM doomed) RETURNING event_id
), events AS (
    DELETE FROM webhooks_event e
    WHERE e.id IN (SELECT event_id FROM deliveries)
        AND NOT EXISTS (
            SELECT 1 FROM webhooks_delivery o WHERE o.event_id = e.id AND o.id NOT IN (SELECT id FROM doomed)
        )
    RETURNING 1
)
SELECT (SELECT count(*) FROM deliveries), (SELECT count(*) FROM attempts)
"""
)


def deliveries_purge(
    *, now: datetime | None = None, batch: int = 500, max_batches: int = 10, dry_run: bool = False
) -> int:
    """Delete (or count, with ``dry_run``) finished deliveries older than their tenant's retention."""
    now = now or timezone.now()
    total = 0
    for tenant_id, _slug, before in retention_cutoffs(now):
        if dry_run:
            finished = Delivery.objects.filter(
                tenant_id=tenant_id, status__in=_FINISHED, created_at__lt=before
            )
            total += finished.count()
            continue
        params = {"tenant": tenant_id, "finished": _FINISHED, "before": before}
        for deliveries, _attempts in purge_in_batches(
            _PURGE_SQL, params, batch=batch, max_batches=max_batches
        ):
            total += deliveries
    return total
