"""A public request to a route, up to its job: everything that can refuse it runs before anything is
spent, in this order, and a refusal creates no job and takes no token:

1. the tenant and a route matching the path (404 for an unknown tenant, path or deleted route alike);
2. a CORS preflight, answered here (204, or 403 for an origin or method not allowed);
3. the method (405 with ``Allow``) and the body's size (413);
4. the route's auth: an API key of the tenant, a basic password, or a provider's signature and its
   timestamp window (401; 503 when the route's secret is gone);
5. then the job: the function's version resolved, the request built (``routes.request``), admission
   (the tenant's budget and rate, and the route's ``rate_limit_per_minute`` in the SAME Redis call:
   429 with Retry-After), and the insert. A delivery id (the provider's, or the route's
   ``delivery_header``) is the job's idempotency key, scoped to the route: the same delivery again
   is the first job, whose answer the transport gives again.

Runs on a database thread; the transport (``routes/api/public.py``) reads the request, calls
``route_request`` and waits for a sync route's job. The clock is injected for the signature
windows."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings

from accounts import ratelimit
from accounts.authentication import principal_for
from functions.exceptions import (
    AliasNotFound,
    FunctionDisabled,
    FunctionNotFound,
    VersionFailed,
    VersionNotFound,
)
from functions.services.invoke import invocation_spec
from jobs.exceptions import IdempotencyConflict
from jobs.services import submit
from lambdasite.exceptions import ApplicationError, PayloadTooLarge, RateLimited, ValidationFailed
from vault.exceptions import VaultUnavailable

from .. import cors, request, signatures
from ..exceptions import (
    BodyTooLarge,
    MethodNotAllowed,
    NoRoute,
    OriginNotAllowed,
    RouteUnavailable,
    SignatureExpired,
    SignatureInvalid,
    Unauthenticated,
)
from ..models import AuthType, Mode
from . import table

log = logging.getLogger("lambdasite.routes")

PLATFORM_COOKIES = ("sessionid", "csrftoken", "messages")
_UNAVAILABLE = (FunctionNotFound, FunctionDisabled, VersionNotFound, AliasNotFound, VersionFailed)


@dataclass(frozen=True)
class Incoming:
    """A public request as the transport read it."""

    method: str
    slug: str
    raw_path: str  # below /fn/<slug>, still percent-encoded
    path: str  # the same, decoded
    query_string: bytes
    headers: list[tuple[str, str]]  # lower-case names, in order, repeats kept
    body: bytes
    client_ip: str

    def first(self) -> dict[str, str]:
        """Each header's first value."""
        out: dict[str, str] = {}
        for name, value in self.headers:
            out.setdefault(name, value)
        return out


@dataclass
class Answer:
    """What to send at once: a refusal or a preflight. ``headers``: lower-case names."""

    status: int
    body: dict | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Accepted:
    """The request's job (new, or the first of its delivery)."""

    job_id: str
    created: bool
    route: table.Served
    headers: list[tuple[str, str]]  # CORS headers for the answer
    finished: tuple | None = None  # (status, result, error) of a repeated delivery's finished job


def route_request(incoming: Incoming, *, now: Callable[[], float] = time.time) -> Answer | Accepted:
    """The answer to ``incoming``, or its accepted job (see the module)."""
    at = table.generations()
    found_table = table.table_for(incoming.slug, at)
    found = found_table.match(incoming.raw_path) if found_table is not None else None
    if found is None:
        return _refused(NoRoute())
    route, params = found
    first = incoming.first()
    cors_headers = cors.actual(list(route.cors), first)
    try:
        if route.cors and cors.is_preflight(incoming.method, first):
            allowed = cors.preflight(list(route.cors), list(route.methods), first)
            if allowed is None:
                raise OriginNotAllowed("this origin or method is not allowed here")
            return Answer(204, None, allowed)
        _check_request(route, incoming)
        principal, delivery_id = _authenticate(route, found_table.tenant, first, incoming.body, now(), at)
        if route.delivery_header and first.get(route.delivery_header):
            delivery_id = first[route.delivery_header]
        job, created = _submit(found_table.tenant, route, params, incoming, principal, delivery_id)
    except ApplicationError as error:
        answer = _refused(error, route)
        answer.headers += cors_headers
        return answer
    finished = (job.status, job.result, job.error) if not created and job.is_finished else None
    return Accepted(str(job.id), created, route, cors_headers, finished)


def _check_request(route: table.Served, incoming: Incoming) -> None:
    if incoming.method not in route.methods:
        raise MethodNotAllowed(
            f"{incoming.method} is not accepted here", details={"allow": list(route.methods)}
        )
    if len(incoming.body) > route.max_body_bytes:
        raise BodyTooLarge(
            f"the body is over this route's {route.max_body_bytes} bytes",
            details={"limit": route.max_body_bytes},
        )


