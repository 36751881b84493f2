"""The per-process caches' one shape, and the one way to call Redis when failing is allowed.

``Cache``: a bounded map whose entries are good while they are younger than ``max_age_s`` and, when
the caller reads a generation (``lambdasite.redis_client.generation``), while that generation is
unchanged. A generation of ``False`` (Redis away) means "do not cache": nothing is read or kept.
Full: cleared, not evicted one by one (a process's working set refills it in one pass; no LRU
bookkeeping on the hot path). The clock is injected for tests.

``best_effort``: a call whose failure is already handled elsewhere (a counter re-seeded from
PostgreSQL, a generation that expires, a waiter that polls), logged at the level given and
swallowed. ``after_commit`` runs one after the current transaction commits."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from django.db import transaction

log = logging.getLogger("lambdasite")

V = TypeVar("V")
MISSING: Any = object()


class Cache(Generic[V]):
    def __init__(
        self,
        *,
        max_age_s: float | Callable[[], float] = float("inf"),
        max_entries: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_age = max_age_s if callable(max_age_s) else (lambda: max_age_s)
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[Hashable, tuple[Any, float, V]] = {}

    def get(self, key: Hashable, generation: Any = None) -> V:
        """The cached value, or ``MISSING`` (absent, too old, another generation, or no cache)."""
        if generation is False:
            return MISSING
        hit = self._entries.get(key)
        if hit is None or hit[0] != generation or self.clock() - hit[1] >= self._max_age():
            return MISSING
        return hit[2]

    def put(self, key: Hashable, value: V, generation: Any = None) -> None:
        """Keep ``value``, read after ``generation`` was current (read the generation first: a change
        committed in between has bumped it, so the entry is never used)."""
        if generation is False or self._max_age() <= 0:
            return
        if len(self._entries) >= self.max_entries and key not in self._entries:
            self._entries.clear()
        self._entries[key] = (generation, self.clock(), value)

    def get_or_load(self, key: Hashable, load: Callable[[], V], generation: Any = None) -> V:
        value = self.get(key, generation)
        if value is MISSING:
            value = load()
            self.put(key, value, generation)
        return value

    def pop(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def best_effort(what: str, fn: Callable[..., V], *args, level: int = logging.WARNING, **kwargs) -> V | None:
    """``fn(*args, **kwargs)``; on any exception, log ``what`` failed (with the traceback) and return
    None. Only for calls whose failure another mechanism already repairs: the caller's comment says
    which."""
    try:
        return fn(*args, **kwargs)
    except Exception:  # noqa: BLE001 - the contract of this helper: callers name what repairs it
        log.log(level, "%s failed", what, exc_info=True)
        return None


def after_commit(what: str, fn: Callable[..., Any], *args, level: int = logging.WARNING, **kwargs) -> None:
    """``best_effort(what, fn, ...)`` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: best_effort(what, fn, *args, level=level, **kwargs))
