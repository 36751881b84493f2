"""Errors of functions (see lambdasite/exceptions.py for the base)."""

from __future__ import annotations

from lambdasite.exceptions import Conflict, LimitReached, NotFound


class FunctionNotFound(NotFound):
    code = "function_not_found"


class VersionNotFound(NotFound):
    code = "version_not_found"


class AliasNotFound(NotFound):
    code = "alias_not_found"


class FunctionExists(Conflict):
    code = "function_exists"


class VersionNotReady(Conflict):
    """The function exists but has no version ready to run yet (its build is running or failed)."""

    code = "version_not_ready"


class VersionFailed(Conflict):
    """The version's build failed: it can never run (the message carries the build's error)."""

    code = "version_failed"


class FunctionDisabled(Conflict):
    code = "function_disabled"


class AliasInUse(Conflict):
    code = "alias_in_use"


class FunctionLimit(LimitReached):
    """A per-tenant cap on functions or provisioned cells is reached (403 quota_exceeded)."""


class VersionLimit(LimitReached):
    """A function has as many versions as its tenant's quota allows; waiting does not help."""
