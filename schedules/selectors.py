"""Reads of schedules, scoped to a tenant: another tenant's schedule is simply not found."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import Schedule, ScheduleRun


def schedule_list(*, tenant_ids) -> QuerySet[Schedule]:
    return Schedule.objects.filter(tenant_id__in=tenant_ids).select_related("function").order_by("name")


def schedule_get(*, tenant_ids, name: str) -> Schedule | None:
    return (
        Schedule.objects.filter(tenant_id__in=tenant_ids, name=name)
        .select_related("function", "tenant__quota")
        .first()
    )


def run_list(*, schedule: Schedule, limit: int = 50) -> list[ScheduleRun]:
    return list(schedule.runs.select_related("job").order_by("-tick_at")[:limit])
