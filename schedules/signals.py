"""What schedules tell the apps above them, without importing them.

``schedule_paused(sender=Schedule, schedule=schedule)`` is sent inside the transaction that pauses a
schedule, once its ``paused_reason`` is set; a receiver's writes commit with the pause or not at all
(the webhook outbox's ``schedule.paused`` event: ``webhooks/apps.py``)."""

from __future__ import annotations

from django.dispatch import Signal

schedule_paused = Signal()
