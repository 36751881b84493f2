"""Cron expressions and time zones: parsing (cronsim, the library Healthchecks uses: Debian cron's
semantics, DST included), the next fire times, and the shortest gap between ticks."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from lambdasite.exceptions import ValidationFailed

MAX_FIELDS = (5, 6)  # minute hour day month weekday, or with seconds first


def _fail(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", details={"fields": {field: [message]}})


def zone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or not name or len(name) > 64:
        raise _fail("timezone", "an IANA time zone name, e.g. Europe/Berlin")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _fail(
            "timezone", f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin"
        ) from None


def ticks(cron: str, tz: str, after: datetime):
    """Fire times strictly after ``after`` (aware), in UTC, forever (cronsim stops after 50 years)."""
    start = after.astimezone(zone(tz))
    for local in CronSim(cron, start):
        if local > start:
            yield local.astimezone(UTC)


def check(cron: str, tz: str, *, min_interval_s: int, now: datetime) -> list[datetime]:
    """Validate an expression and zone against the tenant's minimum interval; -> the next 5 fire times."""
    if not isinstance(cron, str) or len(cron.split()) not in MAX_FIELDS:
        raise _fail("cron", "5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first")
    zone(tz)
    try:
        upcoming = []
        for when in ticks(cron, tz, now):
            upcoming.append(when)
            if len(upcoming) == 25:
                break
    except CronSimError as exc:
        raise _fail("cron", str(exc)) from None
    if not upcoming:
        raise _fail("cron", "never fires")
    gaps = [(b - a).total_seconds() for a, b in zip(upcoming, upcoming[1:], strict=False)]
    if gaps and min(gaps) < min_interval_s:
        raise _fail(
            "cron", f"fires every {min(gaps):g} s; this tenant's minimum interval is {min_interval_s} s"
        )
    return upcoming[:5]


def upcoming(cron: str, tz: str, now: datetime, n: int = 5) -> list[datetime]:
    out = []
    try:
        for when in ticks(cron, tz, now):
            out.append(when)
            if len(out) == n:
                break
    except (CronSimError, ValidationFailed):
        return []
    return out
