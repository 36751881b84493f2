"""Query strings validated by serializers, one per endpoint that takes them.

A filter's errors become one ``400 validation_error``: ``details.fields`` holds the
first bad field's errors, and the message names that field (a filter may phrase it
in full with ``summaries``, keyed by field and error code)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import serializers

from lambdasite.exceptions import ValidationFailed
from sandbox import RUNTIMES

from ..models import Status

MAX_SEQ = 2**31 - 1


class QueryFilter(serializers.Serializer):
    summaries: dict[tuple[str, str], str] = {}

    @classmethod
    def parse(cls, request) -> dict:
        query = cls(data=request.query_params if hasattr(request, "query_params") else request.GET)
        if not query.is_valid():
            field = next(name for name in query.fields if name in query.errors)
            errors = query.errors[field]
            template = cls.summaries.get((field, getattr(errors[0], "code", "")), "{error}")
            message = template.format(
                error=errors[0], value=query.initial_data.get(field), **query.context_for_summary()
            )
            raise ValidationFailed(f"{field}: {message}", details={"fields": {field: errors}})
        return query.validated_data

    def context_for_summary(self) -> dict:
        return {}


def _integer(minimum: int, maximum: int, default: int) -> serializers.IntegerField:
    bound = f"must be between {minimum} and {maximum}"
    messages = {
        "invalid": "must be an integer",
        "min_value": bound,
        "max_value": bound,
        "max_string_length": bound,
    }
    return serializers.IntegerField(
        required=False, default=default, min_value=minimum, max_value=maximum, error_messages=messages
    )


class JobListFilter(QueryFilter):
    runtime = serializers.CharField(required=False, allow_blank=True, default="")
    status = serializers.CharField(required=False, allow_blank=True, default="")
    summaries = {
        ("runtime", "unknown"): "unknown runtime {value!r}",
        ("status", "unknown"): "unknown value {unknown!r}; use one of {statuses}",
    }

    def validate_runtime(self, value: str) -> str | None:
        if value and value not in RUNTIMES:
            raise serializers.ValidationError("unknown runtime", code="unknown")
        return value or None

    def validate_status(self, value: str) -> list[str]:
        statuses = [s for s in value.split(",") if s]
        unknown = [s for s in statuses if s not in Status.values]
        if unknown:
            self._unknown = unknown[0]
            raise serializers.ValidationError(f"unknown status {unknown[0]!r}", code="unknown")
        return statuses

    def context_for_summary(self) -> dict:
        return {"unknown": getattr(self, "_unknown", ""), "statuses": ", ".join(Status.values)}


class LogsFilter(QueryFilter):
    after = _integer(0, MAX_SEQ, 0)
    limit = _integer(1, 5000, 1000)


class WaitFilter(QueryFilter):
    """``?wait=N`` on submit: seconds to hold the answer for the result (at most WAIT_MAX_S)."""

    wait = serializers.CharField(required=False, allow_blank=True, default="")
    summaries = {("wait", "range"): "must be a number of seconds between 0 and {max:g}"}

    def validate_wait(self, value: str) -> float:
        if value == "":
            return 0.0
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if not (0 <= seconds <= settings.WAIT_MAX_S) or seconds != seconds:
            raise serializers.ValidationError(f"between 0 and {settings.WAIT_MAX_S:g}", code="range")
        return seconds

    def context_for_summary(self) -> dict:
        return {"max": settings.WAIT_MAX_S}


class StatsFilter(QueryFilter):
    since = serializers.CharField(required=False, allow_blank=True, default="")
    summaries = {
        ("since", "format"): "must be an ISO 8601 date-time",
        ("since", "future"): "must be in the past",
    }

    def validate_since(self, value: str) -> datetime:
        now = timezone.now()
        if not value:
            return now - timedelta(hours=24)
        try:
            parsed = parse_datetime(value)
        except ValueError:
            parsed = None
        if parsed is None:
            raise serializers.ValidationError("ISO 8601 date-time", code="format")
        try:
            since = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
        except (OverflowError, ValueError):
            raise serializers.ValidationError("out of range", code="range") from None
        if since > now:
            raise serializers.ValidationError("in the past", code="future")
        return since
