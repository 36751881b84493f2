"""Creating, changing, pausing and deleting schedules, and running one now."""

from __future__ import annotations

import dataclasses
import json

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.guards import tenant_require_active
from accounts.models import Tenant
from functions.models import Function
from functions.services.invoke import qualifier_refusal
from functions.validation import function_name
from lambdasite.exceptions import ValidationFailed
from lambdasite.parsers import args_problem

from ..exceptions import ScheduleExists, ScheduleLimit
from ..models import Schedule
from . import crontab
from .notify import schedule_changed_after_commit

FIELDS = tuple(
    "cron timezone function qualifier args enabled overlap catch_up max_failures description".split()
)


@dataclasses.dataclass
class ScheduleSpec:
    cron: str | None = None
    timezone: str | None = None
    function: str | None = None  # a function's name
    qualifier: str | None = None
    args: list | None = None
    enabled: bool | None = None
    overlap: str | None = None
    catch_up: str | None = None
    max_failures: int | None = None
    description: str | None = None


def _fail(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", details={"fields": {field: [message]}})


def _apply(schedule: Schedule, spec: ScheduleSpec, tenant: Tenant) -> None:
    for name in FIELDS:
        value = getattr(spec, name)
        if value is None:
            continue
        if name == "function":
            function = Function.objects.filter(tenant=tenant, name=value).first()
            if function is None:
                # a name in the body, not the URL's target: a 400 naming the field (never another tenant's)
                raise _fail("function", f"no function named {value}")
            schedule.function = function
        elif name == "args":
            problem = args_problem(value)  # the rule the API's args follow (bounded depth first)
            if problem is not None:
                raise _fail("args", problem)
            if len(json.dumps(value)) > tenant.quota.max_args_bytes:
                raise _fail("args", "over this tenant's cap of args bytes")
            schedule.args = value
        elif name == "overlap" and value not in Schedule.Overlap.values:
            raise _fail("overlap", "skip or allow")
        elif name == "catch_up" and value not in Schedule.CatchUp.values:
            raise _fail("catch_up", "none or latest")
        else:
            setattr(schedule, name, value)
    if schedule.function_id is None:
        raise _fail("function", "required: the name of a deployed function")
    if spec.qualifier is not None or spec.function is not None:
        # checked against the function it will run, by the rule its runs resolve it with: a schedule
        # never stores a qualifier its every tick would be refused for (an alias deleted later is
        # the run's 409, see ticks.invocation_of)
        problem = qualifier_refusal(function=schedule.function, qualifier=schedule.qualifier)
        if problem is not None:
            raise _fail("qualifier", problem)


def _arm(schedule: Schedule, now) -> list:
    """Check the expression against the tenant's minimum interval; set the next tick (if enabled)."""
    upcoming = crontab.check(
        schedule.cron,
        schedule.timezone,
        min_interval_s=schedule.tenant.quota.min_schedule_interval_s,
        now=now,
    )
    schedule.next_fire_at = upcoming[0] if schedule.enabled else None
    return upcoming


def schedule_create(*, tenant: Tenant, name: str, spec: ScheduleSpec) -> Schedule:
    tenant_require_active(tenant)
    try:
        function_name(name)
    except ValidationFailed as exc:
        raise _fail("name", exc.message.split(": ", 1)[1]) from None
    if spec.cron is None:
        raise _fail("cron", "required")
    schedule = Schedule(tenant=tenant, name=name, timezone=spec.timezone or "UTC")
    _apply(schedule, spec, tenant)
    _arm(schedule, timezone.now())
    quota = tenant.quota
    try:
        with transaction.atomic():
            if Schedule.objects.filter(tenant=tenant, name=name).exists():
                raise IntegrityError("exists")
            if Schedule.objects.filter(tenant=tenant).count() >= quota.max_schedules:
                raise ScheduleLimit(
                    f"this tenant has {quota.max_schedules} schedules, its cap: delete one, or ask an "
                    "operator to raise max_schedules",
                    details={"quota": "max_schedules", "limit": quota.max_schedules},
                )
            schedule.save(force_insert=True)
            schedule_changed_after_commit(schedule)
    except IntegrityError:
        raise ScheduleExists(f"a schedule named {name} exists") from None
    return schedule


def schedule_update(*, schedule: Schedule, spec: ScheduleSpec) -> Schedule:
    """Change a schedule; enabling it (again) clears its pause and failure count and starts from now.
    A suspended tenant may only pause one."""
    if spec != ScheduleSpec(enabled=False):
        tenant_require_active(schedule.tenant)
    with transaction.atomic():
        schedule = (
            Schedule.objects.select_for_update(of=("self",))
            .select_related("tenant__quota")
            .get(pk=schedule.pk)
        )
        was_enabled = schedule.enabled
        _apply(schedule, spec, schedule.tenant)
        if schedule.enabled and not was_enabled:
            schedule.consecutive_failures, schedule.paused_reason = 0, ""
        if spec.cron is not None or spec.timezone is not None or schedule.enabled != was_enabled:
            _arm(schedule, timezone.now())
        schedule.save()
        schedule_changed_after_commit(schedule)
    return schedule


def schedule_delete(*, schedule: Schedule) -> None:
    Schedule.objects.filter(pk=schedule.pk).delete()  # its runs go with it; its jobs stay
    schedule_changed_after_commit(schedule)


def upcoming(schedule: Schedule, n: int = 5) -> list:
    if not schedule.enabled:
        return []
    return crontab.upcoming(schedule.cron, schedule.timezone, timezone.now(), n)
