"""Errors of schedules (see lambdasite/exceptions.py for the base)."""

from __future__ import annotations

from lambdasite.exceptions import Conflict, LimitReached, NotFound


class ScheduleNotFound(NotFound):
    code = "schedule_not_found"


class ScheduleExists(Conflict):
    code = "schedule_exists"


class ScheduleLimit(LimitReached):
    """The tenant has max_schedules schedules (403 quota_exceeded, no Retry-After)."""
