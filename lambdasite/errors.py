"""One error envelope for every API failure: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

log = logging.getLogger("lambdasite.api")


class ApplicationError(Exception):
    """Raised by services; carries the HTTP status and a stable machine-readable code."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: dict | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code:
            self.code = code


class ValidationFailed(ApplicationError):
    status = 400
    code = "validation_error"


class PayloadTooLarge(ApplicationError):
    status = 413
    code = "payload_too_large"


class NotFound(ApplicationError):
    status = 404
    code = "not_found"


class Conflict(ApplicationError):
    status = 409
    code = "conflict"


class Forbidden(ApplicationError):
    status = 403
    code = "forbidden"


class RateLimited(ApplicationError):
    status = 429
    code = "rate_limited"

    def __init__(
        self, message: str, *, retry_after: int, details: dict | None = None, code: str | None = None
    ) -> None:
        super().__init__(message, details={**(details or {}), "retry_after": retry_after}, code=code)
        self.retry_after = retry_after


class ServiceUnavailable(ApplicationError):
    status = 503
    code = "unavailable"


def envelope(code: str, message: str, details: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def json_error(status: int, code: str, message: str, details: dict | None = None) -> JsonResponse:
    return JsonResponse(envelope(code, message, details), status=status)


_DRF_CODES = {
    drf.ParseError: ("malformed_json", None),
    drf.AuthenticationFailed: ("unauthenticated", None),
    drf.NotAuthenticated: ("unauthenticated", None),
    drf.PermissionDenied: ("forbidden", None),
    drf.NotFound: ("not_found", None),
    drf.MethodNotAllowed: ("method_not_allowed", None),
    drf.NotAcceptable: ("not_acceptable", None),
    drf.UnsupportedMediaType: ("unsupported_media_type", None),
    drf.Throttled: ("rate_limited", None),
}


def exception_handler(exc: Exception, context: dict) -> Response | None:
    headers = {}
    if isinstance(exc, ApplicationError):
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(exc.retry_after)
        return Response(envelope(exc.code, exc.message, exc.details), status=exc.status, headers=headers)
    if isinstance(exc, RequestDataTooBig):
        return Response(envelope("payload_too_large", "request body is too large"), status=413)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf.PermissionDenied()
    if isinstance(exc, drf.ValidationError):
        return Response(
            envelope("validation_error", _first_message(exc.detail), {"fields": exc.detail}),
            status=400,
        )
    if isinstance(exc, drf.APIException):
        code = next((c for cls, (c, _) in _DRF_CODES.items() if isinstance(exc, cls)), exc.default_code)
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return Response(envelope(code, str(message)), status=exc.status_code, headers=headers)
    return None


def _first_message(detail, prefix: str = "") -> str:
    """A one-line summary naming the first bad field, e.g. ``runtime: "ruby" is not a valid choice.``"""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors":
                name = prefix
            return _first_message(value, name)
    if isinstance(detail, list) and detail:
        return _first_message(detail[0], prefix)
    text = str(detail)
    return f"{prefix}: {text}" if prefix else text
