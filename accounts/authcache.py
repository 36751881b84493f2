"""Authenticated API keys kept in process, so a request does not pay for the key's query (the key,
its tenant, quota, creator and the creator's role: ~3 ms of CPU in Django's ORM, the largest
share of a submit).

A cached key is reused while Redis's auth generation is unchanged and for at most
``API_KEY_CACHE_MAX_AGE_S``. Every change that can alter what a key may do (a key created or
revoked, a membership added, changed or removed, a user saved or deleted, a tenant suspended, a
quota changed) bumps the generation after its commit (``accounts.signals`` for saves and deletes,
the services for their bulk updates), so every web process sees it on its next request: one
Redis GET instead of a query. Without Redis nothing is cached and every request reads the
database. The age cap bounds what a change made behind Django's back (raw SQL) can leave stale.

Revoking access (a key revoked, a member removed with their keys) is not left to that best-effort
bump: a process whose Redis answers but missed the bump would accept a revoked key for up to the
age cap. A revocation runs inside :func:`revocation`, which bumps before anything is written (Redis
away: the revocation is refused with a 503 and nothing changes) and again after the commit (which
invalidates anything cached while the change was in flight), retried, and raises 503 if that fails:
so a revocation that returns has been seen by every process's next request."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import transaction

from lambdasite.caching import MISSING, Cache, best_effort
from lambdasite.exceptions import ServiceUnavailable
from lambdasite.redis_client import generation as redis_generation
from lambdasite.redis_client import get_redis

log = logging.getLogger("lambdasite.accounts")

GENERATION_KEY = "lambdasite:auth-generation"
_keys: Cache = Cache(max_age_s=lambda: settings.API_KEY_CACHE_MAX_AGE_S)  # key digest -> ApiKey


def generation() -> bytes | bool:
    """The current auth generation, or False (do not cache)."""
    return redis_generation(GENERATION_KEY, connect=get_redis)


def lookup(digest: str):
    """-> (the current generation, the cached key or None)."""
    current = generation()
    hit = _keys.get(digest, current)
    return current, (None if hit is MISSING else hit)


def store(digest: str, at_generation, api_key) -> None:
    """Keep a key read after ``at_generation`` was current (read first: a change committed in
    between has bumped it, and the entry is never used)."""
    _keys.put(digest, api_key, at_generation)


def changed() -> None:
    """Something keys depend on changed: this process drops its cached keys now (its own next read,
    even inside this transaction, sees the change), every process once this commits."""
    _keys.clear()
    transaction.on_commit(_bump)


def _bump() -> None:
    _keys.clear()
    # Redis away: the cache is off meanwhile (lookup reads no generation); revocations never rely on
    # this bump (``revocation``)
    best_effort("bumping the auth generation", _incr)


def _incr() -> None:
    get_redis().incr(GENERATION_KEY)


_BUMP_ATTEMPTS = (0.0, 0.05, 0.2)  # delays before each try of a revocation's bump


@contextmanager
def revocation() -> Iterator[None]:
    """Wrap a transaction that takes access away, so that once it returns no process accepts what
    it revoked (see the module's docstring). Raises ServiceUnavailable (503) when the generation
    cannot be bumped: before the change, nothing was written; after it, the change is committed and
    repeating the revocation (which bumps again) is what makes it certain."""
    _keys.clear()
    _bump_or_fail("nothing was changed")
    yield
    if transaction.get_connection().in_atomic_block:  # an outer transaction commits it later
        transaction.on_commit(lambda: _bump_or_fail("it is recorded: repeat it to make sure"))
    else:
        _bump_or_fail("it is recorded: repeat it to make sure")


def _bump_or_fail(outcome: str) -> None:
    _keys.clear()
    for delay in _BUMP_ATTEMPTS:
        time.sleep(delay)
        try:
            _incr()
            return
        except Exception:  # noqa: BLE001 - any Redis failure: retried, then the revocation fails
            log.warning("could not bump the auth generation for a revocation", exc_info=True)
    raise ServiceUnavailable(
        f"access could not be revoked everywhere right now ({outcome}); retry shortly",
        details={"retry": True},
    )
