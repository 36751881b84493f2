"""One endpoint, two transports.

An endpoint's handler is a plain function: ``handler(call, *path_args) -> Reply``. It validates the
request with the endpoint's serializers, calls one service, and returns the answer; a refusal is an
``ApplicationError`` it raises (``validated`` turns a serializer's errors into one). It runs on a
thread that may use the database, and knows nothing of how the request arrived.

Two transports call it:
- DRF (``respond``): the view builds the ``Call`` with ``call_of(request)`` and answers with
  ``respond(handler(...))``; an error goes through DRF's exception handler as before.
- the fast path (``lambdasite/fasthttp.py``): it parses the raw request, authenticates the caller
  and calls the same handler; an error is rendered with ``lambdasite.errors.error_parts``, the
  function DRF's handler uses. It falls through to Django only for what it cannot parse or
  authenticate; it never restates a rule.

A reply may carry a ``Hold``: the answer is held until a job finishes or the hold's seconds pass
(``?wait=N``); ``held`` is that wait for both transports."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.views.decorators.csrf import csrf_exempt
from rest_framework.response import Response

from lambdasite.errors import first_message
from lambdasite.exceptions import ValidationFailed

IDEMPOTENCY_KEY_MAX = 255


@dataclass(frozen=True)
class Call:
    """One API request as a handler sees it, whichever transport brought it."""

    caller: Any  # accounts.authentication.ApiPrincipal: .tenant, .api_key
    data: Any  # the parsed JSON body: {} when there is none, None for a body of null
    query: Mapping[str, str]  # a QueryDict, parsed as Django parses a query string
    headers: Mapping[str, str]  # read with lower-case names

    @property
    def tenant(self):
        return self.caller.tenant

    @property
    def api_key(self):
        return self.caller.api_key

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Hold:
    """What a reply waits for before it is sent: ``finished(seconds)`` -> the finished body as the
    API renders it (bytes), True (finished: ``read()`` it on a database thread) or False (not yet)."""

    seconds: float
    finished: Callable[[float], Awaitable[bytes | bool]]
    read: Callable[[], Any]


@dataclass
class Reply:
    status: int
    body: Any  # data to render as JSON, or bytes already rendered as the API renders them
    headers: dict[str, str] = field(default_factory=dict)
    hold: Hold | None = None


def validated(serializer_class, data, **kwargs) -> dict:
    """``data`` as ``serializer_class`` validates it; its errors are one ``ValidationFailed`` (400),
    the same envelope DRF's exception handler gives a serializer's ``ValidationError``."""
    incoming = serializer_class(data=data, **kwargs)
    if not incoming.is_valid():
        raise ValidationFailed(first_message(incoming.errors), details={"fields": incoming.errors})
    return incoming.validated_data


def idempotency_key(call: Call) -> str | None:
    """The ``Idempotency-Key`` header (1 to 255 characters), or None when absent."""
    key = call.header("Idempotency-Key")
    if key is not None and not (0 < len(key) <= IDEMPOTENCY_KEY_MAX):
        raise ValidationFailed(
            f"Idempotency-Key: must be 1 to {IDEMPOTENCY_KEY_MAX} characters",
            details={"fields": {"Idempotency-Key": [f"1 to {IDEMPOTENCY_KEY_MAX} characters"]}},
        )
    return key


async def held(reply: Reply, run_sync: Callable[[Callable], Awaitable[Any]]) -> Reply:
    """``reply`` after its hold: 200 with the finished body when the job finished in time (the
    reply's headers stay, its Location included), else ``reply`` itself. ``run_sync(fn)`` runs a
    database read the way the transport runs them."""
    hold = reply.hold
    if hold is None or hold.seconds <= 0:
        return reply
    finished = await hold.finished(min(hold.seconds, settings.WAIT_MAX_S))
    if not finished:
        return reply
    body = finished if isinstance(finished, bytes) else await run_sync(hold.read)
    if body is None:  # deleted in between
        return reply
    return Reply(200, body, reply.headers)


# DRF, the transport of every endpoint


def call_of(request) -> Call:
    """The ``Call`` of a DRF request (authenticated and permitted by DRF)."""
    return Call(request.user, request.data, request.query_params, request.headers)


def respond(reply: Reply) -> Response:
    response = Response(reply.body, status=reply.status, headers=reply.headers or None)
    response.reply = reply  # for ``holding`` (the view's async wrapper)
    return response


def respond_created(body: dict) -> Response:
    """201 with the new thing's body and its Location (its ``links.self``)."""
    return Response(body, status=201, headers={"Location": body["links"]["self"]})


def holding(view):
    """An async wrapper of a DRF function view whose replies may hold (``?wait``): the view runs on
    Django's sync thread; the wait is awaited off it, with the request's database connection given
    back to the pool (a waiting request must not hold one of DB_POOL_MAX_SIZE for up to WAIT_MAX_S)."""

    @csrf_exempt
    async def endpoint(request, *args, **kwargs):
        response = await sync_to_async(view)(request, *args, **kwargs)
        reply = getattr(response, "reply", None)
        if reply is None or reply.hold is None or reply.hold.seconds <= 0:
            return response
        await sync_to_async(_release_connections)()
        final = await held(reply, lambda read: sync_to_async(read)())
        if final is not reply:
            body = json.loads(final.body) if isinstance(final.body, bytes) else final.body
            response.data, response.status_code, response._is_rendered = body, final.status, False
        return response

    endpoint.__doc__ = view.__doc__
    endpoint.cls = view.cls  # the schema generator describes the DRF view behind the wrapper
    endpoint.initkwargs = view.initkwargs
    return endpoint


def _release_connections() -> None:
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:  # (a test's wrapping transaction stays open)
            conn.close()


def read_update_delete(request, found, *, render, update, delete, changes) -> Response:
    """GET, PATCH or DELETE of one thing the caller's tenant owns (``found``, already looked up):
    GET renders it; PATCH validates the body with ``changes`` (a serializer) and answers
    ``render(update(found, fields))``; DELETE answers 204 after ``delete(found)``."""
    if request.method == "DELETE":
        delete(found)
        return Response(status=204)
    if request.method == "PATCH":
        found = update(found, validated(changes, request.data))
    return Response(render(found))
