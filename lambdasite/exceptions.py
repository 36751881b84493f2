"""The errors services raise: each carries its HTTP status and a stable machine-readable code.

These are the generic ones; each app keeps its own in its ``exceptions.py``
(``accounts/exceptions.py``, ``jobs/exceptions.py``). ``lambdasite/errors.py``
turns any of them into the one JSON envelope."""

from __future__ import annotations


class ApplicationError(Exception):
    """Raised by services; carries the HTTP status and a stable machine-readable code."""

    status = 400
    code = "bad_request"
    default_message = ""  # an error that always says the same thing is raised without one

    def __init__(
        self, message: str | None = None, *, details: dict | None = None, code: str | None = None
    ) -> None:
        message = self.default_message if message is None else message
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


class LimitReached(Forbidden):
    """A fixed cap is full: a count of things the tenant holds (functions, versions, schedules,
    provisioned cells). It does not refill with time, so it is never a 429 with ``Retry-After``
    (a client would wait and retry in vain): deleting something, or an operator raising the cap,
    is what helps. ``details`` names the cap (``quota``) and its ``limit``."""

    code = "quota_exceeded"


class RateLimited(ApplicationError):
    """Come back later: the answer carries ``Retry-After``."""

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
