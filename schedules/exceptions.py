"""Errors of schedules (see lambdasite/exceptions.py for the base)."""

from __future__ import annotations

from lambdasite.exceptions import Conflict, LimitReached, NotFound


class ScheduleNotFound(NotFound):
    code = "schedule_not_found"


class ScheduleExists(Conflict):
    code = "schedule_exists"


class ScheduleLimit(LimitReached):
    """The tenant has max_schedules schedules (403 quota_exceeded, no Retry-After)."""


class ScheduleQualifierGone(Conflict):
    """The alias a schedule runs its function as was deleted after the schedule was saved (a
    schedule's qualifier is checked then): the schedule is there, so never its 404, and it cannot
    run until its qualifier is changed or the alias is set again."""

    code = "schedule_qualifier_gone"
