"""Operators' admin for routes: every tenant's public endpoints, read-only (tenants manage their own;
an operator deletes one that must stop answering)."""

from django.contrib import admin

from .models import Route


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    list_display = ["path", "tenant", "function", "mode", "auth_type", "rate_limit_per_minute", "created_at"]
    list_filter = ["mode", "tenant"]
    search_fields = ["path", "tenant__slug", "function__name"]
    readonly_fields = [f.name for f in Route._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
