"""One error envelope for every API failure: {"error": {"code", "message", "details"}}.

``exception_handler`` is DRF's EXCEPTION_HANDLER. It lets DRF's own handler build
the response first (status, ``WWW-Authenticate``, ``Retry-After``, Django's 404 and
permission errors, the transaction rollback), then reshapes the body into the
envelope. Our ApplicationErrors enter DRF's handler as an APIException carrying
their status and wait, so their headers come from the same place. ``json_error``
builds the envelope where DRF is not involved (middleware, 404/500 handlers)."""

from __future__ import annotations

import logging

import redis
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .exceptions import ApplicationError, PayloadTooLarge, RateLimited, ServiceUnavailable

log = logging.getLogger("lambdasite.api")

_DRF_CODES = {
    drf.ValidationError: "validation_error",
    drf.ParseError: "malformed_json",
    drf.AuthenticationFailed: "unauthenticated",
    drf.NotAuthenticated: "unauthenticated",
    drf.PermissionDenied: "forbidden",
    drf.NotFound: "not_found",
    drf.MethodNotAllowed: "method_not_allowed",
    drf.NotAcceptable: "not_acceptable",
    drf.UnsupportedMediaType: "unsupported_media_type",
    drf.Throttled: "rate_limited",
}


def envelope(code: str, message: str, details: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def json_error(status: int, code: str, message: str, details: dict | None = None) -> JsonResponse:
    return JsonResponse(envelope(code, message, details), status=status)


def retry_after(error: ApplicationError) -> int | None:
    """The seconds an answer tells the client to wait (``Retry-After``), or None."""
    if isinstance(error, RateLimited):
        return error.retry_after
    if isinstance(error, ServiceUnavailable):
        return 1
    return None


def error_parts(error: ApplicationError) -> tuple[int, dict, dict[str, str]]:
    """(status, body, headers) of an ApplicationError's answer, as DRF's handler gives them below
    (the fast path sends these itself)."""
    wait = retry_after(error)
    headers = {"Retry-After": str(int(wait))} if wait is not None else {}  # as DRF writes it ("%d")
    return error.status, envelope(error.code, error.message, error.details), headers


class _Application(drf.APIException):
    """An ApplicationError as DRF sees it, so that DRF's handler sets its status and headers."""

    def __init__(self, error: ApplicationError) -> None:
        super().__init__(detail=error.message)
        self.error = error
        self.status_code = error.status
        wait = retry_after(error)
        if wait is not None:
            self.wait = wait


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, ApplicationError):
        exc = _Application(exc)
    elif isinstance(exc, RequestDataTooBig):
        exc = _Application(PayloadTooLarge("request body is too large"))
    elif isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        # Redis (rate buckets, the queue) is briefly away, e.g. restarting: nothing was accepted
        log.warning("redis unavailable during a request", exc_info=True, extra={"event": "redis_unavailable"})
        exc = _Application(ServiceUnavailable("a dependency is briefly unavailable; retry shortly"))
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # not an API error: Django's 500 handler answers (with the envelope under /api/)
    response.data = _body(exc)
    return response


def _body(exc: drf.APIException) -> dict:
    if isinstance(exc, _Application):
        error = exc.error
        return envelope(error.code, error.message, error.details)
    if isinstance(exc, drf.ValidationError):
        return envelope("validation_error", first_message(exc.detail), {"fields": exc.detail})
    code = next((code for cls, code in _DRF_CODES.items() if isinstance(exc, cls)), exc.default_code)
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return envelope(code, str(message))


def first_message(detail, prefix: str = "") -> str:
    """A one-line summary naming the first bad field, e.g. ``runtime: "ruby" is not a valid choice.``"""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors":
                name = prefix
            return first_message(value, name)
    if isinstance(detail, list) and detail:
        return first_message(detail[0], prefix)
    text = str(detail)
    return f"{prefix}: {text}" if prefix else text
