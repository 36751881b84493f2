"""The public transport of routes: ``/fn/<tenant-slug>/<path>`` served by a small ASGI layer in front
of the rest of the application (``lambdasite/asgi.py``), never by Django's URL resolver.

Like the API's fast path it reads the request itself and makes ONE call on a database thread
(``routes.services.serve.route_request``: lookup, CORS, checks, auth, admission, the job); a sync
route then waits for its job's completion signal (``jobs.completion``, no database connection held
while waiting) and sends the function's answer (``routes.response``). Every answer — the function's
or a refusal — is sent from here with the same platform headers, so there is one transport and one
contract: ``routes/tests/test_contract.py`` records its answers byte for byte.

The body is read up to ``ROUTE_MAX_BODY_BYTES`` (a declared length beyond it is refused unread);
the route's own ``max_body_bytes`` is checked with the route. ``client_ip`` is the ASGI client, which
uvicorn takes from ``X-Forwarded-For`` only when the peer is a trusted proxy
(``--forwarded-allow-ips``)."""

from __future__ import annotations

import json
import logging
import time
from urllib.parse import unquote

from django.conf import settings
from django.http.request import split_domain_port, validate_host
from prometheus_client import Counter

from jobs import completion
from jobs.rendering import job_path
from lambdasite.caching import Cache
from lambdasite.fasthttp import in_thread
from lambdasite.jsonbody import render_json

from .. import response, selectors
from ..services import serve

log = logging.getLogger("lambdasite.routes")

PREFIX = "/fn/"
REQUESTS = Counter("lambdasite_route_requests", "Requests to routes, by the answer's status", ["status"])


class RouteServer:
    """ASGI: a request under ``/fn/`` is a route's; any other goes to ``app`` unchanged."""

    def __init__(self, app, *, clock=time.time) -> None:
        self.app = app
        self.clock = clock
        self._hosts: Cache[bool] = Cache(max_entries=1024)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            return await self.app(scope, receive, send)
        try:
            shaped = await self._serve(scope, receive)
        except Exception as exc:  # noqa: BLE001 - answered as the API's fast path answers it
            shaped = _failure(exc, scope)
        await self._send(send, scope, shaped)
        REQUESTS.labels(status=str(shaped.status)).inc()

    async def _serve(self, scope, receive) -> response.Shaped:
        headers = [(n.decode("latin-1").lower(), v.decode("latin-1")) for n, v in scope["headers"]]
        host = _host(headers)
        if not self._hosts.get_or_load(host, lambda: _host_valid(host)):
            return _refusal(400, "bad_request", "invalid Host header")
        body = await _body(headers, receive)
        if body is None:
            limit = settings.ROUTE_MAX_BODY_BYTES
            return _refusal(413, "payload_too_large", f"the body is over {limit} bytes", {"limit": limit})
        incoming = _incoming(scope, headers, body)
        if incoming is None:
            return _refusal(404, "not_found", "no route here")
        outcome = await in_thread(lambda: serve.route_request(incoming, now=self.clock))
        if isinstance(outcome, serve.Answer):
            body_bytes = b"" if outcome.body is None else render_json(outcome.body)
            content = [("content-type", "application/json")] if outcome.body is not None else []
            return response.Shaped(outcome.status, content + outcome.headers, body_bytes)
        return await self._answer(outcome)

    async def _answer(self, accepted: serve.Accepted) -> response.Shaped:
        route, job_id = accepted.route, accepted.job_id
        location = job_path(job_id)
        if serve.mode_is_async(route):
            shaped = response.accepted(job_id, location)
        else:
            finished = accepted.finished
            if finished is None:
                finished = await _finished(job_id, settings.ROUTE_WAIT_S)
            if finished is None:
                shaped = response.pending(job_id, settings.ROUTE_WAIT_S)
                shaped.headers.append(("location", location))
            else:
                status, result, error = finished
                shaped = response.of_job(
                    job_id,
                    status,
                    result,
                    error,
                    expose_errors=route.expose_errors,
                    cors_managed=bool(route.cors),
                )
        shaped.headers += accepted.headers
        return shaped

    async def _send(self, send, scope, shaped: response.Shaped) -> None:
        headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in shaped.headers]
        headers += [(n.encode(), v.encode()) for n, v in response.PLATFORM_ADDED]
        if _secure(scope, shaped) and settings.SECURE_HSTS_SECONDS:
            headers.append((b"strict-transport-security", f"max-age={settings.SECURE_HSTS_SECONDS}".encode()))
        headers.append((b"content-length", str(len(shaped.body)).encode()))
        await send({"type": "http.response.start", "status": shaped.status, "headers": headers})
        await send({"type": "http.response.body", "body": shaped.body})


