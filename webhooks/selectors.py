"""Reads of webhook endpoints and deliveries, scoped to a tenant."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from .models import Delivery, WebhookEndpoint


def _uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def endpoint_list(*, tenant_ids) -> QuerySet[WebhookEndpoint]:
    return (
        WebhookEndpoint.objects.filter(tenant_id__in=tenant_ids)
        .select_related("function")
        .order_by("created_at")
    )


def endpoint_get(*, tenant_ids, endpoint_id) -> WebhookEndpoint | None:
    pk = _uuid(endpoint_id)
    if pk is None:
        return None
    return WebhookEndpoint.objects.filter(tenant_id__in=tenant_ids, pk=pk).select_related("function").first()


def delivery_list(*, endpoint: WebhookEndpoint, limit: int = 50) -> list[Delivery]:
    return list(endpoint.deliveries.prefetch_related("attempt_set").order_by("-created_at")[:limit])


def delivery_get(*, endpoint: WebhookEndpoint, delivery_id) -> Delivery | None:
    pk = _uuid(delivery_id)
    return None if pk is None else endpoint.deliveries.filter(pk=pk).first()


def job_deliveries(*, job_id) -> list[Delivery]:
    return list(Delivery.objects.filter(job_id=job_id).prefetch_related("attempt_set").order_by("created_at"))
