"""Operators' admin for tenants, members, keys and quotas."""

from django.contrib import admin, messages

from .models import ApiKey, Membership, Quota, Tenant
from .services import api_key_issue, api_key_revoke


class QuotaInline(admin.StackedInline):
    model = Quota
    can_delete = False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    fields = ["name", "prefix", "scope", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "is_suspended", "waiting", "running", "dead_letters", "created_at"]

    def get_queryset(self, request):
        from django.db.models import Count, Q

        return (
            super()
            .get_queryset(request)
            .annotate(
                n_waiting=Count("jobs", filter=Q(jobs__status__in=["queued", "dispatched", "retrying"])),
                n_running=Count("jobs", filter=Q(jobs__status="running")),
                n_dead=Count("jobs", filter=Q(jobs__status="dead")),
            )
        )

    @admin.display(description="waiting", ordering="n_waiting")
    def waiting(self, obj):
        return obj.n_waiting

    @admin.display(description="running", ordering="n_running")
    def running(self, obj):
        return obj.n_running

    @admin.display(description="DLQ depth", ordering="n_dead")
    def dead_letters(self, obj):
        return obj.n_dead

    list_filter = ["is_suspended"]
    search_fields = ["slug", "name"]
    inlines = [QuotaInline, MembershipInline, ApiKeyInline]
    actions = ["issue_key"]

    @admin.action(description="Issue a new API key (shown once)")
    def issue_key(self, request, queryset):
        for tenant in queryset:
            issued = api_key_issue(tenant=tenant, name="admin", created_by=request.user, operator=True)
            self.message_user(
                request,
                f"{tenant.slug}: {issued.plaintext} — copy it now, it is not shown again",
                messages.WARNING,
            )


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "tenant", "scope", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["scope", "tenant"]
    search_fields = ["name", "key_id", "tenant__slug"]
    readonly_fields = ["key_id", "key_hash", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # keys are issued from the tenant page so the secret can be shown once

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        for key in queryset:
            api_key_revoke(api_key=key)


admin.site.register(Membership)
admin.site.register(Quota)
