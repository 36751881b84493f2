"""The hot endpoints' fast path: a small ASGI layer in front of Django that serves the requests it
can, and hands every other request to Django unchanged.

Django's ASGI handler costs a measured ~5 ms of CPU per submit before any work is done: the
middleware chain, a new thread per request with its loop<->thread crossings, DRF's request,
negotiation and response. The three hot endpoints (``POST /api/v1/jobs``,
``GET /api/v1/jobs/{id}``, ``POST /api/v1/functions/{name}/invoke``) are registered here with the
same handler their DRF view calls (``lambdasite/api/contract.py``): this module only chooses which
transport answers. It parses the request itself, authenticates the caller and calls the handler
in ONE call on a thread of a small pool; the handler's reply, or its refusal rendered as DRF's
exception handler renders it (``lambdasite.errors.error_parts``), is sent from here.

It falls through to Django, before anything is written, only for what it does not parse or
admit itself: a header or content type DRF would negotiate, a body its parser would refuse or
decode differently, a caller without a usable key or not allowed to write (DRF's authentication
and permissions answer those). Django then answers the request (its body replayed) exactly as it
always has. ``lambdasite/tests/test_fastpath.py`` sends the same requests to both paths and
compares status, headers and bodies. What Django's middleware adds to an answer is added here:
the security headers, the host check, the Prometheus request metrics.

``API_FAST_PATH=false`` turns it off (every request through Django)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache

from django.conf import settings
from django.db import close_old_connections
from django.http import QueryDict
from django.http.request import split_domain_port, validate_host
from rest_framework.permissions import SAFE_METHODS

from .api.contract import Call, Reply, held
from .caching import Cache
from .errors import envelope, error_parts
from .exceptions import ApplicationError
from .jsonbody import render_json
from .parsers import too_deep

log = logging.getLogger("lambdasite.api")

# DRF's JSON accepted as a request body: exactly these content types (anything else goes to Django)
_JSON_TYPES = {b"application/json", b"application/json; charset=utf-8", b"application/json;charset=utf-8"}
# DRF's content negotiation gives plain application/json for these Accept values
_ACCEPT_JSON = {"*/*", "application/*", "application/json"}


@dataclass
class Request:
    method: str
    path: str
    query: QueryDict  # parsed as Django parses it
    headers: dict[str, str]  # lower-case names; a repeated or underscored one: the request falls through
    body: bytes
    secure: bool
    started: float = field(default_factory=time.perf_counter)

    def json_body(self) -> tuple[bool, object]:
        """(parsed, the body as the API's parser reads it): not parsed, the request falls through
        and the parser gives its own answer. An empty body is ``{}``, as DRF gives it."""
        if not self.body:
            return True, {}
        if b"\\u" in self.body and re.search(rb"\\u[dD][89a-fA-F]", self.body):
            return False, None  # surrogate escapes: the parser's own 400 (or its decoding)
        if too_deep(self.body):
            return False, None  # the parser's 400, decided before any decoder recurses
        try:
            return True, json.loads(self.body.decode("utf-8"), parse_constant=_no_constant)
        except (ValueError, RecursionError):
            return False, None


def _no_constant(name):
    raise ValueError(name)  # NaN and Infinity are not JSON (DRF's strict parser refuses them)


@dataclass
class Answer:
    status: int
    body: bytes  # rendered JSON
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


Handler = Callable[..., Reply]  # handler(call, *path_args), lambdasite.api.contract's
# authenticate(authorization, x_api_key, write=) -> the caller DRF would admit, or None
Authenticate = Callable[..., object | None]


@dataclass
class Route:
    method: str
    pattern: re.Pattern
    view_name: str  # the URL name, as Django's resolver and the Prometheus metrics know it
    handler: Handler
    allow: str  # the Allow header DRF sends for the view (``allowed``)


def allowed(view) -> str:
    """The Allow header of a DRF function view, in the order DRF gives it in this process."""
    return ", ".join(view.cls().allowed_methods)


def json_answer(status: int, data=None, *, body: bytes | None = None, headers=()) -> Answer:
    return Answer(status, render_json(data) if body is None else body, list(headers))


def answer_of(reply: Reply) -> Answer:
    body = reply.body if isinstance(reply.body, bytes) else render_json(reply.body)
    headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in reply.headers.items()
    ]
    return Answer(reply.status, body, headers)


@cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(settings.API_FAST_PATH_THREADS, thread_name_prefix="fastpath")


async def in_thread(fn, *args):
    """Run ``fn`` (database work) on one of the fast path's threads; its connection is given back
    afterwards, as Django does when a request finishes."""

    def call():
        try:
            return fn(*args)
        finally:
            close_old_connections()

    return await asyncio.get_running_loop().run_in_executor(_executor(), call)


class FastPath:
    """ASGI app: a matching request that its handler answers is sent from here, any other to Django."""

    def __init__(self, django_app, routes: list[Route], authenticate: Authenticate) -> None:
        self.django_app = django_app
        self.routes = routes
        self.authenticate = authenticate
        self._host_ok: Cache[bool] = Cache(max_entries=1024)
        self._static_headers: list[tuple[bytes, bytes]] | None = None

    async def __call__(self, scope, receive, send):
        route = match = None
        if scope["type"] == "http" and settings.API_FAST_PATH and not scope.get("root_path"):
            path = scope["path"]
            for candidate in self.routes:
                # the whole path, as Django's resolver matches it: a route's "$" would also match
                # before a trailing newline (/api/v1/jobs%0A), which Django answers with a 404
                if candidate.method == scope["method"] and (found := candidate.pattern.fullmatch(path)):
                    route, match = candidate, found
                    break
        if route is None:
            return await self.django_app(scope, receive, send)
        request, receive = await self._request(scope, receive)
        answer = None
        if request is not None:
            try:
                answer = await self._answer(route, request, match.groups())
            except Exception as exc:  # noqa: BLE001 - answered as Django's handlers would (never a fall-through: work may be committed)
                answer = _failure(exc, request)
        if answer is None:
            return await self.django_app(scope, receive, send)
        await self._send(send, answer, route, request.secure)
        self._count(request, route, answer)

    async def _answer(self, route: Route, request: Request, path_args) -> Answer | None:
        reply = await in_thread(self._serve, route, request, path_args)
        if reply is None:
            return None
        return answer_of(await held(reply, in_thread))

    def _serve(self, route: Route, request: Request, path_args) -> Reply | None:
        """The handler's reply or refusal, on a database thread; None: Django answers."""
        parsed, data = request.json_body()
        if not parsed:
            return None
        headers = request.headers
        caller = self.authenticate(
            headers.get("authorization", ""),
            headers.get("x-api-key", ""),
            write=request.method not in SAFE_METHODS,  # as DRF's permission (HasTenant) asks
        )
        if caller is None:
            return None
        try:
            return route.handler(Call(caller, data, request.query, headers), *path_args)
        except ApplicationError as error:
            status, body, error_headers = error_parts(error)
            return Reply(status, body, error_headers)

    async def _request(self, scope, receive):
        """The request with its body read, or None to fall through; and the receive that Django
        must then use (replaying what was read)."""
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            key = name.decode("latin-1").lower()
            if key in headers or "_" in key:
                # repeated: Django joins them, we do not guess. An underscore (X_Api_Key): older
                # Django read it as X-Api-Key and joined the two, 5.2.x drops it, servers differ
                return None, receive
            headers[key] = value.decode("latin-1")
        secure = self._secure(scope, headers)
        if not self._host_allowed(headers.get("host")) or (settings.SECURE_SSL_REDIRECT and not secure):
            return None, receive
        accept = headers.get("accept", "*/*")
        if ";" in accept or not any(part.strip() in _ACCEPT_JSON for part in accept.split(",")):
            return None, receive  # indent=, versions or other types: DRF's negotiation answers
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            return None, receive
        if scope["method"] != "GET":
            if headers.get("content-type", "").lower().encode() not in _JSON_TYPES:
                return None, receive
            if "content-length" not in headers or length > settings.API_MAX_BODY_BYTES:
                return None, receive  # chunked or too large: Django's body limit answers
        elif length or "transfer-encoding" in headers:
            return None, receive
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return None, _replay(b"".join(chunks), message, receive)
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > length or not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if size != length:
            return None, _replay(body, None, receive)
        try:  # as Django's ASGIRequest reads it
            query = QueryDict(scope.get("query_string", b"").decode(), encoding=settings.DEFAULT_CHARSET)
        except UnicodeError:
            return None, _replay(body, None, receive)
        request = Request(scope["method"], scope["path"], query, headers, body, secure)
        return request, _replay(body, None, receive)

    def _secure(self, scope, headers) -> bool:
        proxy = settings.SECURE_PROXY_SSL_HEADER
        if proxy:
            name, value = proxy
            header = headers.get(name.removeprefix("HTTP_").replace("_", "-").lower())
            return header is not None and header.split(",", 1)[0].strip() == value
        return scope.get("scheme") == "https"

    def _host_allowed(self, host: str | None) -> bool:
        if not host or settings.USE_X_FORWARDED_HOST:
            return False
        return self._host_ok.get_or_load(host, lambda: _host_valid(host))

    def standard_headers(self, secure: bool) -> list[tuple[bytes, bytes]]:
        """What Django's SecurityMiddleware and XFrameOptionsMiddleware add to an API answer."""
        headers = []
        if secure and settings.SECURE_HSTS_SECONDS:
            value = f"max-age={settings.SECURE_HSTS_SECONDS}"
            if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
                value += "; includeSubDomains"
            if settings.SECURE_HSTS_PRELOAD:
                value += "; preload"
            headers.append((b"strict-transport-security", value.encode()))
        if settings.SECURE_CONTENT_TYPE_NOSNIFF:
            headers.append((b"x-content-type-options", b"nosniff"))
        if settings.SECURE_REFERRER_POLICY:
            policy = settings.SECURE_REFERRER_POLICY
            if not isinstance(policy, str):
                policy = ",".join(policy)
            headers.append((b"referrer-policy", policy.encode()))
        if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
            headers.append(
                (b"cross-origin-opener-policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY.encode())
            )
        headers.append((b"x-frame-options", getattr(settings, "X_FRAME_OPTIONS", "DENY").upper().encode()))
        return headers

    async def _send(self, send, answer: Answer, route: Route, secure: bool) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"allow", route.allow.encode()),
            *answer.headers,
            *self.standard_headers(secure),
            (b"content-length", str(len(answer.body)).encode()),
        ]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    def _count(self, request: Request, route: Route, answer: Answer) -> None:
        """The request metrics django_prometheus's middleware would have recorded."""
        try:
            _metrics().count(request, route, answer)
        except Exception:  # noqa: BLE001 - metrics never fail a request
            log.warning("could not record request metrics", exc_info=True)


