"""Strict request fields, and the serializer base that refuses unknown fields."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from lambdasite import ssrf
from lambdasite.parsers import MAX_ARGS_DEPTH, args_problem, json_problem, qualifier_problem
from sandbox.egress_policy import MAX_PATTERNS

INT_MAX = 2**31 - 1  # PostgreSQL's integer: a larger number would fail in the database, a 500


class StrictSerializer(serializers.Serializer):
    """A JSON object with only the declared fields."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["expected a JSON object"]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["unknown field"] for name in unknown})
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A string and only a string: 123 is a type error, not "123"."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class JsonValueField(serializers.JSONField):
    """Any JSON value that can be stored and served back (lambdasite.parsers' ``json_problem``, as
    arguments are checked); the schema calls it a ``JsonValue``."""

    def to_internal_value(self, data):
        problem = json_problem(data, max_depth=MAX_ARGS_DEPTH)
        if problem is not None:
            raise serializers.ValidationError(problem)
        return data


class StrictBooleanField(serializers.BooleanField):
    """true or false and only those: "yes", 1 or "true" are type errors."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class CodeField(StrictCharField):
    """Source code: kept as typed (no trimming), never blank, no NUL."""

    def __init__(self, **kwargs) -> None:
        super().__init__(trim_whitespace=False, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not value.strip():
            raise serializers.ValidationError("may not be blank")
        if "\x00" in value:
            raise serializers.ValidationError("may not contain NUL characters")
        return value


class StrictIntegerField(serializers.IntegerField):
    """An integer and only an integer: "5000", 5.5 and true are type errors; never beyond what an
    integer column holds, unless a field says otherwise."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_value", INT_MAX)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


def timeout_field(**kwargs) -> StrictIntegerField:
    """A job's wall-clock limit in ms (at least ``JOB_MIN_TIMEOUT_MS``; the tenant's cap is the service's)."""
    return StrictIntegerField(required=False, min_value=settings.JOB_MIN_TIMEOUT_MS, **kwargs)


def memory_field(**kwargs) -> StrictIntegerField:
    """A job's memory limit in MB (at least ``JOB_MIN_MEMORY_MB``; the tenant's cap is the service's)."""
    return StrictIntegerField(required=False, min_value=settings.JOB_MIN_MEMORY_MB, **kwargs)


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 time with its offset: a time without one is ambiguous, so refused."""

    def to_internal_value(self, value):
        if not isinstance(value, str):
            self.fail("invalid", format="ISO 8601 with an offset")
        parsed = super().to_internal_value(value)
        if "T" in value and not any(mark in value.split("T", 1)[1] for mark in ("Z", "z", "+", "-")):
            raise serializers.ValidationError("must include an offset, e.g. 2027-01-01T02:00:00+01:00 or …Z")
        return parsed


class ArgsField(serializers.JSONField):
    """Positional arguments: a JSON array that can be stored and served back (lambdasite.parsers'
    ``args_problem``: bounded depth, finite numbers, no NUL or lone surrogate). Checked before
    JSONField's own ``json.dumps``, which would recurse once per level of whatever it is given."""

    def to_internal_value(self, data):
        problem = args_problem(data)
        if problem is not None:
            raise serializers.ValidationError(problem)
        return data


class QualifierField(StrictCharField):
    """An alias name or a version number (lambdasite.parsers' ``qualifier_problem``); blank: none."""

    def __init__(self, **kwargs):
        super().__init__(max_length=64, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        problem = qualifier_problem(value) if value else None
        if problem is not None:
            raise serializers.ValidationError(problem)
        return value


class WebhookURLField(serializers.URLField):
    """A URL that may receive webhooks (public http(s) unless WEBHOOK_ALLOW_PRIVATE_NETWORKS)."""

    def __init__(self, **kwargs):
        super().__init__(max_length=2000, **kwargs)

    def to_internal_value(self, data):
        url = super().to_internal_value(data)
        try:
            ssrf.check_literal(url)  # no DNS on the submit path: the name is checked at delivery
        except ssrf.Refused as exc:
            raise serializers.ValidationError(str(exc)) from None
        return url


def later_fields() -> tuple:
    """``run_at``, ``delay_s``, ``callback_url``: the fields that run a job later and report its
    outcome, shared by every way to start one. Declared in a class body as
    ``run_at, delay_s, callback_url = later_fields()`` (a field's place in the schema and in error
    messages is its creation order); the serializer's ``validate`` calls ``when_from``."""
    return (
        AwareDateTimeField(required=False, help_text="run later: ISO 8601 with an offset"),
        StrictIntegerField(required=False, min_value=0, help_text="run later: seconds from now"),
        WebhookURLField(required=False, help_text="signed POST of the job when it ends"),
    )


def when_from(attrs: dict) -> dict:
    """``delay_s`` or ``run_at`` (not both) as the job's ``run_at``."""
    from datetime import timedelta

    from django.utils import timezone

    if "run_at" in attrs and "delay_s" in attrs:
        raise serializers.ValidationError({"run_at": ["give run_at or delay_s, not both"]})
    if "delay_s" in attrs:
        if attrs["delay_s"] > settings.JOB_MAX_DELAY_S:  # also keeps the date arithmetic in range
            raise serializers.ValidationError({"delay_s": [f"at most {settings.JOB_MAX_DELAY_S} s ahead"]})
        attrs["run_at"] = timezone.now() + timedelta(seconds=attrs["delay_s"])
    return attrs


# What a run reaches and is given (a function version's, an inline job's): the shapes here, the rules
# (patterns, names, the tenant's max_egress and secrets) in jobs.policy, one for both.

EGRESS_SCHEMA = {
    "oneOf": [
        {"type": "string", "enum": ["none", "public"]},
        {"type": "array", "items": {"type": "string", "maxLength": 300}, "maxItems": MAX_PATTERNS},
    ],
    "description": '"none" (default), "public" (any public address) or a list of "host:port" patterns '
    '("api.example.com:443", "*.example.com:443", "203.0.113.7:443", "[2001:db8::1]:443")',
}


@extend_schema_field(EGRESS_SCHEMA)
class EgressField(serializers.Field):
    """Where a run may connect: its shape here, its patterns by ``jobs.policy``."""

    def to_internal_value(self, data):
        if data in ("none", "public"):
            return data
        if isinstance(data, list) and len(data) <= MAX_PATTERNS and all(isinstance(p, str) for p in data):
            return data
        raise serializers.ValidationError(
            f'must be "none", "public" or a list of at most {MAX_PATTERNS} "host:port" patterns'
        )

    def to_representation(self, value):
        return value


def env_field(*, help_text: str = "") -> serializers.DictField:
    """Non-secret configuration, ``{NAME: value}`` (names and size checked by ``jobs.policy``)."""
    return serializers.DictField(
        child=StrictCharField(allow_blank=True, trim_whitespace=False),
        required=False,
        help_text="non-secret configuration, {NAME: value}; at most 4 KB, platform names (PATH, HTTP_PROXY, "
        f"LD_*, PYTHON*, NODE_*, …) refused{help_text}",
    )


def secrets_field(*, help_text: str = "") -> serializers.DictField:
    """Secret bindings, ``{ENV_NAME: secret name}`` (each secret must be the tenant's: ``jobs.policy``)."""
    return serializers.DictField(
        child=StrictCharField(max_length=64),
        required=False,
        help_text="secret bindings, {ENV_NAME: secret name}: each value reaches the job as that environment "
        f"variable and the file /run/secrets/ENV_NAME{help_text}",
    )
