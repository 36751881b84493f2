"""Operators' admin for secrets: names, revisions, fingerprints and authors, never a value; the
data keys' master key ids (to follow a master rotation)."""

from django.contrib import admin

from .models import Secret, SecretRevision, TenantKey


class ReadOnly:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class RevisionInline(ReadOnly, admin.TabularInline):
    model = SecretRevision
    extra = 0
    can_delete = False
    fields = ["number", "fingerprint", "size_bytes", "created_at", "created_by_label"]
    readonly_fields = fields


@admin.register(Secret)
class SecretAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["name", "tenant", "latest_number", "updated_at", "deleted_at"]
    list_filter = ["tenant"]
    search_fields = ["name", "tenant__slug"]
    fields = ["tenant", "name", "latest_number", "created_at", "updated_at", "deleted_at"]
    readonly_fields = fields
    inlines = [RevisionInline]

    def has_delete_permission(self, request, obj=None):
        return False  # the service deletes (erasing the value, keeping the numbers): the API or dashboard


@admin.register(TenantKey)
class TenantKeyAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["tenant", "master_key_id", "scheme", "created_at", "rewrapped_at"]
    search_fields = ["tenant__slug", "master_key_id"]
    fields = ["tenant", "master_key_id", "scheme", "created_at", "rewrapped_at"]
    readonly_fields = fields

    def has_delete_permission(self, request, obj=None):
        return False
