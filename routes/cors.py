"""CORS for a route with allowed origins (pure): the preflight the platform answers itself, and the
headers added to every answer to an allowed origin. Without origins a route sends no CORS headers
and an ``OPTIONS`` request is the function's (if the route accepts it).

No credentials mode: routes authenticate with headers (``Authorization``, signatures), never with
the browser's cookies, so ``Access-Control-Allow-Credentials`` is never sent."""

from __future__ import annotations

import re
from collections.abc import Mapping

MAX_AGE_S = 600
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$|^\*$")


def origin_problem(origin: str) -> str | None:
    """Why ``origin`` cannot be an allowed origin (``*`` or scheme://host[:port]), or None."""
    if not isinstance(origin, str) or not _ORIGIN.match(origin):
        return f"{origin!r}: an origin is * or scheme://host[:port], without a path"
    return None


def is_preflight(method: str, headers: Mapping[str, str]) -> bool:
    return method == "OPTIONS" and "origin" in headers and "access-control-request-method" in headers


def allowed_origin(origins: list[str], origin: str | None) -> str | None:
    """The Access-Control-Allow-Origin value for a request from ``origin``, or None (not allowed)."""
    if not origin or not origins:
        return None
    if "*" in origins:
        return "*"
    return origin if origin.lower() in {o.lower() for o in origins} else None


def preflight(
    origins: list[str], methods: list[str], headers: Mapping[str, str]
) -> list[tuple[str, str]] | None:
    """The headers of the 204 answering a preflight, or None when its origin or method is not allowed."""
    allow = allowed_origin(origins, headers.get("origin"))
    if allow is None or headers.get("access-control-request-method", "").upper() not in methods:
        return None
    answer = [
        ("access-control-allow-origin", allow),
        ("access-control-allow-methods", ", ".join(methods)),
        ("access-control-max-age", str(MAX_AGE_S)),
    ]
    requested = headers.get("access-control-request-headers", "").strip()
    if requested:
        answer.append(("access-control-allow-headers", requested))
    answer.append(("vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"))
    return answer


def actual(origins: list[str], headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """The CORS headers of an answer to a (non-preflight) request."""
    allow = allowed_origin(origins, headers.get("origin"))
    if allow is None:
        return [("vary", "Origin")] if origins else []
    return [("access-control-allow-origin", allow), ("vary", "Origin")]
