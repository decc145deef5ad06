"""Flowr's admin: one ModelAdmin per module."""
from . import incidents, instances, machines, rulesets  # noqa: F401
