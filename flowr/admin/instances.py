from django.contrib import admin

from ..models import Instance
from .versioning import InstanceMoveMixin


@admin.register(Instance)
class InstanceAdmin(InstanceMoveMixin, admin.ModelAdmin):
    list_display = ["id", "machine", "version", "state_name", "status", "last_activity"]
    list_select_related = ["machine", "version"]
    list_filter = ["machine", "status"]