def _host_valid(host: str) -> bool:
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


def _replay(body: bytes, pending, receive):
    """A receive that gives Django the body already read (and a message that came after it), then
    whatever the client sends next."""
    queue = [{"type": "http.request", "body": body, "more_body": False}]
    if pending is not None:
        queue.append(pending)

    async def replayed():
        if queue:
            return queue.pop(0)
        return await receive()

    return replayed


def _failure(exc: Exception, request: Request) -> Answer:
    """An unexpected error after the handler may have written something: answered as Django's
    exception handler and 500 handler would, never retried through Django."""
    import redis
    from psycopg_pool import PoolTimeout

    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        log.warning("redis unavailable during a request", exc_info=exc, extra={"event": "redis_unavailable"})
        message = "a dependency is briefly unavailable; retry shortly"
        return json_answer(503, envelope("unavailable", message, {}), headers=[(b"retry-after", b"1")])
    if isinstance(exc, PoolTimeout):
        message = "the service is busy; retry shortly"
        return json_answer(503, envelope("overloaded", message), headers=[(b"retry-after", b"1")])
    log.error("Internal Server Error: %s", request.path, exc_info=exc)
    return json_answer(500, envelope("internal_error", "internal server error"))


class _Metrics:
    """django_prometheus's request metrics, with the label children bound once per route and status."""

    def __init__(self) -> None:
        from django_prometheus.middleware import Metrics

        self.m = Metrics.get_instance()
        self.bound: dict[tuple, tuple] = {}

    def count(self, request: Request, route: Route, answer: Answer) -> None:
        m = self.m
        key = (route.view_name, request.method, answer.status, request.secure)
        bound = self.bound.get(key)
        if bound is None:
            status, method = str(answer.status), request.method
            bound = self.bound[key] = (
                m.requests_by_method.labels(method=method),
                m.requests_by_transport.labels(transport="https" if request.secure else "http"),
                m.requests_by_view_transport_method.labels(
                    view=route.view_name, transport="https" if request.secure else "http", method=method
                ),
                m.responses_by_status.labels(status=status),
                m.responses_by_status_view_method.labels(status=status, view=route.view_name, method=method),
                m.responses_by_charset.labels(charset="utf-8"),
                m.requests_latency_by_view_method.labels(view=route.view_name, method=method),
            )
        elapsed = time.perf_counter() - request.started
        m.requests_total.inc()
        m.responses_total.inc()
        m.requests_latency_before.observe(elapsed)
        m.requests_body_bytes.observe(len(request.body))
        m.responses_body_bytes.observe(len(answer.body))
        by_method, by_transport, by_view, by_status, by_status_view, by_charset, latency = bound
        for counter in (by_method, by_transport, by_view, by_status, by_status_view, by_charset):
            counter.inc()
        latency.observe(elapsed)


@cache
def _metrics() -> _Metrics:
    return _Metrics()
