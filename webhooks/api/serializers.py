"""Request validation and response shapes of the webhooks API."""

from __future__ import annotations

from datetime import UTC

from rest_framework import serializers

from lambdasite.api.fields import StrictCharField, StrictSerializer

from ..models import EVENT_TYPES, Delivery, WebhookEndpoint


class EndpointCreateSerializer(StrictSerializer):
    url = StrictCharField(max_length=2000, help_text="https (or http) to a public address")
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPES),
        allow_empty=False,
        help_text="event types to receive",
    )
    function = StrictCharField(required=False, max_length=64, help_text="only this function's jobs")
    description = StrictCharField(required=False, allow_blank=True, max_length=200)


class EndpointUpdateSerializer(StrictSerializer):
    url = StrictCharField(required=False, max_length=2000)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPES), allow_empty=False, required=False
    )
    enabled = serializers.BooleanField(required=False)
    description = StrictCharField(required=False, allow_blank=True, max_length=200)


def _dt(value):
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def endpoint_body(endpoint: WebhookEndpoint, *, secret: bool = False) -> dict:
    base = f"/api/v1/webhooks/{endpoint.id}"
    body = {
        "id": str(endpoint.id),
        "url": endpoint.url,
        "events": endpoint.events,
        "function": endpoint.function.name if endpoint.function_id else None,
        "description": endpoint.description,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason or None,
        "failing_since": _dt(endpoint.failing_since),
        "created_at": _dt(endpoint.created_at),
        "links": {"self": base, "deliveries": f"{base}/deliveries"},
    }
    if secret:
        body["secret"] = endpoint.secret  # shown once: when created and when rotated
    return body


def delivery_body(delivery: Delivery, *, attempts: bool = True) -> dict:
    body = {
        "id": str(delivery.id),
        "webhook_id": delivery.webhook_id,
        "type": delivery.type,
        "url": delivery.url,
        "job_id": str(delivery.job_id) if delivery.job_id else None,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": _dt(delivery.next_attempt_at),
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error or None,
        "created_at": _dt(delivery.created_at),
        "delivered_at": _dt(delivery.delivered_at),
    }
    if attempts:
        body["attempt_history"] = [
            {
                "number": a.number,
                "started_at": _dt(a.started_at),
                "status_code": a.status_code,
                "latency_ms": a.latency_ms,
                "error": a.error or None,
            }
            for a in delivery.attempt_set.all()
        ]
    return body


class EndpointSchema(serializers.Serializer):
    id = serializers.UUIDField()
    url = serializers.URLField()
    events = serializers.ListField(child=serializers.CharField())
    function = serializers.CharField(allow_null=True)
    description = serializers.CharField()
    enabled = serializers.BooleanField()
    disabled_reason = serializers.CharField(allow_null=True)
    failing_since = serializers.DateTimeField(allow_null=True)
    secret = serializers.CharField(required=False, help_text="only when created or rotated")
    created_at = serializers.DateTimeField()
    links = serializers.DictField()


class DeliverySchema(serializers.Serializer):
    id = serializers.UUIDField()
    webhook_id = serializers.CharField()
    type = serializers.CharField()
    url = serializers.URLField()
    job_id = serializers.UUIDField(allow_null=True)
    status = serializers.ChoiceField(choices=Delivery.Status.values)
    attempts = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    delivered_at = serializers.DateTimeField(allow_null=True)
    attempt_history = serializers.ListField(child=serializers.DictField(), required=False)
