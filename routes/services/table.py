"""Each web process's copy of a tenant's routes, and of the secrets that verify them.

A public request names a tenant by slug; reading the tenant, its quota and its routes from
PostgreSQL on every request would cost more than the rest of the request. So each process keeps a
``Table`` per slug and reuses it while three generation counters in Redis are unchanged, read in ONE
``MGET``: the routes' (bumped after any route is saved or deleted, cascades included), the auth
generation (``accounts.authcache``: a tenant or quota changed) and the vault's (a secret's value
changed). A route's HMAC key or basic password is kept (decrypted, in this process's memory, as
the worker holds a job's secrets while it runs) under the same generations, for at most
``SECRET_MAX_AGE_S``: the bound on a value kept after a bump that never reached Redis. Without
Redis nothing is kept and every request reads the database."""

from __future__ import annotations

from dataclasses import dataclass

from accounts import authcache
from accounts.models import Tenant
from lambdasite.caching import MISSING, Cache, after_commit
from lambdasite.redis_client import generation, get_redis
from vault import services as vault
from vault.exceptions import UnknownSecret

from .. import paths
from ..models import Route

GENERATION_KEY = "lambdasite:routes-generation"
_KEYS = (GENERATION_KEY, authcache.GENERATION_KEY, vault.GENERATION_KEY)
TABLE_MAX_AGE_S = 300.0
SECRET_MAX_AGE_S = 60.0


@dataclass(frozen=True)
class Served:
    """What serving needs of a route, as read at one generation."""

    id: object
    path: str
    function_name: str
    qualifier: str
    mode: str
    methods: tuple[str, ...]
    auth: dict
    delivery_header: str
    cors: tuple[str, ...]
    max_body_bytes: int
    rate_limit_per_minute: int
    expose_errors: bool

    @classmethod
    def of(cls, route: Route) -> Served:
        return cls(
            id=route.id,
            path=route.path,
            function_name=route.function.name,
            qualifier=route.qualifier,
            mode=route.mode,
            methods=tuple(route.methods),
            auth=dict(route.auth or {"type": "none"}),
            delivery_header=route.delivery_header.lower(),
            cors=tuple(route.cors or ()),
            max_body_bytes=route.max_body_bytes,
            rate_limit_per_minute=route.rate_limit_per_minute,
            expose_errors=route.expose_errors,
        )

    @property
    def auth_type(self) -> str:
        return self.auth.get("type", "none")


@dataclass
class Table:
    tenant: Tenant  # with its quota
    routes: list[tuple[paths.Pattern, Served]]  # most specific first

    def match(self, raw_path: str) -> tuple[Served, dict[str, str]] | None:
        return paths.best_match(self.routes, paths.request_segments(raw_path))


_tables: Cache[Table | None] = Cache(max_age_s=TABLE_MAX_AGE_S, max_entries=4096)
_unknown: Cache[bool] = Cache(max_age_s=TABLE_MAX_AGE_S, max_entries=1024)  # slugs of no tenant, apart
_secrets: Cache[str | None] = Cache(max_age_s=SECRET_MAX_AGE_S, max_entries=4096)


def generations() -> tuple | bool:
    """The three generations (one round trip when they exist), or False: keep nothing."""
    try:
        values = get_redis().mget(_KEYS)
    except Exception:  # noqa: BLE001 - Redis away: nothing is cached, PostgreSQL answers
        return False
    if any(value is None for value in values):  # a fresh or flushed Redis: seeded (at random values)
        values = [generation(key) for key in _KEYS]
        if any(value is False for value in values):
            return False
    return tuple(values)


def table_for(slug: str, at=None) -> Table | None:
    """The tenant's table (None: no tenant has this slug); ``at``: the generations already read."""
    at = generations() if at is None else at
    if _unknown.get(slug, at) is True:
        return None
    table = _tables.get(slug, at)
    if table is MISSING:
        table = _load(slug)
        if table is None:
            _unknown.put(slug, True, at)
            return None
        _tables.put(slug, table, at)
    return table


def _load(slug: str) -> Table | None:
    tenant = Tenant.objects.select_related("quota").filter(slug=slug).first()
    if tenant is None:
        return None
    rows = Route.objects.filter(tenant=tenant).select_related("function")
    routes = sorted(((paths.parse(r.path), Served.of(r)) for r in rows), key=lambda pair: pair[0].rank)
    return Table(tenant=tenant, routes=routes)


def secret_value(tenant: Tenant, name: str, at=None) -> str | None:
    """The current value of the tenant's secret ``name`` (None: it has none by that name). Raises
    ``VaultUnavailable`` when the vault cannot decrypt it."""
    at = generations() if at is None else at
    value = _secrets.get((tenant.pk, name), at)
    if value is MISSING:
        try:
            value = vault.secret_values(tenant=tenant, bindings={"KEY": name})[0].value
        except UnknownSecret:
            value = None
        _secrets.put((tenant.pk, name), value, at)
    return value


def routes_changed() -> None:
    """After the current transaction commits: every process's tables are stale."""
    _tables.clear()  # this process's own next request sees the change, even inside the transaction
    # a lost bump: processes keep their tables until the next change that reaches Redis, at most
    # TABLE_MAX_AGE_S
    after_commit("publishing a routes change", _bump)


def routes_changed_signal(sender, instance, **kwargs) -> None:
    routes_changed()


def _bump() -> None:
    _tables.clear()
    get_redis().incr(GENERATION_KEY)


def forget() -> None:
    """Drop everything kept (tests)."""
    _tables.clear()
    _unknown.clear()
    _secrets.clear()