async def _finished(job_id: str, seconds: float):
    """(status, result, error) once the job finishes within ``seconds``, else None."""
    done = await completion.wait_finished(job_id, seconds)
    if not done:
        return None
    if isinstance(done, bytes):
        try:
            body = json.loads(done)
            return body["status"], body.get("result"), body.get("error")
        except (ValueError, KeyError, TypeError):
            pass
    return await in_thread(selectors.job_outcome, job_id)


async def _body(headers, receive) -> bytes | None:
    """The request's body, or None when it is over ROUTE_MAX_BODY_BYTES (read no further)."""
    limit = settings.ROUTE_MAX_BODY_BYTES
    declared = next((v for n, v in headers if n == "content-length"), None)
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away: whatever it sent
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            return None
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _incoming(scope, headers, body: bytes) -> serve.Incoming | None:
    raw = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    if not raw.startswith(PREFIX):
        return None  # a path the server decoded into /fn/ (%2Ffn%2F...): no route's
    slug, _, rest = raw[len(PREFIX) :].partition("/")
    decoded_slug = unquote(slug)
    path = scope["path"][len(PREFIX) + len(decoded_slug) :] or "/"
    client = scope.get("client") or ("", 0)
    return serve.Incoming(
        method=scope["method"],
        slug=slug,
        raw_path="/" + rest,
        path=path,
        query_string=scope.get("query_string", b""),
        headers=headers,
        body=body,
        client_ip=client[0] or "",
    )


def _refusal(status: int, code: str, message: str, details: dict | None = None) -> response.Shaped:
    body = render_json({"error": {"code": code, "message": message, "details": details or {}}})
    return response.Shaped(status, [("content-type", "application/json")], body)


def _host(headers) -> str:
    """The host the request names, as Django reads it (X-Forwarded-Host first when trusted)."""
    if settings.USE_X_FORWARDED_HOST:
        forwarded = next((v for n, v in headers if n == "x-forwarded-host"), "")
        if forwarded:
            return forwarded.split(",")[-1].strip()
    return next((v for n, v in headers if n == "host"), "")


def _host_valid(host: str) -> bool:
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


def _secure(scope, shaped) -> bool:
    proxy = settings.SECURE_PROXY_SSL_HEADER
    if proxy:
        name, value = proxy
        wanted = name.removeprefix("HTTP_").replace("_", "-").lower().encode()
        header = next((v for n, v in scope["headers"] if n.lower() == wanted), None)
        return header is not None and header.decode("latin-1").split(",", 1)[0].strip() == value
    return scope.get("scheme") == "https"


def _failure(exc: Exception, scope) -> response.Shaped:
    """An unexpected error: 503 for a dependency away (retry), else 500; never a traceback."""
    import redis
    from psycopg_pool import PoolTimeout

    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, PoolTimeout)):
        log.warning("a dependency is unavailable during a route's request", exc_info=exc)
        shaped = _refusal(503, "unavailable", "a dependency is briefly unavailable; retry shortly")
        shaped.headers.append(("retry-after", "1"))
        return shaped
    log.error("Internal Server Error: %s", scope.get("path"), exc_info=exc)
    return _refusal(500, "internal_error", "internal server error")
