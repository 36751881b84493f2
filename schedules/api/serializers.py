"""Request validation and response shapes of the schedules API."""

from __future__ import annotations

from datetime import UTC

from rest_framework import serializers

from lambdasite.api.fields import (
    ArgsField,
    QualifierField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
)

from ..describe import describe
from ..models import Schedule, ScheduleRun
from ..services.manage import upcoming


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class ScheduleUpdateSerializer(StrictSerializer):
    cron = StrictCharField(required=False, max_length=200, help_text="5 fields, or 6 with seconds first")
    timezone = StrictCharField(required=False, max_length=64, help_text="IANA name; default UTC")
    function = StrictCharField(required=False, max_length=64, help_text="the deployed function it invokes")
    qualifier = QualifierField(required=False, allow_blank=True, help_text="alias or version")
    args = ArgsField(required=False, help_text="JSON array passed to every run")
    enabled = StrictBooleanField(required=False)
    overlap = serializers.ChoiceField(choices=Schedule.Overlap.values, required=False)
    catch_up = serializers.ChoiceField(choices=Schedule.CatchUp.values, required=False)
    max_failures = StrictIntegerField(
        required=False,
        min_value=0,
        max_value=10_000,
        help_text="consecutive failed runs that pause it",
    )
    description = StrictCharField(required=False, allow_blank=True, max_length=200)


class ScheduleCreateSerializer(ScheduleUpdateSerializer):
    name = StrictCharField(max_length=64)
    cron = StrictCharField(max_length=200, help_text="5 fields, or 6 with seconds first")
    function = StrictCharField(max_length=64)


def _dt(value):
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def schedule_body(schedule: Schedule) -> dict:
    return {
        "name": schedule.name,
        "cron": schedule.cron,
        "cron_description": describe(schedule.cron),
        "timezone": schedule.timezone,
        "function": schedule.function.name,
        "qualifier": schedule.qualifier or None,
        "args": schedule.args,
        "enabled": schedule.enabled,
        "paused_reason": schedule.paused_reason or None,
        "overlap": schedule.overlap,
        "catch_up": schedule.catch_up,
        "max_failures": schedule.max_failures,
        "consecutive_failures": schedule.consecutive_failures,
        "description": schedule.description,
        "next_fire_times": [_dt(t) for t in upcoming(schedule)],
        "last_fire_at": _dt(schedule.last_fire_at),
        "missed_ticks": schedule.missed_ticks,
        "created_at": _dt(schedule.created_at),
        "links": {
            "self": f"/api/v1/schedules/{schedule.name}",
            "runs": f"/api/v1/schedules/{schedule.name}/runs",
        },
    }


def run_body(run: ScheduleRun) -> dict:
    job = run.job
    return {
        "tick_at": _dt(run.tick_at),
        "manual": run.manual,
        "status": run.status,
        "error": run.error or None,
        "job": None
        if job is None
        else {"id": str(job.id), "status": job.status, "link": f"/api/v1/jobs/{job.id}"},
        "created_at": _dt(run.created_at),
    }


class ScheduleSchema(serializers.Serializer):
    name = serializers.CharField()
    cron = serializers.CharField()
    cron_description = serializers.CharField(
        allow_null=True, help_text='the expression in plain words, e.g. "At 09:00 on Monday to Friday"'
    )
    timezone = serializers.CharField()
    function = serializers.CharField()
    qualifier = serializers.CharField(allow_null=True)
    args = serializers.ListField()
    enabled = serializers.BooleanField()
    paused_reason = serializers.CharField(allow_null=True)
    overlap = serializers.CharField()
    catch_up = serializers.CharField()
    max_failures = serializers.IntegerField()
    consecutive_failures = serializers.IntegerField()
    description = serializers.CharField()
    next_fire_times = serializers.ListField(child=serializers.DateTimeField())
    last_fire_at = serializers.DateTimeField(allow_null=True)
    missed_ticks = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    links = serializers.DictField()


class RunSchema(serializers.Serializer):
    tick_at = serializers.DateTimeField()
    manual = serializers.BooleanField()
    status = serializers.ChoiceField(choices=ScheduleRun.Status.values)
    error = serializers.CharField(allow_null=True)
    job = serializers.DictField(allow_null=True)
    created_at = serializers.DateTimeField()
