"""A job's placement: the worker pool it runs in (``jobs.pools``) and the pools it may overflow to
once it has waited long enough. One rule for every way one is given (a submit, a batch item, an
invocation, a function's create or PATCH): either ``"pool": "eu"`` (home pool, no overflow) or
``"placement": {"pool": "default", "overflow": ["burst"], "after_wait_s": 2}``, never both.

A job's placement is its own if given, else its function's, else the default pool; a tenant whose
quota lists ``allowed_pools`` may name no other pool (``Quota.check_pools``: 403 pool_not_allowed)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .pools import DEFAULT_POOL, NAME_RULE, valid_name

MAX_OVERFLOW = 4
MAX_AFTER_WAIT_S = 3600.0
PLACED_HOME = "home"


class PlacementInvalid(ValueError):
    """A placement the rules refuse: ``field`` is the body's field it names (``pool``, ``placement``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True)
class Placement:
    pool: str = DEFAULT_POOL
    overflow: tuple[str, ...] = ()
    after_wait_s: float | None = None

    @classmethod
    def of(cls, row) -> Placement:
        """A function's or a job's placement columns (its home pool for a job)."""
        home = getattr(row, "home_pool", None) or row.pool
        return cls(home, tuple(row.overflow or ()), row.overflow_after_s)

    def names(self) -> tuple[str, ...]:
        return (self.pool, *self.overflow)

    def body(self) -> dict:
        return {"pool": self.pool, "overflow": list(self.overflow), "after_wait_s": self.after_wait_s}

    def job_columns(self) -> dict:
        """A new job's columns: placed in its home pool, not yet dispatched."""
        return {
            "pool": self.pool,
            "home_pool": self.pool,
            "overflow": list(self.overflow),
            "overflow_after_s": self.after_wait_s,
            "placed_by": "",
        }

    def function_columns(self) -> dict:
        return {"pool": self.pool, "overflow": list(self.overflow), "overflow_after_s": self.after_wait_s}


DEFAULT = Placement()


def parse_placement(data: dict) -> Placement | None:
    """The placement a body gives with its ``pool`` or ``placement`` field (null: not given), or
    None when it gives none; raises PlacementInvalid naming the field."""
    pool, placement = data.get("pool"), data.get("placement")
    if pool is not None and placement is not None:
        raise PlacementInvalid("placement", "give pool or placement, not both")
    if pool is not None:
        return Placement(_name("pool", pool))
    if placement is None:
        return None
    if not isinstance(placement, dict):
        raise PlacementInvalid(
            "placement", 'must be an object: {"pool": ..., "overflow": [...], "after_wait_s": n}'
        )
    unknown = sorted(set(placement) - {"pool", "overflow", "after_wait_s"})
    if unknown:
        raise PlacementInvalid("placement", f"unknown field {unknown[0]!r}")
    home = _name("placement.pool", placement.get("pool", DEFAULT_POOL))
    overflow = _overflow(placement.get("overflow", []), home)
    after = _after(placement.get("after_wait_s"), bool(overflow))
    return Placement(home, overflow, after)


def _name(field: str, value: object) -> str:
    if not valid_name(value):
        raise PlacementInvalid(field, f"{value!r} is not a pool name ({NAME_RULE})")
    return value


def _overflow(value: object, home: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise PlacementInvalid("placement.overflow", "must be a list of pool names")
    if len(value) > MAX_OVERFLOW:
        raise PlacementInvalid("placement.overflow", f"at most {MAX_OVERFLOW} pools")
    names = tuple(_name("placement.overflow", name) for name in value)
    if len(set(names)) != len(names):
        raise PlacementInvalid("placement.overflow", "each pool at most once")
    if home in names:
        raise PlacementInvalid("placement.overflow", f"may not list the home pool {home!r}")
    return names


def _after(value: object, overflowing: bool) -> float | None:
    if not overflowing:
        if value is not None:
            raise PlacementInvalid("placement.after_wait_s", "only with overflow pools")
        return None
    if value is None:
        raise PlacementInvalid("placement.after_wait_s", "required with overflow pools")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PlacementInvalid("placement.after_wait_s", "must be a number of seconds")
    if not 0 < value <= MAX_AFTER_WAIT_S:
        raise PlacementInvalid("placement.after_wait_s", f"must be over 0 and at most {MAX_AFTER_WAIT_S:g}")
    return float(value)


def resolve(asked: Placement | None, function: Placement | None) -> Placement:
    """The job's own placement if given, else its function's, else the default pool."""
    return asked or function or DEFAULT


def placed_by_overflow(waited_s: float) -> str:
    """What a job moved to an overflow pool records (the seconds it actually waited, one decimal)."""
    return f"overflow after {waited_s:.1f} s wait"


def back_home(job) -> None:
    """A job that waits again (a retry, a lost worker, a hand-back, a requeue) returns to its home
    pool, and may overflow again."""
    job.pool, job.placed_by = job.home_pool, ""


BACK_HOME_FIELDS = ("pool", "placed_by")
