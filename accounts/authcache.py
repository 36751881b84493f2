"""Authenticated API keys kept in process, so a request does not pay for the key's query (the key,
its tenant, quota, creator and the creator's role: ~3 ms of CPU in Django's ORM, the largest
share of a submit).

A cached key is reused while Redis's auth generation is unchanged and for at most
``API_KEY_CACHE_MAX_AGE_S``. Every change that can alter what a key may do (a key created or
revoked, a membership added, changed or removed, a user saved or deleted, a tenant suspended, a
quota changed) bumps the generation after its commit (``accounts.signals`` for saves and deletes,
the services for their bulk updates), so every web process sees it on its next request: one
Redis GET instead of a query. Without Redis nothing is cached and every request reads the
database. The age cap bounds what a change made behind Django's back (raw SQL) can leave stale."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import transaction

from lambdasite.redis_client import generation as redis_generation
from lambdasite.redis_client import get_redis

log = logging.getLogger("lambdasite.accounts")

GENERATION_KEY = "lambdasite:auth-generation"
_MAX_ENTRIES = 4096
_entries: dict = {}  # key digest -> (generation, stored at, ApiKey)


def generation() -> bytes | bool:
    """The current auth generation, or False (do not cache)."""
    return redis_generation(GENERATION_KEY, connect=get_redis)


def lookup(digest: str):
    """-> (the current generation, the cached key or None)."""
    current = generation()
    hit = _entries.get(digest)
    if (
        current is not False
        and hit is not None
        and hit[0] == current
        and time.monotonic() - hit[1] < settings.API_KEY_CACHE_MAX_AGE_S
    ):
        return current, hit[2]
    return current, None


def store(digest: str, at_generation, api_key) -> None:
    """Keep a key read after ``at_generation`` was current (read first: a change committed in
    between has bumped it, and the entry is never used)."""
    if at_generation is False or settings.API_KEY_CACHE_MAX_AGE_S <= 0:
        return
    if len(_entries) >= _MAX_ENTRIES:
        _entries.clear()
    _entries[digest] = (at_generation, time.monotonic(), api_key)


def changed() -> None:
    """Something keys depend on changed: this process drops its cached keys now (its own next read,
    even inside this transaction, sees the change), every process once this commits."""
    _entries.clear()
    transaction.on_commit(_bump)


def _bump() -> None:
    _entries.clear()
    try:
        get_redis().incr(GENERATION_KEY)
    except Exception:  # noqa: BLE001 - the cache is off while Redis is away (lookup reads no generation)
        log.warning("could not bump the auth generation", exc_info=True)
