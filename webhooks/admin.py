"""Operators' admin for webhooks: every tenant's endpoints (disable, enable) and deliveries (read-only)."""

from django.contrib import admin

from lambdasite.admin_actions import each_selected

from .models import Delivery, DeliveryAttempt, WebhookEndpoint
from .services.endpoints import endpoint_update


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["url", "tenant", "enabled", "failing_since", "created_at"]
    list_filter = ["enabled", "tenant"]
    search_fields = ["url", "tenant__slug"]
    readonly_fields = ["tenant", "url", "events", "function", "failing_since", "created_at"]
    exclude = ["secret"]  # never shown again, not even to operators
    actions = ["disable", "enable"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Disable (pending deliveries stop)")
    @each_selected("endpoint(s) disabled")
    def disable(self, request, endpoint):
        endpoint_update(endpoint=endpoint, enabled=False, throttled=False)
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(disabled_reason=f"disabled by {request.user}")

    @admin.action(description="Enable")
    @each_selected("endpoint(s) enabled")
    def enable(self, request, endpoint):
        endpoint_update(endpoint=endpoint, enabled=True, throttled=False)


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    readonly_fields = ["number", "started_at", "status_code", "latency_ms", "error", "response"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["webhook_id", "type", "url", "tenant", "status", "attempts", "created_at"]
    list_filter = ["status", "type", "tenant"]
    search_fields = ["webhook_id", "url", "=job_id"]
    readonly_fields = [f.name for f in Delivery._meta.fields]
    inlines = [AttemptInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
