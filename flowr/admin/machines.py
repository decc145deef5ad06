from django.contrib import admin

from ..models import Machine
from .importexport import MachineImportExportMixin
from .versioning import MachineVersioningMixin


@admin.register(Machine)
class MachineAdmin(MachineImportExportMixin, MachineVersioningMixin):
    list_display = ["name", "rule_set", "archived", "updated_at"]
    list_filter = ["rule_set", "archived"]
    search_fields = ["name", "description"]
