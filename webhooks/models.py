"""Webhook endpoints, the event outbox, deliveries and their attempts."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from accounts.models import Tenant

from .wording import plain_error

EVENT_TYPES = (
    "job.succeeded",
    "job.failed",
    "job.dead",
    "job.timed_out",
    "job.killed",
    "job.cancelled",
    "schedule.paused",
)


class WebhookEndpoint(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list)  # event types it receives
    function = models.ForeignKey(  # only events of this function's jobs (schedule events always pass)
        "functions.Function", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    description = models.CharField(max_length=200, blank=True)
    secret = models.CharField(max_length=100)  # whsec_…: needed to sign, so kept (shown to the tenant once)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=500, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True)  # first failure after the last success
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["tenant", "enabled"], name="endpoint_tenant_enabled")]

    def __str__(self) -> str:
        return f"{self.tenant.slug} → {self.url}"


class CallbackSecret(models.Model):
    """The secret that signs a tenant's one-off ``callback_url`` deliveries."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="callback_secret")
    secret = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"callback secret of {self.tenant}"


class OutboxEvent(models.Model):
    """An event, written in the same transaction as the change that caused it; the delivery worker
    turns it into deliveries (and deletes it) in one transaction, so none is lost or doubled."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    type = models.CharField(max_length=40)
    job_id = models.UUIDField(null=True, blank=True)
    function_id = models.BigIntegerField(null=True, blank=True)
    callback_url = models.URLField(max_length=2000, blank=True)
    data = models.JSONField(default=dict)  # for events that are not about a job (schedule.paused)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.type} #{self.pk}"


class Event(models.Model):
    """What an event says, stored once: every delivery of it (to each endpoint, to the job's
    callback URL, each redelivery) refers to this one body instead of carrying a copy."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    type = models.CharField(max_length=40)
    job_id = models.UUIDField(null=True, blank=True)
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.type} #{self.pk}"


class Delivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"  # gave up after the last retry (or the endpoint was disabled)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(
        WebhookEndpoint, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    url = models.URLField(max_length=2000)  # the endpoint's at the time, or the job's callback_url
    webhook_id = models.CharField(max_length=64)  # the Standard Webhooks message id: the same on redelivery
    type = models.CharField(max_length=40)
    job_id = models.UUIDField(null=True, blank=True)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    redelivery = models.BooleanField(default=False)  # asked for by the tenant (bounded per message)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)  # a delivery worker is sending it
    last_status_code = models.IntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["next_attempt_at"], name="delivery_due", condition=Q(status="pending")),
            models.Index(fields=["job_id"], name="delivery_job"),
            models.Index(fields=["endpoint", "-created_at"], name="delivery_endpoint_created"),
            models.Index(fields=["webhook_id"], name="delivery_webhook_id"),
            # the claim: each tenant's due deliveries, and the ones it has in flight
            models.Index(
                fields=["tenant", "next_attempt_at"],
                name="delivery_tenant_due",
                condition=Q(status="pending"),
            ),
            models.Index(
                fields=["tenant", "locked_until"],
                name="delivery_tenant_leased",
                condition=Q(status="pending", locked_until__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} → {self.url} ({self.status})"

    @property
    def body(self) -> str:
        return self.event.body


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_set")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    status_code = models.IntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    response = models.CharField(max_length=500, blank=True)  # the start of the receiver's answer

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="one_delivery_attempt_number")
        ]

    def __str__(self) -> str:
        return f"{self.delivery_id}#{self.number}"

    @property
    def error_words(self) -> str:
        """The error in plain words, for the pages (the raw text stays in ``error``)."""
        return plain_error(self.error)
