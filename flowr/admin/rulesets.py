from django.contrib import admin

from ..models import RuleSetRecord


@admin.register(RuleSetRecord)
class RuleSetAdmin(admin.ModelAdmin):
    """Rule sets mirror code: read-only."""

    list_display = ["name", "key", "root_rule_key", "is_registered", "synced_at"]
    readonly_fields = ["key", "name", "description", "root_rule_key", "is_registered", "synced_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
