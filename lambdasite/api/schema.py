"""OpenAPI pieces shared by the API's views: the error envelope and the answers each may give."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from .contract import IDEMPOTENCY_KEY_MAX


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField()


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


_TEXT = {
    400: "invalid input (the message names the field)",
    401: "missing, malformed or revoked API key",
    403: "key is read-only or tenant is suspended",
    404: "no such job for this tenant",
    409: "not allowed in the job's current state",
    413: "body, code or args over the size cap",
    422: "Idempotency-Key reused with a different body",
    429: "rate limited",
}


def errors(*statuses: int) -> dict:
    return {status: OpenApiResponse(ErrorSerializer, description=_TEXT[status]) for status in statuses}


def paged_by(paginator_class):
    """Marks a function view's list answers as pages of ``paginator_class`` for the schema (the
    view pages with it itself): drf-spectacular then describes the page object the paginator
    returns, ``{next, previous, results}``, instead of a bare array."""

    def mark(view):
        view.cls.pagination_class = paginator_class
        return view

    return mark


def wait_parameter(description: str = "seconds to wait for the result") -> OpenApiParameter:
    """``?wait=N`` (``lambdasite.api.query.WaitFilter``) as the schema describes it: seconds, or
    empty (``?wait=``), which WaitFilter reads as 0 on both transports."""
    seconds = {"type": "number", "minimum": 0, "maximum": settings.WAIT_MAX_S}
    schema = {"anyOf": [seconds, {"type": "string", "maxLength": 0}]}
    return OpenApiParameter("wait", schema, description=description)


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX},
    location=OpenApiParameter.HEADER,
    required=False,
)
