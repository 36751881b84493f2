"""The jobs API's query strings (the shared ones, ``?wait=`` and line paging, are lambdasite.api's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import serializers

from lambdasite.api.query import MAX_SEQ, QueryFilter, integer_param
from sandbox import RUNTIMES

from ..models import Status


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


class ConnectionsFilter(QueryFilter):
    """``?attempt=`` (one attempt's connections; none: every attempt's), ``after`` (a seq) and ``limit``."""

    attempt = serializers.IntegerField(
        required=False,
        default=None,
        min_value=1,
        max_value=MAX_SEQ,
        error_messages={
            "invalid": "must be an attempt number",
            "min_value": "must be an attempt number (from 1)",
            "max_value": "must be an attempt number (from 1)",
            "max_string_length": "must be an attempt number (from 1)",
        },
    )
    after = integer_param(0, MAX_SEQ, 0)
    limit = integer_param(1, 1000, 100)
