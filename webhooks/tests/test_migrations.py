"""The move to one stored event body: deliveries written before it (a copy of the body each) end up
sharing one Event per distinct body, and the migration runs backwards too."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("webhooks", "0001_initial")]
AFTER = [("webhooks", "0004_remove_delivery_body")]


def migrate(target):
    executor = MigrationExecutor(connection)
    executor.migrate(target)
    return MigrationExecutor(connection).loader.project_state(target).apps


def test_deliveries_with_copies_of_a_body_come_to_share_one_event(alice, bob):
    apps = migrate(BEFORE)
    try:
        OldDelivery = apps.get_model("webhooks", "Delivery")  # noqa: N806 - a model class
        job = uuid.uuid4()

        def old(tenant, body, job_id=job, type="job.succeeded"):
            return OldDelivery.objects.create(
                tenant_id=tenant.id, url="https://hooks.example.com/x", webhook_id=f"msg_{uuid.uuid4().hex}",
                type=type, job_id=job_id, body=body,
            )  # fmt: skip

        copies = [old(alice.tenant, '{"job": 1}') for _ in range(3)]  # two endpoints and a redelivery
        other_job = old(alice.tenant, '{"job": 2}', job_id=uuid.uuid4())
        schedule = old(alice.tenant, '{"schedule": 1}', job_id=None, type="schedule.paused")
        bobs = old(bob.tenant, '{"job": 1}')  # the same text in another tenant is another event
    finally:
        apps = migrate(AFTER)
    Delivery, Event = apps.get_model("webhooks", "Delivery"), apps.get_model("webhooks", "Event")  # noqa: N806
    assert Event.objects.count() == 4
    shared = {Delivery.objects.get(pk=d.pk).event_id for d in copies}
    assert len(shared) == 1 and Event.objects.get(pk=shared.pop()).body == '{"job": 1}'
    for row, body in ((other_job, '{"job": 2}'), (schedule, '{"schedule": 1}'), (bobs, '{"job": 1}')):
        event = Event.objects.get(pk=Delivery.objects.get(pk=row.pk).event_id)
        assert event.body == body and event.tenant_id == row.tenant_id and event.type == row.type

    apps = migrate(BEFORE)  # and back: each delivery has its copy again
    try:
        OldDelivery = apps.get_model("webhooks", "Delivery")  # noqa: N806
        assert OldDelivery.objects.get(pk=copies[0].pk).body == '{"job": 1}'
        assert OldDelivery.objects.get(pk=schedule.pk).body == '{"schedule": 1}'
    finally:
        migrate(AFTER)
