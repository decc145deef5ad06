"""django-reversion history, compare, revert and recover for machines."""
from reversion.admin import VersionAdmin


class MachineVersioningMixin(VersionAdmin):
    """History, compare, revert and recover deleted machines."""


class InstanceMoveMixin:
    """Admin action moving instances between machine versions (dry run, then confirm)."""
