"""A tenant's slots as flow control sees them: its cap, what is in flight (dispatched or running) by
function and key, and the limits of its functions; which waiting jobs may take a slot now, and why
one may not. Read under the tenant's fill lock the counts are exact (jobs.services.flow); read
without it (a job's waiting_reason) they are a moment's view.

The rules, in the order a candidate meets them:
- the tenant's cap: at most ``cap`` jobs in flight in all;
- a function's ``max_concurrency``: at most that many of its jobs in flight;
- a keyed function's lane: at most ``concurrency_per_key`` of one key's jobs in flight;
- reservations: a function's ``reserved_concurrency`` slots are its own (its first in-flight jobs
  count against them); every other job shares what the reservations leave of the cap. A function
  with a reservation may also use the shared rest, up to its max_concurrency.

Candidates are taken by priority (high first), then by *round*: the place a job would have among
its lane's jobs in flight (a keyed function's lane is its key; every job without a key shares one
lane), so one key's flood takes one slot a round while another key waits; then due time and age."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from . import concurrency_key

# the functions with a limit, as the partial index function_flow_limited holds them
LIMITED_FUNCTIONS_SQL = (
    "SELECT id, name, max_concurrency, reserved_concurrency, concurrency_key, concurrency_per_key"
    " FROM functions_function WHERE tenant_id = %(tenant)s AND (max_concurrency IS NOT NULL"
    " OR reserved_concurrency > 0 OR NOT (concurrency_key = ''))"
)
IN_FLIGHT_SQL = (
    "SELECT function_id, concurrency_key, count(*) FROM jobs_job"
    " WHERE tenant_id = %(tenant)s AND status IN (%(dispatched)s, %(running)s) GROUP BY 1, 2"
)


@dataclass(frozen=True)
class Limits:
    """One function's flow-control settings."""

    name: str
    max: int | None
    reserved: int
    key_path: str
    per_key: int | None

    @property
    def keyed(self) -> bool:
        return self.per_key is not None


@dataclass(frozen=True)
class Candidate:
    """A waiting job the fill may dispatch (as the candidates' query returns it)."""

    id: object
    function_id: int | None
    key: str | None
    priority: int
    next_attempt_at: datetime
    created_at: datetime
    round: int = 0


@dataclass
class Slots:
    cap: int
    functions: dict[int, Limits]
    in_flight: Counter = field(default_factory=Counter)  # (function id or None, key or None) -> n

    @classmethod
    def read(cls, cursor, *, tenant_id, cap: int, statuses: dict) -> Slots:
        params = {"tenant": tenant_id, **statuses}
        cursor.execute(LIMITED_FUNCTIONS_SQL, params)
        functions = {row[0]: Limits(*row[1:]) for row in cursor.fetchall()}
        cursor.execute(IN_FLIGHT_SQL, params)
        return cls(cap, functions, Counter({(f, k): n for f, k, n in cursor.fetchall()}))

    # what is in flight

    def total(self) -> int:
        return sum(self.in_flight.values())

    def of_function(self, function_id) -> int:
        return sum(n for (f, _), n in self.in_flight.items() if f == function_id)

    def lane_key(self, function_id, key) -> tuple:
        """A job's lane: its key's, when its function is keyed; else the one lane of every unkeyed job."""
        limits = self.functions.get(function_id)
        if limits is not None and limits.keyed:
            return (function_id, key or "")
        return (None, None)

    def lanes(self) -> Counter:
        """In-flight jobs by lane."""
        counts: Counter = Counter()
        for (function_id, key), n in self.in_flight.items():
            counts[self.lane_key(function_id, key)] += n
        return counts

    def of_lane(self, lane: tuple) -> int:
        return self.lanes()[lane]

    # what is free

    def free(self) -> int:
        return max(0, self.cap - self.total())

    def reserved_total(self) -> int:
        return sum(limits.reserved for limits in self.functions.values())

    def unreserved(self) -> int:
        """The slots reservations leave for everyone else."""
        return max(0, self.cap - self.reserved_total())

    def shared_used(self) -> int:
        """In-flight jobs beyond their function's reservation: what uses the unreserved slots."""
        used = 0
        for function_id in {f for f, _ in self.in_flight}:
            n = self.of_function(function_id)
            limits = self.functions.get(function_id)
            used += max(0, n - limits.reserved) if limits is not None else n
        return used

    def shared_free(self) -> int:
        return max(0, self.unreserved() - self.shared_used())

    def reserved_free(self, function_id) -> int:
        limits = self.functions.get(function_id)
        return max(0, limits.reserved - self.of_function(function_id)) if limits is not None else 0

    def function_room(self, function_id) -> int:
        """How many more of the function's jobs may start now (max_concurrency, reservations, the cap)."""
        limits = self.functions.get(function_id)
        room = min(self.free(), self.reserved_free(function_id) + self.shared_free())
        if limits is not None and limits.max is not None:
            room = min(room, max(0, limits.max - self.of_function(function_id)))
        return room

    # the choice

    def choose(self, candidates: Iterable[Candidate]) -> list[Candidate]:
        """The candidates that take a slot now, in dispatch order. ``candidates`` carry their round."""
        free, shared = self.free(), self.shared_free()
        reserved = {f: self.reserved_free(f) for f in self.functions}
        per_function = Counter({f: self.of_function(f) for f in self.functions})
        per_lane = self.lanes()
        chosen = []
        for job in sorted(candidates, key=lambda c: (-c.priority, c.round, c.next_attempt_at, c.created_at)):
            if free <= 0:
                break
            limits = self.functions.get(job.function_id)
            lane = self.lane_key(job.function_id, job.key)
            if limits is not None:
                if limits.max is not None and per_function[job.function_id] >= limits.max:
                    continue
                if limits.keyed and per_lane[lane] >= limits.per_key:
                    continue
            if reserved.get(job.function_id, 0) > 0:
                reserved[job.function_id] -= 1
            elif shared > 0:
                shared -= 1
            else:
                continue
            free -= 1
            per_function[job.function_id] += 1
            per_lane[lane] += 1
            chosen.append(job)
        return chosen

    def why_waiting(self, function_id, key) -> str | None:
        """Why a due job of this function (and key) takes no slot now, or None (nothing holds it)."""
        if self.total() >= self.cap:
            return f"tenant concurrency {self.total()}/{self.cap}"
        limits = self.functions.get(function_id)
        if limits is not None and limits.max is not None and self.of_function(function_id) >= limits.max:
            return f"function max_concurrency {self.of_function(function_id)}/{limits.max}"
        if limits is not None and limits.keyed:
            lane = self.lane_key(function_id, key)
            if self.of_lane(lane) >= limits.per_key:
                name = concurrency_key.label(limits.key_path)
                return f"key {name}={key or ''}: {self.of_lane(lane)}/{limits.per_key} in use"
        if self.reserved_free(function_id) > 0 or self.shared_free() > 0:
            return None
        reserved = self.reserved_total() - (limits.reserved if limits is not None else 0)
        if limits is not None and limits.reserved:
            return (
                f"function reserved_concurrency {self.of_function(function_id)}/{limits.reserved} in use,"
                f" and the tenant's unreserved concurrency {self.shared_used()}/{self.unreserved()}"
            )
        return (
            f"function reserved: the tenant's unreserved concurrency {self.shared_used()}/"
            f"{self.unreserved()} in use ({reserved} of its {self.cap} reserved for other functions)"
        )
