"""Migrating running instances to another version of their machine: the Python API.

    from flowr import migrations_api as migrations

    plan = migrations.plan_migration(machine, to=3, mapping={"Review": "Check"},
                                     cancel=["Parked"], user=user)
    plan.counts()          # the dry run: {"map": 980, "leave": 0, "cancel": 20, "refused": 0}
    migration = migrations.migrate(plan, user=user)     # batches; one MIGRATE entry each
    migrations.revert(migration, user=user)             # those unchanged since go back

States are named by key or by name (a name shared by two states must be given by its key).
Instances of the selection sitting in a state the target version lacks must be mapped:
pre-filled by stable key, then by rule; `mapping` maps a source state to a target state
(or to LEAVE / CANCEL), `leave` and `cancel` list source states. An invalid mapping raises
MappingInvalid naming each refused state (nothing is written). `migrate` records one
VersionMigration (flowr.models) and runs it here in bounded batches, or enqueues it as a
background task (`background=True`, run by `manage.py db_worker`). Hooks never run and
task state is untouched; see flowr.migration_runner for what entering a state means.
"""
from django.db.models import F

from . import migration_runner as _runner
from .exceptions import MappingInvalid, MigrationError
from .migration_plan import CANCEL, LEAVE, MAP, Choice, MigrationPlan, load_instances
from .models import Instance, MachineVersion, VersionMigration, VersionMigrationItem

__all__ = ["LEAVE", "CANCEL", "MigrationPlan", "MappingInvalid", "MigrationError",
           "version_of", "running_instances", "plan_migration", "migrate", "revert",
           "resume", "revert_preview"]


def version_of(machine, number):
    """The MachineVersion `number` of `machine`, or MigrationError."""
    version = (machine.versions.filter(number=number).first()
               if str(number).isdigit() else None)
    if version is None:
        raise MigrationError(f"Machine '{machine}' has no version {number}; its versions "
                             f"are {_numbers(machine) or 'none (publish it first)'}.")
    return version


def _numbers(machine):
    return ", ".join(str(n) for n in machine.versions.order_by("number")
                     .values_list("number", flat=True))


def running_instances(machine, source=None, target=None):
    """The machine's active instances (on `source` only, when given), except those on `target`."""
    instances = Instance.objects.filter(machine=machine, status=Instance.ACTIVE)
    if source is not None:
        instances = instances.filter(version=source)
    return instances.exclude(version=target) if target is not None else instances


def _overrides(plan, mapping, leave, cancel):
    """{source key: Choice} from the caller's references (keys or names)."""
    overrides = {}
    given = [(ref, to) for ref, to in (mapping or {}).items()]
    given += [(ref, LEAVE) for ref in leave] + [(ref, CANCEL) for ref in cancel]
    for ref, to in given:
        key = plan.source_key(ref)
        choice = Choice(to) if to in (LEAVE, CANCEL) else Choice(MAP, plan.target_key(to))
        if key in overrides and overrides[key] != choice:
            raise MappingInvalid(f"State '{ref}' is given two different outcomes; give one.")
        overrides[key] = choice
    return overrides


def plan_migration(machine, to, *, source=None, instances=None, mapping=None, leave=(),
                   cancel=(), user=None):
    """The dry run (a MigrationPlan) of migrating instances of `machine` to version `to`.

    `to` and `source` are versions or version numbers. Without `instances` (a queryset
    or a list of instances) every active instance not on `to` is selected (only those on
    `source`, when given). Reads only; `plan.check()` raises MappingInvalid if invalid.
    """
    target = to if isinstance(to, MachineVersion) else version_of(machine, to)
    if source is not None and not isinstance(source, MachineVersion):
        source = version_of(machine, source)
    if instances is None:
        queryset = running_instances(machine, source, target)
    elif hasattr(instances, "model"):
        queryset = instances
    else:
        queryset = Instance.objects.filter(pk__in=[i.pk for i in instances])
    plan = MigrationPlan(load_instances(queryset.filter(machine=machine)), target, user=user)
    plan.apply(_overrides(plan, mapping, leave, cancel))
    return plan


def migrate(plan, user=None, note="", background=False):
    """Record the plan as one VersionMigration and run it (here, or as a background task).

    Raises MappingInvalid (nothing written) if a choice of the plan is refused. Returns
    the migration; its status, counters and items say what happened to each instance.
    """
    return _runner.submit(plan, user=user, note=note, background=background)


def revert(migration, user=None, background=False):
    """Revert a finished (or failed) migration as a whole; changed instances are kept.

    Returns the migration: `reverted` instances went back, `kept` ones had changed since
    (their items say how). MigrationError if it cannot be reverted (running, reverted).
    """
    return _runner.request_revert(migration, user=user, background=background)


def resume(migration, background=False):
    """Continue a failed migration with its pending (untouched) instances."""
    return _runner.resume(migration, background=background)


def revert_preview(migration, limit=200):
    """(how many would go back, [items of instances changed since, up to `limit`]): 2 queries."""
    done = VersionMigrationItem.objects.filter(
        migration=migration, status__in=[VersionMigrationItem.MIGRATED,
                                         VersionMigrationItem.CANCELLED])
    unchanged = F("from_position") + 1
    back = done.filter(instance__step_count=unchanged).count()
    changed = list(done.exclude(instance__step_count=unchanged)
                   .select_related("instance", "from_version").order_by("id")[:limit])
    return back, changed


def migrations_of(machine):
    """The machine's migrations, newest first."""
    return VersionMigration.objects.filter(machine=machine).select_related("target")
