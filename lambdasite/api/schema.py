"""OpenAPI pieces shared by the API's views: the error envelope and the answers each may give."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


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
