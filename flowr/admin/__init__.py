"""Flowr's admin: one ModelAdmin per module."""
from . import instances, machines, rulesets, version_migrations  # noqa: F401
