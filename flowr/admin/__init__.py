"""Flowr's admin: one ModelAdmin per module."""
from . import desk_sections, instances, machines, rulesets, version_migrations  # noqa: F401
