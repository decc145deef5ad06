"""Flowr's data: rule-set mirrors, machines, states, transitions, versions, instances."""
from .incidents import Incident
from .instances import HistoryEntry, Instance, TaskStateRecord
from .machines import Machine, MachineVersion, RuleSetRecord, State, Transition
from .machines import _short_key  # noqa: F401 - named by migration 0001
from .version_migrations import VersionMigration, VersionMigrationItem

__all__ = ["RuleSetRecord", "Machine", "State", "Transition", "MachineVersion", "Instance",
           "HistoryEntry", "TaskStateRecord", "VersionMigration", "VersionMigrationItem",
           "Incident"]
