"""Creating, changing and deleting routes: every rule of what a route may say lives here (the API's
serializers and the dashboard's form only check shapes). A refusal names its field, as the API's
validation errors do (``details.fields``)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction

from accounts.guards import tenant_require_active
from functions.models import Function
from functions.services.invoke import qualifier_refusal
from lambdasite.exceptions import ValidationFailed
from vault import selectors as vault_selectors
from vault.validation import NAME_RULE, is_secret_name

from .. import cors, paths, signatures
from ..exceptions import RouteExists, RouteLimit
from ..models import METHODS, AuthType, Mode, Route

log = logging.getLogger("lambdasite.routes")

_HEADER = re.compile(r"^[A-Za-z0-9-]{1,100}$")
_PREFIX = re.compile(r"^[\x21-\x7e]{0,32}$")
MAX_ORIGINS = 20
MAX_RATE_PER_MINUTE = 1_000_000
_AUTH_KEYS = {
    AuthType.NONE: set(),
    AuthType.API_KEY: set(),
    AuthType.BASIC: {"username", "secret"},
    AuthType.HMAC: {"preset", "secret", "header", "algorithm", "encoding", "prefix"},
}


@dataclass
class RouteSpec:
    """A route as asked for; fields left out take their defaults (``max_body_bytes``: the tenant's)."""

    path: str
    methods: list = field(default_factory=lambda: ["GET", "POST"])
    qualifier: str = ""
    mode: str = Mode.SYNC
    auth: dict = field(default_factory=lambda: {"type": "none"})
    delivery_header: str = ""
    cors: list = field(default_factory=list)
    max_body_bytes: int | None = None
    rate_limit_per_minute: int = 0
    expose_errors: bool = False
    description: str = ""


def _refuse(name: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{name}: {message}", details={"fields": {name: [message]}})


def body_cap(tenant) -> int:
    """The largest max_body_bytes a route of ``tenant`` may set: its request is stored as its job's
    argument, so within the tenant's max_args_bytes (its headers and base64 take the rest)."""
    return min(settings.ROUTE_MAX_BODY_BYTES, tenant.quota.max_args_bytes // 2)


def _path(value) -> paths.Pattern:
    try:
        return paths.parse(value)
    except paths.BadPattern as exc:
        raise _refuse("path", str(exc)) from None


def _methods(value) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(m, str) for m in value):
        raise _refuse("methods", f"a non-empty list of {', '.join(METHODS)}")
    asked = {m.upper() for m in value}
    unknown = sorted(asked - set(METHODS))
    if unknown:
        raise _refuse("methods", f"{unknown[0]} is not one of {', '.join(METHODS)}")
    return [m for m in METHODS if m in asked]


def _qualifier(function: Function, value: str) -> str:
    if value in ("", "latest"):
        return ""
    if not isinstance(value, str):
        raise _refuse("qualifier", "an alias name, a version number, or latest")
    # the rule an invocation resolves it by: a route never stores what its requests could not run as
    if (problem := qualifier_refusal(function=function, qualifier=value)) is not None:
        raise _refuse("qualifier", problem)
    return value


def _secret(tenant, value) -> str:
    if not is_secret_name(value):
        raise _refuse("auth", f"secret: the name of one of this tenant's secrets ({NAME_RULE})")
    if not vault_selectors.secret_names(tenant=tenant, among=[value]):
        raise _refuse("auth", f"secret: this tenant has no secret named {value}; set it first")
    return value


def _auth(tenant, value) -> dict:
    if not isinstance(value, dict) or value.get("type") not in AuthType.values:
        raise _refuse("auth", f"an object whose type is one of {', '.join(AuthType.values)}")
    kind = value["type"]
    extra = sorted(set(value) - {"type"} - _AUTH_KEYS[kind])
    if extra:
        raise _refuse("auth", f"{extra[0]}: not a setting of {kind}")
    if kind in (AuthType.NONE, AuthType.API_KEY):
        return {"type": kind}
    if kind == AuthType.BASIC:
        username = value.get("username")
        if not isinstance(username, str) or not 0 < len(username) <= 100 or ":" in username:
            raise _refuse("auth", "username: 1 to 100 characters, without ':'")
        return {"type": kind, "username": username, "secret": _secret(tenant, value.get("secret"))}
    return _hmac(tenant, value)


def _hmac(tenant, value: dict) -> dict:
    preset = value.get("preset")
    if preset not in signatures.PRESETS:
        raise _refuse("auth", f"preset: one of {', '.join(signatures.PRESETS)}")
    auth = {"type": AuthType.HMAC, "preset": preset, "secret": _secret(tenant, value.get("secret"))}
    custom = {"header", "algorithm", "encoding", "prefix"}
    if preset != "custom":
        if custom & set(value):
            raise _refuse("auth", f"{sorted(custom & set(value))[0]}: only for the custom preset")
        return auth
    header, algorithm = value.get("header"), value.get("algorithm", "sha256")
    encoding, prefix = value.get("encoding", "hex"), value.get("prefix", "")
    if not isinstance(header, str) or not _HEADER.match(header):
        raise _refuse("auth", "header: the name of the header holding the signature")
    if algorithm not in signatures.ALGORITHMS:
        raise _refuse("auth", f"algorithm: one of {', '.join(signatures.ALGORITHMS)}")
    if encoding not in signatures.ENCODINGS:
        raise _refuse("auth", f"encoding: one of {', '.join(signatures.ENCODINGS)}")
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise _refuse("auth", "prefix: at most 32 printable characters, such as sha256=")
    return {**auth, "header": header, "algorithm": algorithm, "encoding": encoding, "prefix": prefix}


def _cors(value) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_ORIGINS:
        raise _refuse("cors", f"a list of at most {MAX_ORIGINS} allowed origins")
    for origin in value:
        if problem := cors.origin_problem(origin):
            raise _refuse("cors", problem)
    return list(dict.fromkeys(origin.rstrip("/") for origin in value))


def _normalised(function: Function, spec: RouteSpec) -> dict:
    tenant = function.tenant
    pattern = _path(spec.path)
    cap = body_cap(tenant)
    max_body = (
        spec.max_body_bytes
        if spec.max_body_bytes is not None
        else min(settings.ROUTE_DEFAULT_BODY_BYTES, cap)
    )
    if not 1 <= max_body <= cap:
        raise _refuse("max_body_bytes", f"1 to {cap} (within half this tenant's max_args_bytes)")
    if not 0 <= spec.rate_limit_per_minute <= MAX_RATE_PER_MINUTE:
        raise _refuse("rate_limit_per_minute", f"0 (none) to {MAX_RATE_PER_MINUTE}")
    if spec.mode not in Mode.values:
        raise _refuse("mode", "sync or async")
    if spec.delivery_header and not _HEADER.match(spec.delivery_header):
        raise _refuse("delivery_header", "a header name (letters, digits and -)")
    return {
        "path": pattern.text,
        "shape": pattern.shape,
        "methods": _methods(spec.methods),
        "qualifier": _qualifier(function, spec.qualifier),
        "mode": spec.mode,
        "auth": _auth(tenant, spec.auth),
        "delivery_header": spec.delivery_header,
        "cors": _cors(spec.cors),
        "max_body_bytes": max_body,
        "rate_limit_per_minute": spec.rate_limit_per_minute,
        "expose_errors": bool(spec.expose_errors),
        "description": (spec.description or "")[:200],
    }


def _saved(route: Route, *, creating: bool) -> Route:
    try:
        with transaction.atomic():
            if creating:
                cap = settings.ROUTES_MAX_PER_TENANT
                if Route.objects.filter(tenant_id=route.tenant_id).count() >= cap:
                    raise RouteLimit(
                        f"this tenant has {cap} routes, its cap: delete one first",
                        details={"quota": "ROUTES_MAX_PER_TENANT", "limit": cap},
                    )
                route.save(force_insert=True)
            else:
                route.save()
    except IntegrityError:
        raise RouteExists(
            f"another route has the path {route.path} (or one of the same shape)",
            details={"fields": {"path": ["another route matches the same paths"]}},
        ) from None
    return route


def route_create(*, function: Function, spec: RouteSpec) -> Route:
    """A new route of ``function``'s tenant (its path free of any other route's shape)."""
    tenant_require_active(function.tenant)
    route = Route(tenant_id=function.tenant_id, function=function, **_normalised(function, spec))
    _saved(route, creating=True)
    extra = {"event": "route_created", "tenant": function.tenant.slug, "function": function.name}
    log.info("route %s created", route.path, extra=extra)
    return route


def route_update(*, route: Route, **changes) -> Route:
    """Change the settings given (each checked as on creation); the function stays."""
    function = route.function
    tenant_require_active(function.tenant)
    current = RouteSpec(
        **{name: getattr(route, name) for name in RouteSpec.__dataclass_fields__ if hasattr(route, name)}
    )
    for name, value in changes.items():
        setattr(current, name, value)
    for name, value in _normalised(function, current).items():
        setattr(route, name, value)
    return _saved(route, creating=False)


def route_delete(*, route: Route) -> None:
    tenant_require_active(route.function.tenant)
    route.delete()
    extra = {"event": "route_deleted", "tenant": route.function.tenant.slug}
    log.info("route %s deleted", route.path, extra=extra)
