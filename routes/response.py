"""The HTTP answer a route's function gives, shaped from its job's result (pure: no Django).

A result that is an object with an integer ``status`` and no keys but ``status``, ``headers``,
``body`` and ``is_base64`` is a response: ``status`` (200 to 599), ``headers`` ({name: value or
[values]}), ``body`` (text; base64 of bytes with ``is_base64: true``; any other JSON value is sent as
JSON). Any other result (``{"ok": true}``, ``[1, 2]``, ``"hi"``, ``null``) is sent as ``200
application/json``.

The platform keeps what belongs to the connection or to its own domain, whatever the function says:
hop-by-hop headers (``Connection``, ``Keep-Alive``, ``Transfer-Encoding``, ``TE``, ``Trailer``,
``Upgrade``, ``Proxy-*``), ``Content-Length``, ``Set-Cookie`` (a route shares the platform's domain:
a cookie set there would reach the dashboard), ``Strict-Transport-Security``, ``Date`` and ``Server``,
and on a route with CORS origins the ``Access-Control-*`` headers. Every answer also carries
``X-Content-Type-Options: nosniff`` and ``Content-Security-Policy: sandbox …``: a page a function
serves runs as an opaque origin, so its scripts cannot read or act on the dashboard on the same
host (a function's own CSP still applies: browsers enforce both)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field

RESPONSE_KEYS = frozenset({"status", "headers", "body", "is_base64"})
PLATFORM_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "content-length",
        "set-cookie",
        "strict-transport-security",
        "date",
        "server",
    }
)
SANDBOX_CSP = "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads"
PLATFORM_ADDED = [("x-content-type-options", "nosniff"), ("content-security-policy", SANDBOX_CSP)]
MAX_HEADERS = 100
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # control characters but tab
_NO_BODY = (204, 304)


class BadResponse(ValueError):
    """The result looks like a response but is not a valid one; the message says what is wrong."""


@dataclass
class Shaped:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)  # lower-case names, in order
    body: bytes = b""


def is_response(result) -> bool:
    return isinstance(result, dict) and type(result.get("status")) is int and not set(result) - RESPONSE_KEYS


def shape(result, *, cors_managed: bool = False) -> Shaped:
    """The answer ``result`` gives (see the module); raises ``BadResponse`` for a malformed response."""
    if not is_response(result):
        return Shaped(200, [("content-type", "application/json")], _json(result))
    status = result["status"]
    if not 200 <= status <= 599:
        raise BadResponse(f"status {status}: must be 200 to 599")
    headers = _headers(result.get("headers"), cors_managed)
    names = {name for name, _ in headers}
    body, default_type = _body(result.get("body"), result.get("is_base64", False))
    if status in _NO_BODY:
        body = b""
    elif "content-type" not in names:
        headers.insert(0, ("content-type", default_type))
    return Shaped(status, headers, body)


def _json(value) -> bytes:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    except ValueError as exc:
        raise BadResponse(f"result is not JSON: {exc}") from None


def _headers(value, cors_managed: bool) -> list[tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, dict):
        raise BadResponse("headers: must be an object of name: value (or [values])")
    out = []
    for name, values in value.items():
        if not _TOKEN.match(name):
            raise BadResponse(f"headers: {name!r} is not a header name")
        values = values if isinstance(values, list) else [values]
        lower = name.lower()
        if lower in PLATFORM_HEADERS or (cors_managed and lower.startswith("access-control-")):
            continue
        for item in values:
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                raise BadResponse(f"headers: {name}'s value must be text")
            text = str(item)
            if _BAD_VALUE.search(text) or not text.isascii() and not _latin1(text):
                raise BadResponse(f"headers: {name}'s value holds a character a header cannot carry")
            out.append((lower, text))
    if len(out) > MAX_HEADERS:
        raise BadResponse(f"headers: at most {MAX_HEADERS}")
    return out


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _body(value, is_base64) -> tuple[bytes, str]:
    if not isinstance(is_base64, bool):
        raise BadResponse("is_base64: must be true or false")
    if value is None:
        return b"", "text/plain; charset=utf-8"
    if is_base64:
        if not isinstance(value, str):
            raise BadResponse("body: with is_base64, must be base64 text")
        try:
            return base64.b64decode(value, validate=True), "application/octet-stream"
        except (binascii.Error, ValueError):
            raise BadResponse("body: is not valid base64") from None
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass"), "text/plain; charset=utf-8"
    return _json(value), "application/json"


TIMEOUT_ERRORS = ("Timeout", "CpuTimeExceeded")


def _error(status: int, code: str, message: str, details: dict) -> Shaped:
    body = {"error": {"code": code, "message": message, "details": details}}
    return Shaped(status, [("content-type", "application/json")], _json(body))


def of_job(
    job_id: str, status: str, result, error, *, expose_errors: bool = False, cors_managed: bool = False
) -> Shaped:
    """The answer of a finished job: its response when it succeeded (502 ``bad_response`` when that
    is malformed), 504 when it ran out of time, else 502 ``function_failed``. The error (with its
    traceback) is included only when the route exposes errors; the job id always is, for its owner."""
    if status == "succeeded":
        try:
            return shape(result, cors_managed=cors_managed)
        except BadResponse as exc:
            message = f"the function's response is malformed: {exc}"
            return _error(502, "bad_response", message, {"job_id": job_id})
    details: dict = {"job_id": job_id, "status": status}
    if expose_errors and error:
        details["error"] = error
    if status == "timed_out" or (error or {}).get("type") in TIMEOUT_ERRORS:
        return _error(504, "function_timeout", "the function did not answer within its time limit", details)
    return _error(502, "function_failed", "the function failed", details)


def pending(job_id: str, waited_s: float) -> Shaped:
    """504: the job has not finished within the route's wait (it still may: its Location says)."""
    return _error(
        504,
        "function_pending",
        f"the function has not answered within {waited_s:g} s; the job goes on",
        {"job_id": job_id},
    )


def accepted(job_id: str, location: str) -> Shaped:
    """202 of an async route: the job's id and where its owner reads it."""
    body = {"id": job_id, "links": {"self": location}}
    return Shaped(202, [("content-type", "application/json"), ("location", location)], _json(body))
