"""Errors of schedules (see lambdasite/exceptions.py for the base)."""

from __future__ import annotations

from lambdasite.exceptions import Conflict, NotFound, RateLimited


class ScheduleNotFound(NotFound):
    code = "schedule_not_found"


class ScheduleExists(Conflict):
    code = "schedule_exists"


class ScheduleLimit(RateLimited):
    code = "schedule_limit"
