"""Bounded storage for webhooks: finished deliveries (succeeded, or failed for good) and their attempts
are deleted once older than their tenant's retention (``Quota.retention_days``; 0 keeps them), in
small batches, by the delivery process. Pending deliveries are never touched."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Quota

from ..models import Delivery

_FINISHED = [Delivery.Status.SUCCEEDED, Delivery.Status.FAILED]

_PURGE_SQL = """
WITH doomed AS (
    SELECT id FROM webhooks_delivery
    WHERE tenant_id = %(tenant)s AND status = ANY(%(finished)s) AND created_at < %(before)s
    ORDER BY created_at
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
), attempts AS (
    DELETE FROM webhooks_deliveryattempt WHERE delivery_id IN (SELECT id FROM doomed) RETURNING 1
), deliveries AS (
    DELETE FROM webhooks_delivery WHERE id IN (SELECT id FROM doomed) RETURNING 1
)
SELECT (SELECT count(*) FROM deliveries), (SELECT count(*) FROM attempts)
"""


def deliveries_purge(
    *, now: datetime | None = None, batch: int = 500, max_batches: int = 10, dry_run: bool = False
) -> int:
    """Delete (or count, with ``dry_run``) finished deliveries older than their tenant's retention."""
    now = now or timezone.now()
    total = 0
    for tenant_id, days in Quota.objects.filter(retention_days__gt=0).values_list(
        "tenant_id", "retention_days"
    ):
        before = now - timedelta(days=days)
        if dry_run:
            total += Delivery.objects.filter(
                tenant_id=tenant_id, status__in=_FINISHED, created_at__lt=before
            ).count()
            continue
        params = {"tenant": tenant_id, "finished": _FINISHED, "before": before, "batch": batch}
        for _ in range(max_batches):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(_PURGE_SQL, params)
                deliveries, _attempts = cursor.fetchone()
            total += deliveries
            if deliveries < batch:
                break
    return total
