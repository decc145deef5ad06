"""Flowr's admin: one ModelAdmin per module."""
from . import desk_sections, instances, machines, rulesets  # noqa: F401
