"""Flowr's admin: one ModelAdmin per module."""
from . import instances, machines, rulesets  # noqa: F401
