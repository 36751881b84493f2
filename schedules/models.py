"""Schedules (cron expression + time zone → invocations of a function) and their runs."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from accounts.models import Tenant


class Schedule(models.Model):
    class Overlap(models.TextChoices):
        SKIP = "skip"  # a tick is skipped while the previous run still waits or runs
        ALLOW = "allow"

    class CatchUp(models.TextChoices):
        NONE = "none"  # ticks missed while the service was down are skipped
        LATEST = "latest"  # one run for the ticks missed

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="schedules")
    name = models.CharField(max_length=64)
    cron = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, default="UTC")
    function = models.ForeignKey("functions.Function", on_delete=models.CASCADE, related_name="schedules")
    qualifier = models.CharField(max_length=64, blank=True)  # alias or version number; "" = latest ready
    args = models.JSONField(default=list, blank=True)
    enabled = models.BooleanField(default=True)
    overlap = models.CharField(max_length=5, choices=Overlap.choices, default=Overlap.SKIP)
    catch_up = models.CharField(max_length=6, choices=CatchUp.choices, default=CatchUp.NONE)
    max_failures = models.PositiveIntegerField(default=5)  # consecutive failed runs that pause it; 0: never
    consecutive_failures = models.PositiveIntegerField(default=0)
    paused_reason = models.CharField(max_length=500, blank=True)
    description = models.CharField(max_length=200, blank=True)
    next_fire_at = models.DateTimeField(null=True, blank=True)  # None while disabled
    last_fire_at = models.DateTimeField(null=True, blank=True)
    missed_ticks = models.PositiveIntegerField(default=0)  # skipped because the service was down
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["next_fire_at"], name="schedule_due", condition=Q(enabled=True))]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="one_schedule_name_per_tenant"),
            models.CheckConstraint(
                condition=Q(enabled=False) | Q(next_fire_at__isnull=False),
                name="enabled_schedule_has_next_tick",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.name}"


class ScheduleRun(models.Model):
    """One tick of a schedule (or a run asked for by hand): fired with its job, skipped, or refused."""

    class Status(models.TextChoices):
        FIRED = "fired"
        SKIPPED_OVERLAP = "skipped_overlap"  # the previous run was still waiting or running
        REFUSED = "refused"  # the invocation was refused (function gone or disabled, quota, rate)

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="runs")
    tick_at = models.DateTimeField()
    manual = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices)
    job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="schedule_runs"
    )
    error = models.CharField(max_length=1000, blank=True)
    outcome = models.CharField(max_length=12, blank=True)  # the job's final status, once counted
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-tick_at"]
        indexes = [
            models.Index(fields=["schedule", "-tick_at"], name="run_schedule_tick"),
            models.Index(fields=["status"], name="run_uncounted", condition=Q(status="fired", outcome="")),
        ]
        constraints = [
            # one run per tick, whatever races: two schedulers, a crash in the middle of a tick
            models.UniqueConstraint(fields=["schedule", "tick_at"], name="one_run_per_tick"),
        ]

    def __str__(self) -> str:
        return f"{self.schedule} @ {self.tick_at:%Y-%m-%d %H:%M:%S} ({self.status})"
