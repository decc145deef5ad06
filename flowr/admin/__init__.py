"""Flowr's admin: one ModelAdmin per module."""
from . import desk_incidents, incidents, instances, machines, rulesets  # noqa: F401
