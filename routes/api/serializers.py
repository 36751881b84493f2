"""Request validation and response shapes of the routes API (shapes only: the rules of what a route
may say are the service's, ``routes/services/manage.py``)."""

from __future__ import annotations

from datetime import UTC

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from lambdasite.api.fields import QualifierField, StrictCharField, StrictIntegerField, StrictSerializer

from .. import signatures
from ..models import METHODS, AuthType, Mode, Route

AUTH_SCHEMA = {
    "type": "object",
    "description": (
        'How callers prove themselves: {"type": "none"}; {"type": "api_key"} (a key of this tenant that '
        'may write, in Authorization or X-API-Key); {"type": "basic", "username": "u", "secret": "NAME"} '
        '(the password is the tenant secret NAME); {"type": "hmac", "preset": "github" | "stripe" | "slack" '
        '| "standard-webhooks", "secret": "NAME"} (the signing key is the tenant secret NAME), or preset '
        '"custom" with "header", "algorithm" (sha256, sha1, sha512), "encoding" (hex, base64) and '
        'an optional "prefix" such as "sha256=".'
    ),
    "properties": {
        "type": {"type": "string", "enum": list(AuthType.values)},
        "username": {"type": "string"},
        "secret": {"type": "string"},
        "preset": {"type": "string", "enum": list(signatures.PRESETS)},
        "header": {"type": "string"},
        "algorithm": {"type": "string", "enum": list(signatures.ALGORITHMS)},
        "encoding": {"type": "string", "enum": list(signatures.ENCODINGS)},
        "prefix": {"type": "string"},
    },
    "required": ["type"],
    "additionalProperties": False,
}


@extend_schema_field(AUTH_SCHEMA)
class AuthField(serializers.Field):
    """A JSON object; what it may say is the service's to check."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError('an object such as {"type": "none"}')
        return data

    def to_representation(self, value):
        return value


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


def _methods_field() -> serializers.ListField:
    return serializers.ListField(
        child=serializers.ChoiceField(choices=METHODS),
        required=False,
        allow_empty=False,
        max_length=len(METHODS),
        help_text="the methods it accepts (default GET and POST); OPTIONS preflights of a route with "
        "cors are answered by the platform",
    )


class RouteUpdateSerializer(StrictSerializer):
    path = StrictCharField(
        required=False,
        max_length=300,
        help_text="below /fn/<tenant>: /stripe, /hello/{name}, /files/{path+} (the rest of the path)",
    )
    methods = _methods_field()
    qualifier = QualifierField(
        required=False,
        allow_blank=True,
        help_text="alias or version it invokes; blank or latest: the latest ready",
    )
    mode = serializers.ChoiceField(
        choices=Mode.values,
        required=False,
        help_text="sync: the function's answer; async: 202 with the job's Location at once",
    )
    auth = AuthField(required=False)
    delivery_header = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=100,
        help_text="a request header naming the delivery (its idempotency key), beyond the preset's own",
    )
    cors = serializers.ListField(
        child=StrictCharField(max_length=300),
        required=False,
        max_length=20,
        help_text='allowed origins ("https://app.example.com" or "*"); empty: no CORS',
    )
    max_body_bytes = StrictIntegerField(
        required=False, min_value=1, help_text="larger bodies get 413 (default 64 KiB)"
    )
    rate_limit_per_minute = StrictIntegerField(
        required=False, min_value=0, max_value=1_000_000, help_text="0: only the tenant's own limit"
    )
    expose_errors = StrictBooleanField(
        required=False, help_text="a failing function's error and traceback in its 502"
    )
    description = StrictCharField(required=False, allow_blank=True, max_length=200)


class RouteCreateSerializer(RouteUpdateSerializer):
    path = StrictCharField(
        max_length=300,
        help_text="below /fn/<tenant>: /stripe, /hello/{name}, /files/{path+} (the rest of the path)",
    )


class ReplaySerializer(StrictSerializer):
    qualifier = QualifierField(
        required=False, allow_blank=True, help_text="the version or alias to run it as; default: the route's"
    )


class RouteSchema(serializers.Serializer):
    id = serializers.UUIDField()
    function = serializers.CharField()
    path = serializers.CharField()
    url = serializers.CharField(help_text="where it is served, /fn/<tenant><path>")
    methods = serializers.ListField(child=serializers.ChoiceField(choices=METHODS))
    qualifier = serializers.CharField()
    mode = serializers.ChoiceField(choices=Mode.values)
    auth = AuthField()
    delivery_header = serializers.CharField()
    cors = serializers.ListField(child=serializers.CharField())
    max_body_bytes = serializers.IntegerField()
    rate_limit_per_minute = serializers.IntegerField()
    expose_errors = serializers.BooleanField()
    description = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


def _dt(value) -> str:
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def route_body(route: Route) -> dict:
    return {
        "id": str(route.id),
        "function": route.function.name,
        "path": route.path,
        "url": f"/fn/{route.tenant.slug}{'' if route.path == '/' else route.path}",
        "methods": list(route.methods),
        "qualifier": route.qualifier,
        "mode": route.mode,
        "auth": dict(route.auth),
        "delivery_header": route.delivery_header,
        "cors": list(route.cors),
        "max_body_bytes": route.max_body_bytes,
        "rate_limit_per_minute": route.rate_limit_per_minute,
        "expose_errors": route.expose_errors,
        "description": route.description,
        "created_at": _dt(route.created_at),
        "updated_at": _dt(route.updated_at),
    }
