"""Finished webhook deliveries (and their attempts) past the tenant's retention are deleted; pending
ones never are, whatever their age."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from webhooks.models import Delivery, DeliveryAttempt, Event
from webhooks.services.retention import deliveries_purge

pytestmark = pytest.mark.django_db


def _delivery(persona, status: str, age_days: float, event: Event | None = None) -> Delivery:
    event = event or Event.objects.create(tenant=persona.tenant, type="job.succeeded", body="{}")
    delivery = Delivery.objects.create(
        tenant=persona.tenant, url="https://hooks.example.com/x", webhook_id="msg_1", type="job.succeeded",
        event=event, status=status,
    )  # fmt: skip
    DeliveryAttempt.objects.create(delivery=delivery, number=1, started_at=timezone.now(), status_code=200)
    Delivery.objects.filter(pk=delivery.pk).update(created_at=timezone.now() - timedelta(days=age_days))
    return delivery


def test_finished_deliveries_past_the_retention_go_and_pending_ones_stay(alice):
    old = [_delivery(alice, "succeeded", 31), _delivery(alice, "failed", 45)]
    keep = [_delivery(alice, "succeeded", 2), _delivery(alice, "pending", 90)]
    assert deliveries_purge(dry_run=True) == 2 and Delivery.objects.count() == 4
    assert deliveries_purge() == 2
    assert set(Delivery.objects.values_list("pk", flat=True)) == {d.pk for d in keep}
    assert not DeliveryAttempt.objects.filter(delivery_id__in=[d.pk for d in old]).exists()


def test_an_event_body_goes_with_the_last_delivery_that_refers_to_it(alice):
    shared = Event.objects.create(tenant=alice.tenant, type="job.succeeded", body="{}")
    _delivery(alice, "succeeded", 40, shared)
    survivor = _delivery(alice, "succeeded", 1, shared)  # e.g. a recent redelivery of the same message
    alone = _delivery(alice, "failed", 40)
    assert deliveries_purge() == 2
    assert set(Event.objects.values_list("pk", flat=True)) == {shared.pk}
    assert not Event.objects.filter(pk=alone.event_id).exists()
    Delivery.objects.filter(pk=survivor.pk).update(created_at=timezone.now() - timedelta(days=40))
    assert deliveries_purge() == 1 and not Event.objects.exists()
