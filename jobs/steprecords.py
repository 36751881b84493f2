"""A durable run's records as the host reads them, and the rules that need no database: what a record
may say, where in the journal it may go, how long a failed step waits before its next try.

A record comes from the job's own process (``sandbox/images/runner/lambdasite_runner/durable.py`` or
``child.js``): it is the user's side of the protocol, so everything is checked here, and a record
that breaks a rule ends the run with a ``Refused`` error (``fatal``: never retried, its code would
send the same record again)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils.dateparse import parse_datetime

KINDS = ("step", "sleep", "invoke", "map", "event")
WAITS = ("sleep", "invoke", "map", "event")
NAME_MAX = 200
EVENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$")
KEY_MAX = 255
STEP_RETRIES_MAX = 100
BACKOFF_CAP_S = 24 * 3600.0  # one wait between two tries of a step at most
# errors that end a run for good, never retried as a job: its code would do the same again on every
# execution (a refused record), or the journal would replay the same failure (a step whose own
# retries are spent, a child that failed, an event that did not come)
FATAL_TYPES = frozenset(
    {
        "StepFailed",
        "ChildFailed",
        "EventTimeout",
        "DeterminismError",
        "RecordRefused",
        "StepLimitExceeded",
        "RecordLimitExceeded",
        "RunLifetimeExceeded",
        "MapTooLarge",
    }
)


class Refused(Exception):
    """A record the host will not store: the run fails with ``type`` and ``message``."""

    def __init__(self, type_: str, message: str) -> None:
        super().__init__(message)
        self.type = type_
        self.message = message

    @property
    def error(self) -> dict:
        return {"type": self.type, "message": self.message, "traceback": ""}


@dataclass(frozen=True)
class Record:
    """One record, checked: ``seq`` and ``name`` place it, ``kind`` says what it is, ``terms`` what it
    asked for (a wait's terms, a step's retry policy), ``size`` its bytes (counted against the run's
    recorded bytes)."""

    seq: int
    name: str
    kind: str
    size: int
    terms: dict = field(default_factory=dict)
    ok: bool = True  # a step: its function returned (else ``error``)
    result: Any = None
    error: dict | None = None
    attempt: int = 1
    ms: float = 0.0


def parse(payload: bytes) -> Record:
    """The record in ``payload`` (JSON relayed by the runner; empty: it was over the runner's size)."""
    if not payload:
        raise Refused("RecordLimitExceeded", "a step's record is larger than the result limit")
    try:
        data = json.loads(payload.decode("utf-8", "surrogatepass"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Refused("RecordRefused", "a step's record is not JSON") from None
    if not isinstance(data, dict):
        raise Refused("RecordRefused", "a step's record is not an object")
    seq, name, kind = data.get("seq"), data.get("name"), data.get("kind")
    if not _int(seq) or seq < 1:
        raise Refused("RecordRefused", "a step's record has no position")
    if not isinstance(name, str) or not name or len(name) > NAME_MAX or "\x00" in name:
        raise Refused("RecordRefused", f"a step name is a non-empty string of at most {NAME_MAX} characters")
    if kind not in KINDS:
        raise Refused("RecordRefused", f"unknown step kind {str(kind)[:20]!r}")
    size = len(payload)
    return _step_record(data, seq, name, size) if kind == "step" else _wait(data, seq, name, kind, size)


def _step_record(data: dict, seq: int, name: str, size: int) -> Record:
    ok = data.get("ok")
    attempt, retries, backoff = data.get("attempt", 1), data.get("retries", 0), data.get("backoff_s", 1.0)
    if not isinstance(ok, bool) or not _int(attempt) or attempt < 1:
        raise Refused("RecordRefused", f"step {name!r}: a malformed record")
    if not _int(retries) or not 0 <= retries <= STEP_RETRIES_MAX:
        raise Refused(
            "RecordRefused", f"step {name!r}: retries is a whole number from 0 to {STEP_RETRIES_MAX}"
        )
    if not _number(backoff) or backoff < 0:
        raise Refused("RecordRefused", f"step {name!r}: backoff_s is a number of seconds, 0 or more")
    error = None
    if not ok:
        error = data.get("error")
        if not isinstance(error, dict):
            raise Refused("RecordRefused", f"step {name!r}: a failure without its error")
        error = {k: str(error.get(k) or "")[:8000] for k in ("type", "message", "traceback")}
    ms = data.get("ms", 0.0)
    return Record(
        seq,
        name,
        "step",
        size,
        terms={"retries": retries, "backoff_s": backoff},
        ok=ok,
        result=data.get("result") if ok else None,
        error=error,
        attempt=attempt,
        ms=float(ms) if _number(ms) and ms >= 0 else 0.0,
    )


def _wait(data: dict, seq: int, name: str, kind: str, size: int) -> Record:
    return Record(seq, name, kind, size, terms=_TERMS[kind](data, name))


def _sleep_terms(data: dict, name: str) -> dict:
    if "until" in data:
        until = data["until"]
        parsed = parse_datetime(until) if isinstance(until, str) and len(until) <= 64 else None
        if parsed is None or parsed.tzinfo is None:
            raise Refused("RecordRefused", f"sleep {name!r}: until is an ISO 8601 time with an offset")
        return {"until": parsed}
    seconds = data.get("seconds")
    if not _number(seconds) or seconds < 0:
        raise Refused("RecordRefused", f"sleep {name!r}: seconds is a number, 0 or more")
    return {"seconds": float(seconds)}


def _call_terms(data: dict, name: str, many: bool) -> dict:
    function, qualifier = data.get("function"), data.get("qualifier")
    if not isinstance(function, str) or not 0 < len(function) <= 64:
        raise Refused("RecordRefused", f"{name!r}: the function is a deployed function's name")
    if qualifier is not None and (not isinstance(qualifier, str) or not 0 < len(qualifier) <= 64):
        raise Refused("RecordRefused", f"{name!r}: the qualifier is a version number or an alias")
    calls = data.get("items") if many else [data.get("args")]
    if not isinstance(calls, list) or not all(isinstance(args, list) for args in calls):
        what = "items is a list of argument lists" if many else "args is a list"
        raise Refused("RecordRefused", f"{name!r}: {what}")
    return {"function": function, "qualifier": qualifier, "calls": calls}


def _event_terms(data: dict, name: str) -> dict:
    event, key, timeout = data.get("event"), data.get("key", ""), data.get("timeout_s")
    if not isinstance(event, str) or not EVENT_RE.match(event):
        raise Refused("RecordRefused", f"{name!r}: an event name is 1-200 letters, digits or ._:/-")
    if not isinstance(key, str) or len(key) > KEY_MAX or "\x00" in key:
        raise Refused("RecordRefused", f"{name!r}: an event key is a string of at most {KEY_MAX} characters")
    if timeout is not None and (not _number(timeout) or timeout < 0):
        raise Refused("RecordRefused", f"{name!r}: timeout_s is a number of seconds")
    return {"event": event, "key": key, "timeout_s": None if timeout is None else float(timeout)}


_TERMS = {
    "sleep": _sleep_terms,
    "invoke": lambda data, name: _call_terms(data, name, many=False),
    "map": lambda data, name: _call_terms(data, name, many=True),
    "event": _event_terms,
}


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# -- placing a record in the journal -------------------------------------------------------------


@dataclass
class Journal:
    """What the host knows of a run's journal while one execution runs: its steps' names by position,
    the open step (the last one, retrying or waiting: the execution may record it again), the count
    and bytes so far. One execution runs at a time (the attempt fence), so this is exact."""

    names: dict[int, tuple[str, str]] = field(default_factory=dict)  # seq -> (name, kind)
    open_seq: int | None = None
    open_attempts: int = 0  # the open step's tries so far (a retrying step's next try is this + 1)
    count: int = 0
    bytes: int = 0
    sizes: dict[int, int] = field(default_factory=dict)

    @property
    def next_seq(self) -> int:
        return self.count + 1

    def place(self, record: Record) -> bool:
        """Check ``record`` against the journal. -> True: it records the open step again, False: it is
        the next new step. Raises Refused for anything else (a gap, a name used elsewhere)."""
        if record.seq == self.open_seq:
            if self.names[record.seq] != (record.name, record.kind):
                name, kind = self.names[record.seq]
                raise Refused(
                    "DeterminismError",
                    f"step {record.seq} of this run is recorded as {name!r} ({kind}), but the code now "
                    f"asks for {record.name!r} ({record.kind}) at that position",
                )
            return True
        if record.seq != self.next_seq or self.open_seq is not None:
            raise Refused("RecordRefused", f"step {record.name!r} is out of order (position {record.seq})")
        if any(name == record.name for name, _ in self.names.values()):
            raise Refused("DeterminismError", f"the step name {record.name!r} is used twice in this run")
        return False

    def check_limits(self, record: Record, *, again: bool, max_steps: int, max_bytes: int) -> None:
        if not again and self.count >= max_steps:
            raise Refused(
                "StepLimitExceeded", f"a run may record {max_steps} steps (this tenant's max_steps_per_run)"
            )
        total = self.bytes - (self.sizes.get(record.seq, 0) if again else 0) + record.size
        if total > max_bytes:
            raise Refused(
                "RecordLimitExceeded",
                f"a run may record {max_bytes} bytes (this tenant's max_recorded_bytes_per_run)",
            )

    def add(self, record: Record, *, again: bool, still_open: bool) -> None:
        """The record was stored: its step is now in the journal (and still open: waiting or retrying)."""
        if again:
            self.bytes -= self.sizes.get(record.seq, 0)
        else:
            self.count += 1
            self.names[record.seq] = (record.name, record.kind)
        self.sizes[record.seq] = record.size
        self.bytes += record.size
        self.open_seq = record.seq if still_open else None
        self.open_attempts = record.attempt if still_open else 0

    def tries(self, record: Record, *, again: bool) -> Record:
        """A step's try as the host counts it, whatever the record says (a process that always said
        "first try" would be retried for ever)."""
        if record.kind != "step":
            return record
        return dataclasses.replace(record, attempt=self.open_attempts + 1 if again else 1)


def retry_at(now: datetime, *, attempt: int, backoff_s: float) -> datetime:
    """When the next try of a step whose try ``attempt`` failed is due: backoff_s x 2^(attempt-1), capped."""
    delay = min(BACKOFF_CAP_S, backoff_s * 2.0 ** min(attempt - 1, 40))
    return now + timedelta(seconds=delay)


def sleep_until(now: datetime, terms: dict) -> datetime:
    if "until" in terms:
        return terms["until"]
    return now + timedelta(seconds=min(terms["seconds"], 10 * 365 * 86400.0))
