"""A cron expression in plain words ("every 5 minutes", "at 09:00 on Monday to Friday"), for the
schedule form's preview, the schedule pages and the API.

Pure: the expression is read with cronsim's own field parser, the one the schedules run by, so the
words describe exactly the times that fire (``*/7`` in the minute field fires at :00, :07, … :56 and
is said so, not "every 7 minutes"); what cronsim refuses has no description. Day-of-month and
day-of-week follow Debian cron: both restricted means either matches, unless one starts with ``*``."""

from __future__ import annotations

from datetime import datetime

from cronsim import CronSim, CronSimError
from cronsim.cronsim import Field

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
MONTHS = ("", "January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")  # fmt: skip
NTH = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth"}
MAX_TIMES = 6  # up to this many times of day are listed ("at 08:00 and 20:00")
_ANY_TIME = datetime(2000, 1, 1)  # CronSim parses the whole expression when it is made
_ALL = {Field.SECOND: 60, Field.MINUTE: 60, Field.HOUR: 24, Field.DAY: 31, Field.MONTH: 12}


def describe(expr: str) -> str | None:
    """The expression in words, starting with a capital ("Every 5 minutes"); None if cron refuses it."""
    if not isinstance(expr, str):
        return None
    text = ALIASES.get(expr.strip().lower(), expr)
    parts = text.upper().split()
    if len(parts) not in (5, 6):
        return None
    try:
        CronSim(text, _ANY_TIME)  # what the schedules accept, nothing else
    except (CronSimError, ValueError, IndexError):
        return None
    if len(parts) == 5:
        parts.insert(0, "0")
    second, minute, hour, day, month, dow = parts
    fields = (Field.SECOND, Field.MINUTE, Field.HOUR, Field.DAY, Field.MONTH)
    sec, mins, hours, days, months = (
        _values(f, p) for f, p in zip(fields, (second, minute, hour, day, month), strict=True)
    )
    weekdays = Field.DOW.parse(dow)
    time = _time(sec, mins, hours)
    date = _date(day, dow, days, weekdays, months)
    if not date:  # "at 09:00 every day", "at 00:00 every day in December", "every 5 minutes in May"
        date = ("" if "every" in time else " every day") + _months(months)
    words = time + date
    return words[0].upper() + words[1:]


def _values(field: Field, text: str) -> list[int]:
    """The numbers a field matches (day-of-month's "last day" and "last weekday" as cronsim's negative
    markers)."""
    return sorted(v for v in field.parse(text) if isinstance(v, int))


# -- sets of numbers ---------------------------------------------------------------------


def _is_all(values: list[int], field: Field) -> bool:
    return len(values) == _ALL[field]


def _step_from_zero(values: list[int], size: int) -> int | None:
    """N when the values are 0, N, 2N, … and N divides the field (every N minutes, evenly)."""
    if len(values) < 2 or values[0] != 0:
        return None
    step = values[1]
    if size % step or values != list(range(0, size, step)):
        return None
    return step


def _runs(values: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], v)
        else:
            runs.append((v, v))
    return runs


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _numbers(values: list[int], name=str) -> str:  # noqa: A002 - names a number
    """1, 3 and 5 to 7; an even progression of many as "0, 7, 14, …, 56"."""
    if len(values) > 4:
        step = values[1] - values[0]
        if step > 1 and all(b - a == step for a, b in zip(values, values[1:], strict=False)):
            return f"{name(values[0])}, {name(values[1])}, {name(values[2])}, …, {name(values[-1])}"
    said = [name(a) if a == b else f"{name(a)} and {name(b)}" if b == a + 1 else f"{name(a)} to {name(b)}"
            for a, b in _runs(values)]  # fmt: skip
    return _join(said)


def _plural(n: int, unit: str) -> str:
    return unit if n == 1 else f"{n} {unit}s"


# -- time of day ---------------------------------------------------------------------------


def _clock(h: int, m: int, s: int | None = None) -> str:
    return f"{h:02d}:{m:02d}" if s is None else f"{h:02d}:{m:02d}:{s:02d}"


def _time(sec: list[int], mins: list[int], hours: list[int]) -> str:
    if sec != [0]:
        return _with_seconds(sec, mins, hours)
    every_hour = _is_all(hours, Field.HOUR)
    if _is_all(mins, Field.MINUTE):
        return "every minute" + ("" if every_hour else " " + _hours_window(hours))
    step = _step_from_zero(mins, 60)
    if step:
        return f"every {_plural(step, 'minute')}" + ("" if every_hour else " " + _hours_window(hours))
    if len(mins) * len(hours) <= MAX_TIMES:
        return "at " + _join([_clock(h, m) for h in hours for m in mins])
    if mins == [0]:
        step = _step_from_zero(hours, 24)
        if every_hour or step:
            return f"every {_plural(step or 1, 'hour')}"
        runs = _runs(hours)
        if len(runs) == 1:
            return f"every hour from {_clock(runs[0][0], 0)} to {_clock(runs[0][1], 0)}"
        return "every hour on the hour " + _hours_window(hours)
    where = f"minute {mins[0]}" if len(mins) == 1 else f"minutes {_numbers(mins)}"
    return f"at {where} past every hour" + ("" if every_hour else " " + _hours_window(hours))


