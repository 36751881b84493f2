"""The request a route's function receives as its one argument, built from the raw HTTP request
(pure: no Django).

    {"method": "POST", "path": "/hello/ada", "params": {"name": "ada"},
     "query": {"a": ["1", "2"]}, "headers": {"content-type": ["application/json"]},
     "body": "...", "is_base64": false, "client_ip": "203.0.113.9",
     "route": "/hello/{name}", "delivery_id": null}

``path`` is the path below ``/fn/<tenant>`` as the server decoded it; ``query`` and ``headers`` are
multi-valued (every value, in order; header names lower-case). ``body`` is the text when it is UTF-8
without NUL, else base64 with ``is_base64: true``.

The platform's own credentials are redacted, never the function's: on a route whose auth is
``api_key`` or ``basic``, ``Authorization`` (and ``X-API-Key``) proved the caller to the platform and
are removed; the platform's session, CSRF and message cookies are removed from ``Cookie`` on every
route (a browser signed in to the dashboard sends them along). Signature headers stay: a function
may check them again, or read the timestamp. This is also what is stored with the job (its
``args``) and replayed."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from urllib.parse import parse_qsl

from lambdasite.parsers import args_problem

CREDENTIAL_HEADERS = {"api_key": ("authorization", "x-api-key"), "basic": ("authorization",)}


def body_fields(body: bytes) -> dict:
    """``{"body": text, "is_base64": false}``, or base64 for bytes that are not storable text."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        return {"body": base64.b64encode(body).decode("ascii"), "is_base64": True}
    return {"body": text, "is_base64": False}


def multi(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name, []).append(value)
    return out


def query_of(query_string: bytes) -> dict[str, list[str]]:
    text = query_string.decode("latin-1")
    return multi(parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="replace"))


def redacted_headers(
    headers: Iterable[tuple[str, str]], *, auth_type: str, platform_cookies: Iterable[str]
) -> dict[str, list[str]]:
    """Lower-case, multi-valued headers without the platform's credentials (see the module)."""
    dropped = set(CREDENTIAL_HEADERS.get(auth_type, ()))
    cookies = set(platform_cookies)
    kept = []
    for name, value in headers:
        name = name.lower()
        if name in dropped:
            continue
        if name == "cookie":
            value = _without_cookies(value, cookies)
            if not value:
                continue
        kept.append((name, value))
    return multi(kept)


def _without_cookies(header: str, names: set[str]) -> str:
    parts = [part.strip() for part in header.split(";")]
    return "; ".join(part for part in parts if part and part.split("=", 1)[0].strip() not in names)


def build(
    *,
    method: str,
    path: str,
    params: dict[str, str],
    query: dict[str, list[str]],
    headers: dict[str, list[str]],
    body: bytes,
    client_ip: str,
    route: str,
    delivery_id: str | None,
) -> dict:
    return {
        "method": method,
        "path": path,
        "params": params,
        "query": query,
        "headers": headers,
        **body_fields(body),
        "client_ip": client_ip,
        "route": route,
        "delivery_id": delivery_id,
    }


def unstorable(request: dict) -> str | None:
    """Why the request cannot be stored as a job's argument (a NUL in its query, path or headers),
    or None."""
    return args_problem([request])


def body_bytes(request: dict) -> bytes:
    """The raw body of a built (or stored) request."""
    body = request.get("body") or ""
    return base64.b64decode(body) if request.get("is_base64") else body.encode("utf-8")
