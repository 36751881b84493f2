"""Operators' admin for jobs: filters, search by id, read-only code, args, result, logs and connections."""

from django.contrib import admin, messages

from lambdasite.exceptions import ApplicationError

from .models import Attempt, Connection, Event, Job, LogLine, Status, Step
from .services import actions


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
    actions = ["requeue", "cancel"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Requeue (dead, failed, timed out, killed or cancelled jobs)")
    def requeue(self, request, queryset):
        self._apply(request, queryset, lambda job: actions.job_requeue(job=job, by_operator=True), "requeued")

    @admin.action(description="Cancel (waiting jobs at once, running jobs within ~1 s)")
    def cancel(self, request, queryset):
        self._apply(request, queryset, lambda job: actions.job_cancel(job=job), "cancelled")

    def _apply(self, request, queryset, action, verb: str) -> None:
        done, skipped = 0, []
        for job in queryset:
            try:
                action(job)
                done += 1
            except ApplicationError as exc:
                skipped.append(f"{job.id}: {exc.message}")
        self.message_user(request, f"{done} job(s) {verb}.", messages.SUCCESS)
        if skipped:
            self.message_user(request, "Skipped " + "; ".join(skipped[:10]), messages.WARNING)


class DeadLetter(Job):
    class Meta:
        proxy = True
        verbose_name = "dead letter"
        verbose_name_plural = "dead letters (DLQ)"


@admin.register(DeadLetter)
class DeadLetterAdmin(JobAdmin):
    list_filter = ["tenant", "runtime", "created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(status=Status.DEAD)


@admin.register(LogLine)
class LogLineAdmin(admin.ModelAdmin):
    list_display = ["job", "seq", "attempt", "stream", "ts", "text"]
    list_filter = ["stream"]
    search_fields = ["=job__id"]
    readonly_fields = [f.name for f in LogLine._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    list_display = ["job", "seq", "attempt", "host", "port", "address", "verdict", "reason", "started_at"]
    list_filter = ["verdict"]
    list_select_related = ["job"]
    search_fields = ["=job__id", "host"]
    readonly_fields = [f.name for f in Connection._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Step)
class StepAdmin(admin.ModelAdmin):
    """A durable run's recorded steps, read-only (the run's page draws them as a timeline)."""

    list_display = ["job", "seq", "name", "kind", "status", "attempts", "wake_at", "finished_at"]
    list_filter = ["kind", "status"]
    list_select_related = ["job"]
    search_fields = ["=job__id", "name"]
    readonly_fields = [f.name for f in Step._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """Events posted to /api/v1/events (kept EVENT_RETENTION_S for runs that wait for them later)."""

    list_display = ["id", "tenant", "name", "key", "received_at"]
    list_filter = ["tenant"]
    search_fields = ["name", "key"]
    readonly_fields = [f.name for f in Event._meta.fields]

    def has_add_permission(self, request):
        return False