def _hours_window(hours: list[int]) -> str:
    """Which hours: "from 09:00 to 17:59" (one run), else "in hours 8, 12 and 16"."""
    runs = _runs(hours)
    if len(runs) == 1:
        return f"from {_clock(runs[0][0], 0)} to {_clock(runs[0][1], 59)}"
    return "in hours " + _numbers(hours)


def _with_seconds(sec: list[int], mins: list[int], hours: list[int]) -> str:
    """A 6-field expression whose seconds are not just 0."""
    if len(sec) * len(mins) * len(hours) <= MAX_TIMES:
        return "at " + _join([_clock(h, m, s) for h in hours for m in mins for s in sec])
    if _is_all(sec, Field.SECOND):
        said = "every second"
    elif step := _step_from_zero(sec, 60):
        said = f"every {_plural(step, 'second')}"
    else:
        where = f"second {sec[0]}" if len(sec) == 1 else f"seconds {_numbers(sec)}"
        said = f"at {where} of every minute"
    if _is_all(mins, Field.MINUTE):
        return said + ("" if _is_all(hours, Field.HOUR) else " " + _hours_window(hours))
    if len(sec) == 1:
        return f"{_time([0], mins, hours)}, at second {sec[0]}"
    return f"{said}, {_time([0], mins, hours)}"


# -- days and months -----------------------------------------------------------------------


def _date(day: str, dow: str, days: list[int], weekdays: set, months: list[int]) -> str:
    """ " on Monday to Friday", " on day 1 of the month", " on 1 January"; "" for every day (the months
    are said here when the days are)."""
    if dow != "*" and _weekdays(weekdays) == "":
        dow = "*"  # 0-6, 1-7: every day of the week
    day_star, dow_star = day == "*", dow == "*"
    if day_star and dow_star:
        return ""
    if dow_star:
        return " on " + _days(days, months)
    on_weekdays = _weekdays(weekdays)
    if day_star:
        return f" on {on_weekdays}{_months(months)}"
    on_days = _days(days, [])
    if day.startswith("*") or dow.startswith("*"):  # Debian cron: both must match
        return f" on {on_days}, if it is {on_weekdays.removeprefix('the ')}{_months(months)}"
    return f" on {on_days} and on {on_weekdays}{_months(months)}"


def _days(days: list[int], months: list[int]) -> str:
    """Days of the month: "day 1 of the month", "1 January", "days 1 and 15 of March and June", "the
    last day of the month"."""
    some_months = bool(months) and not _is_all(months, Field.MONTH)
    of = "of " + _numbers(months, lambda m: MONTHS[m]) if some_months else "of the month"
    numbered = [d for d in days if d > 0]
    last = [
        words
        for value, words in ((CronSim.LAST, "the last day"), (CronSim.LAST_WEEKDAY, "the last weekday"))
        if value in days
    ]
    if not numbered:
        return f"{_join(last)} {of}"
    if len(numbered) == 1 and not last and some_months and len(months) == 1:
        return f"{numbered[0]} {MONTHS[months[0]]}"
    named = "day" if len(numbered) == 1 else "days"
    return f"{_join([f'{named} {_numbers(numbered)}', *last])} {of}"


def _weekdays(weekdays: set) -> str:
    """ "Monday to Friday", "Saturday and Sunday", "the last Friday of the month"; "" for all seven."""
    special = sorted(v for v in weekdays if isinstance(v, tuple))
    said = [
        f"the {'last' if nth == CronSim.LAST else NTH.get(nth, f'{nth}th')} {DAYS[dow % 7]} of the month"
        for dow, nth in special
    ]
    # Monday first, so that Monday to Friday and Saturday and Sunday are runs
    order = sorted({v % 7 for v in weekdays if isinstance(v, int)}, key=lambda d: (d + 6) % 7)
    if len(order) == 7:
        return ""
    if order:
        said.insert(0, _numbers([(d + 6) % 7 for d in order], lambda p: DAYS[(p + 1) % 7]))
    return _join(said)


def _months(months: list[int]) -> str:
    if _is_all(months, Field.MONTH):
        return ""
    return " in " + _numbers(months, lambda m: MONTHS[m])
