"""Operators' admin for functions: disable a function, read its versions (immutable), move aliases, see
dependency layers with their size and users."""

from django.contrib import admin
from django.db.models import Count
from django.template.defaultfilters import filesizeformat

from lambdasite.admin_actions import each_selected

from .models import Alias, DependencyLayer, Function, FunctionVersion
from .services.deploy import function_set_disabled


class VersionInline(admin.TabularInline):
    model = FunctionVersion
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["number", "status", "handler", "content_hash", "layer", "created_at", "built_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class AliasInline(admin.TabularInline):
    model = Alias
    extra = 0
    fk_name = "function"
    fields = ["name", "version", "additional_version", "additional_weight", "description"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # only this function's versions (the object being edited is in the URL)
        if db_field.name in ("version", "additional_version") and request.resolver_match.kwargs.get(
            "object_id"
        ):
            kwargs["queryset"] = FunctionVersion.objects.filter(
                function_id=request.resolver_match.kwargs["object_id"]
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Function)
class FunctionAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "runtime", "latest_number", "provisioned", "is_disabled", "updated_at"]
    list_filter = ["runtime", "is_disabled", "tenant"]
    search_fields = ["name", "tenant__slug"]
    readonly_fields = [
        "tenant",
        "name",
        "runtime",
        "handler",
        "latest_number",
        # flow control is the tenant's (API, dashboard, CLI): its checks and re-keying live in the service
        "max_concurrency",
        "reserved_concurrency",
        "concurrency_key",
        "concurrency_per_key",
        "created_by",
        "created_at",
        "updated_at",
    ]
    fields = readonly_fields + ["description", "timeout_ms", "memory_mb", "max_retries", "provisioned",
                                "is_disabled", "disabled_reason"]  # fmt: skip
    inlines = [AliasInline, VersionInline]
    actions = ["disable", "enable"]

    def has_add_permission(self, request):
        return False  # functions are deployed by tenants (API, dashboard, CLI)

    @admin.action(description="Disable (invocations are refused; versions and jobs stay)")
    @each_selected("function(s) disabled")
    def disable(self, request, function):
        function_set_disabled(function=function, disabled=True, reason=f"disabled by {request.user}")

    @admin.action(description="Enable")
    @each_selected("function(s) enabled")
    def enable(self, request, function):
        function_set_disabled(function=function, disabled=False)


@admin.register(FunctionVersion)
class FunctionVersionAdmin(admin.ModelAdmin):
    """Read-only: a version never changes once created."""

    list_display = ["function", "number", "status", "egress_mode", "layer", "created_at", "built_at"]
    list_filter = ["status", "function__runtime", "egress_mode"]
    search_fields = ["function__name", "function__tenant__slug", "content_hash"]
    readonly_fields = [f.name for f in FunctionVersion._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DependencyLayer)
class DependencyLayerAdmin(admin.ModelAdmin):
    list_display = [
        "digest_short",
        "runtime",
        "status",
        "packages",
        "size",
        "users",
        "created_at",
        "last_used_at",
    ]
    list_filter = ["runtime", "status"]
    search_fields = ["digest", "volume"]
    readonly_fields = [f.name for f in DependencyLayer._meta.fields] + ["used_by"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(user_count=Count("versions"))

    @admin.display(description="layer", ordering="digest")
    def digest_short(self, obj):
        return obj.digest[:12]

    @admin.display(description="size", ordering="size_bytes")
    def size(self, obj):
        return filesizeformat(obj.size_bytes)

    @admin.display(description="versions using it", ordering="user_count")
    def users(self, obj):
        return obj.user_count

    @admin.display(description="used by")
    def used_by(self, obj):
        from .selectors import layer_users

        return ", ".join(f"{v.function}@v{v.number}" for v in layer_users(layer=obj)[:50]) or "nobody"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
