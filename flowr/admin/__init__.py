"""Flowr's admin: one ModelAdmin per module."""
from . import (  # noqa: F401
    desk_incidents, desk_sections, incidents, instances, machines, rulesets,
    version_migrations,
)
