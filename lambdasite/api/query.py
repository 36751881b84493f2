"""Query strings validated by serializers, one per endpoint that takes them, and the ones several
apps share: ``?wait=`` and line paging (``after``/``limit``).

A filter's errors become one ``400 validation_error``: ``details.fields`` holds the
first bad field's errors, and the message names that field (a filter may phrase it
in full with ``summaries``, keyed by field and error code)."""

from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings
from rest_framework import serializers

from lambdasite.exceptions import ValidationFailed

MAX_SEQ = 2**31 - 1


class QueryFilter(serializers.Serializer):
    summaries: dict[tuple[str, str], str] = {}

    @classmethod
    def parse(cls, source) -> dict:
        """``source``: a request (its query string) or the query as a mapping."""
        if not isinstance(source, Mapping):
            source = source.query_params if hasattr(source, "query_params") else source.GET
        query = cls(data=source)
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


class IntegerParam(serializers.IntegerField):
    """An integer query parameter: an empty ``?name=`` is a value that is not an integer (400), not
    the parameter left out, as DRF's form rule would take it (Schemathesis ST201: ``?after=``)."""

    def get_value(self, dictionary):
        if dictionary.get(self.field_name, None) == "":
            return ""
        return super().get_value(dictionary)


def integer_param(minimum: int, maximum: int, default: int) -> serializers.IntegerField:
    bound = f"must be between {minimum} and {maximum}"
    messages = {
        "invalid": "must be an integer",
        "min_value": bound,
        "max_value": bound,
        "max_string_length": bound,
    }
    return IntegerParam(
        required=False, default=default, min_value=minimum, max_value=maximum, error_messages=messages
    )


class LogsFilter(QueryFilter):
    after = integer_param(0, MAX_SEQ, 0)
    limit = integer_param(1, 5000, 1000)


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
