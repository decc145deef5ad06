from django.contrib import admin
from import_export.admin import ImportExportMixin
from reversion.admin import VersionAdmin

from ..models import Machine


@admin.register(Machine)
class MachineAdmin(ImportExportMixin, VersionAdmin):
    list_display = ["name", "rule_set", "archived", "updated_at"]
    list_filter = ["rule_set", "archived"]
    search_fields = ["name", "description"]
