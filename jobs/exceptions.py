"""Errors of jobs (see lambdasite/exceptions.py for the base)."""

from __future__ import annotations

from lambdasite.exceptions import ApplicationError, Conflict, RateLimited


class IdempotencyConflict(ApplicationError):
    status = 422
    code = "idempotency_conflict"


class IdempotencyBusy(Conflict):
    code = "idempotency_busy"


class JobFinished(Conflict):
    code = "job_finished"


class JobNotFinished(Conflict):
    code = "job_not_finished"


class NotRetryable(Conflict):
    code = "not_retryable"


class QuotaExceeded(RateLimited):
    """The monthly compute budget is spent."""

    code = "quota_exceeded"