def _authenticate(route: table.Served, tenant, first: dict, body: bytes, now: float, at):
    """-> (the API key's principal or None, the delivery id the signature scheme names or None);
    raises the refusal."""
    kind = route.auth_type
    if kind == AuthType.NONE:
        return None, None
    if kind == AuthType.API_KEY:
        principal = principal_for(first.get("authorization", ""), first.get("x-api-key", ""))
        if principal is None or principal.tenant.pk != tenant.pk or not principal.can_write:
            raise Unauthenticated("a valid API key of this tenant, allowed to write, is required")
        return principal, None
    key = _secret(route, tenant, at)
    if kind == AuthType.BASIC:
        if not _basic_ok(first.get("authorization", ""), route.auth["username"], key):
            raise Unauthenticated("a valid user and password are required")
        return None, None
    scheme = signatures.Scheme(
        preset=route.auth["preset"],
        header=route.auth.get("header", ""),
        algorithm=route.auth.get("algorithm", "sha256"),
        encoding=route.auth.get("encoding", "hex"),
        prefix=route.auth.get("prefix", ""),
    )
    try:
        delivery = signatures.verify(
            scheme, key, first, body, now=now, tolerance=settings.ROUTE_SIGNATURE_TOLERANCE_S
        )
    except signatures.Refused as refused:
        if refused.expired:
            raise SignatureExpired(f"signature refused: {refused.reason}") from None
        raise SignatureInvalid(f"signature refused: {refused.reason}") from None
    return None, delivery


def _secret(route: table.Served, tenant, at) -> str:
    name = route.auth.get("secret", "")
    try:
        value = table.secret_value(tenant, name, at)
    except VaultUnavailable:
        value = None
    if value is None:
        extra = {"event": "route_secret_missing", "tenant": tenant.slug, "route": route.path}
        log.warning("route %s: its secret %s cannot be read", route.path, name, extra=extra)
        raise RouteUnavailable()
    return value


def _basic_ok(header: str, username: str, password: str) -> bool:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, sep, given = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, ValueError):
        return False
    # both compared, in constant time, whatever the first says
    same_user = hmac.compare_digest(user.encode(), username.encode())
    same_password = hmac.compare_digest(given.encode(), password.encode())
    return bool(sep) and same_user and same_password


def idempotency_key(route_id, delivery_id: str) -> str:
    """The job's idempotency key of a route's delivery (scoped to the route; a long id hashed)."""
    if len(delivery_id) > 200:
        delivery_id = "sha256:" + hashlib.sha256(delivery_id.encode()).hexdigest()
    return f"route:{route_id}:{delivery_id}"


def delivery_digest(incoming: Incoming) -> str:
    """What the same delivery must repeat: method, path, query and body (a provider's retry re-signs
    its headers, so they are not compared)."""
    digest = hashlib.sha256()
    for part in (incoming.method.encode(), incoming.raw_path.encode(), incoming.query_string, incoming.body):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def _submit(tenant, route: table.Served, params: dict, incoming: Incoming, principal, delivery_id):
    built = request.build(
        method=incoming.method,
        path=incoming.path,
        params=params,
        query=request.query_of(incoming.query_string),
        headers=request.redacted_headers(
            incoming.headers, auth_type=route.auth_type, platform_cookies=PLATFORM_COOKIES
        ),
        body=incoming.body,
        client_ip=incoming.client_ip,
        route=route.path,
        delivery_id=delivery_id,
    )
    if problem := request.unstorable(built):
        raise ValidationFailed(f"this request cannot be stored: it {problem}")
    try:
        spec = invocation_spec(
            tenant=tenant, name=route.function_name, qualifier=route.qualifier or None, args=[built]
        )
    except _UNAVAILABLE as error:
        extra = {"event": "route_unavailable", "tenant": tenant.slug, "route": route.path}
        log.warning("route %s cannot invoke its function: %s", route.path, error.message, extra=extra)
        raise RouteUnavailable() from None
    also = None
    if route.rate_limit_per_minute:
        also = ratelimit.Bucket(
            f"route:{route.id}", route.rate_limit_per_minute, "requests per minute to this route"
        )
    try:
        return submit.job_submit(
            tenant=tenant,
            api_key=principal.api_key if principal is not None else None,
            spec=spec,
            idempotency_key=idempotency_key(route.id, delivery_id) if delivery_id else None,
            origin=submit.Origin.of_route(route.id, route.path),
            digest=delivery_digest(incoming),
            also=also,
        )
    except IdempotencyConflict:
        raise IdempotencyConflict("this delivery id was already used with a different request") from None
    except PayloadTooLarge:
        raise BodyTooLarge("the request is over this tenant's cap on a job's arguments") from None


def _refused(error: ApplicationError, route: table.Served | None = None) -> Answer:
    """The JSON answer of a refusal, with what its status needs (Allow, Retry-After,
    WWW-Authenticate). A refusal of the tenant's own limits says so without their figures."""
    details = {}
    headers: list[tuple[str, str]] = []
    if isinstance(error, RateLimited):
        headers.append(("retry-after", str(int(error.retry_after))))
        details = {"retry_after": error.retry_after}
    if isinstance(error, MethodNotAllowed):
        headers.append(("allow", ", ".join(error.details["allow"])))
    if isinstance(error, Unauthenticated) and route is not None:
        if route.auth_type == AuthType.BASIC:
            headers.append(("www-authenticate", 'Basic realm="route", charset="UTF-8"'))
        elif route.auth_type == AuthType.API_KEY:
            headers.append(("www-authenticate", 'Bearer realm="route"'))
    if isinstance(error, (BodyTooLarge, MethodNotAllowed)):
        details = {k: v for k, v in error.details.items() if k in ("limit", "allow")}
    if error.status >= 500 and not isinstance(error, RouteUnavailable):
        headers.append(("retry-after", "1"))
    body = {"error": {"code": error.code, "message": error.message, "details": details}}
    return Answer(error.status, body, headers)


def mode_is_async(route: table.Served) -> bool:
    return route.mode == Mode.ASYNC
