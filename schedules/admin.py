"""Operators' admin for schedules: every tenant's, with pause and resume."""

from django.contrib import admin

from lambdasite.admin_actions import each_selected

from .models import Schedule, ScheduleRun
from .services.manage import ScheduleSpec, schedule_update


class RunInline(admin.TabularInline):
    model = ScheduleRun
    extra = 0
    can_delete = False
    fields = ["tick_at", "manual", "status", "job", "outcome", "error"]
    readonly_fields = fields
    ordering = ["-tick_at"]

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("job")


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "tenant",
        "function",
        "cron",
        "timezone",
        "enabled",
        "next_fire_at",
        "last_fire_at",
    ]
    list_filter = ["enabled", "tenant"]
    search_fields = ["name", "tenant__slug", "function__name"]
    readonly_fields = (
        "tenant name function cron timezone next_fire_at last_fire_at consecutive_failures missed_ticks "
        "paused_reason created_at updated_at"
    ).split()
    fields = readonly_fields + ["description", "max_failures"]
    inlines = [RunInline]
    actions = ["pause", "resume"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Pause")
    @each_selected("schedule(s) paused")
    def pause(self, request, schedule):
        schedule_update(schedule=schedule, spec=ScheduleSpec(enabled=False))
        Schedule.objects.filter(pk=schedule.pk).update(paused_reason=f"paused by {request.user}")

    @admin.action(description="Resume (from now)")
    @each_selected("schedule(s) resumed")
    def resume(self, request, schedule):
        schedule_update(schedule=schedule, spec=ScheduleSpec(enabled=True))
