"""Operators' admin for jobs: filters, search by id, read-only code, args, result and logs."""
from django.contrib import admin

from .models import Attempt, Job, LogLine


class AttemptInline(admin.TabularInline):
    model = Attempt
    extra = 0
    can_delete = False
    readonly_fields = [f.name for f in Attempt._meta.fields]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "tenant", "runtime", "status", "attempts", "created_at", "duration_ms"]
    list_filter = ["status", "runtime", "tenant", "created_at"]
    search_fields = ["=id"]
    date_hierarchy = "created_at"
    inlines = [AttemptInline]
    readonly_fields = [f.name for f in Job._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(LogLine)
class LogLineAdmin(admin.ModelAdmin):
    list_display = ["job", "seq", "attempt", "stream", "ts", "text"]
    list_filter = ["stream"]
    search_fields = ["=job__id"]
    readonly_fields = [f.name for f in LogLine._meta.fields]

    def has_add_permission(self, request):
        return False
