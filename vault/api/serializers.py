"""Request validation and response shapes of the secrets API: a value goes in, never out."""

from __future__ import annotations

from datetime import UTC

from django.urls import reverse
from rest_framework import serializers

from lambdasite.api.fields import StrictCharField, StrictSerializer

from ..models import Secret


class SecretPutSerializer(StrictSerializer):
    value = StrictCharField(
        trim_whitespace=False,
        help_text="the secret, as given (at most 64 KB of UTF-8, no NUL); never returned",
        style={"input_type": "password"},
    )


def _dt(value):
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def secret_body(secret: Secret) -> dict:
    """A secret as the API shows it: its name, current revision and fingerprint, when and by whom;
    its value is not in any answer (``secret`` comes from ``vault.selectors``, annotated)."""
    return {
        "name": secret.name,
        "revision": secret.latest_number,
        "fingerprint": secret.fingerprint,
        "created_at": _dt(secret.created_at),
        "updated_at": _dt(secret.updated_at),
        "updated_by": secret.updated_by,
        "links": {"self": reverse("api-secret-detail", args=[secret.name])},
    }


class SecretSchema(serializers.Serializer):
    name = serializers.CharField()
    revision = serializers.IntegerField(help_text="1 when created; each PUT adds one")
    fingerprint = serializers.CharField(
        help_text="12 hex digits of an HMAC of the value under the tenant's own key: tells revisions apart"
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    updated_by = serializers.CharField(help_text="the user, or the API key, that set the current value")
    links = serializers.DictField()
