"""Running and reverting migrations: batches in bounded transactions, as background tasks.

A confirmed plan becomes a VersionMigration with one item per instance (`record_plan`).
`run` then takes the pending items in batches of BATCH_SIZE; each batch is one
transaction that locks the migration row (so two runners never interleave), locks each
instance row (`engine.lock`), checks that the instance is still at the position it had
when the migration was confirmed, moves it (`engine.enter`/`engine.record`: one MIGRATE
history entry) and writes the items' outcomes and the migration's counters. A failure
rolls back only its batch: every instance is then either migrated (its item says so) or
untouched (its item is still pending), and the migration is marked failed with the
error; it can be continued. Hooks never run and task state is never written.

What entering a state means for a migration: an instance mapped to *another* state
enters it as a step would — its timing starts now (due time) and the state's
assign-on-entry policy applies, except "the user who stepped into it", which nobody did:
it is left unassigned. An instance whose state keeps its key stays where it is: same
assignee and entry time, its due time recomputed from that entry time with the target
version's timing. A cancelled instance stays on its version and state, with no due time
and no assignee (as flowr.controls cancels).

`revert` puts back every migrated or cancelled instance whose position number is still
the one the migration gave it (checked under the row lock): version, state, status,
outcome, assignee and entry time as they were, due time from the old timing; the others
are listed as kept ("changed since") and left alone.
"""
import logging

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_tasks import task

from . import engine, signals, timers
from .exceptions import MigrationError, StepError
from .models import HistoryEntry, Instance, VersionMigration, VersionMigrationItem

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
Item = VersionMigrationItem

# -- recording a confirmed plan --------------------------------------------------------------


def _item(migration, instance, outcome, plan):
    action = {"refused": Item.NONE}.get(outcome.action, outcome.action)
    status = {Item.LEAVE: Item.LEFT, Item.NONE: Item.REFUSED}.get(action, Item.PENDING)
    return Item(
        migration=migration, instance_id=instance.pk, action=action, status=status,
        reason=outcome.reason, from_version_id=instance.version_id,
        from_key=instance.state_key, from_name=instance.state_name,
        from_status=instance.status, from_outcome=instance.outcome,
        from_position=instance.step_count, from_entered_at=instance.state_entered_at,
        from_assignee_id=instance.assignee_id,
        to_version=plan.target if action == Item.MAP else None,
        to_key=outcome.to_key, to_name=outcome.to_name)


def record_plan(plan, user=None, note=""):
    """Record a valid plan as a queued migration with its items (call inside atomic)."""
    plan.check()
    counts = plan.counts()
    migration = VersionMigration.objects.create(
        machine_id=plan.target.machine_id, target=plan.target,
        source_numbers=[v.number for v in plan.sources], mapping=plan.mapping(),
        note=note or "", created_by=user if getattr(user, "pk", None) else None,
        total=len(plan.instances), to_process=counts["map"] + counts["cancel"],
        left=counts["leave"], refused=counts["refused"])
    items = [_item(migration, i, o, plan) for i, o in plan.outcomes()]
    Item.objects.bulk_create(items, batch_size=1000)
    return migration


def submit(plan, user=None, note="", background=True):
    """Record the plan and run it: enqueued as a task (one transaction) or here, in batches."""
    with transaction.atomic():
        migration = record_plan(plan, user, note)
        if background and migration.to_process:
            migration.task_id = str(run_migration_task.enqueue(migration.pk).id)
            VersionMigration.objects.filter(pk=migration.pk).update(task_id=migration.task_id)
    if not background or not migration.to_process:
        run(migration.pk)
    migration.refresh_from_db()
    return migration


# -- running -----------------------------------------------------------------------------------

def _note(migration, item):
    target = migration.target.number
    if item.action == Item.CANCEL:
        text = (f"Cancelled by migration #{migration.pk} to version {target}: its state "
                f"'{item.from_name}' has no place there.")
    else:
        text = (f"Migration #{migration.pk}: version {item.from_version.number} "
                f"'{item.from_name}' → version {target} '{item.to_name}'.")
    return f"{text} {migration.note}".strip()


def _migrate_one(migration, item, target, user, now):
    """Migrate one locked instance as its item says; returns (status, reason)."""
    try:
        locked = engine.lock(item.instance_id)
        engine.check_expected(locked, expected_position=item.from_position)
        engine.check_status(locked, "be migrated")
    except StepError as exc:
        return Item.REFUSED, str(exc)
    except Instance.DoesNotExist:
        return Item.REFUSED, "The instance was deleted meanwhile."
    source = engine.compiled_by_id(locked.version_id)
    key, graph = locked.state_key, target
    if item.action == Item.CANCEL:
        graph = source
        locked.step_count += 1
        # As flowr.controls cancels: no deadline, no assignee (a revert restores both).
        locked.status, locked.due_at, locked.assignee_id = Instance.CANCELLED, None, None
    elif item.to_key == key:
        locked.version_id = target.version_id
        _stay(locked, target, key, now)
    else:
        locked.version_id = target.version_id
        engine.enter(locked, target, item.to_key, None, now)
    data = {"migration": migration.pk, "from_version": item.from_version.number,
            "to_version": migration.target.number if graph is target else None}
    entry = engine.record(locked, graph, HistoryEntry.MIGRATE, user=user, now=now,
                          note=_note(migration, item), data=data, from_key=key,
                          from_name=source.names[key])
    signals.send_on_commit(signals.instance_moved, locked, entry, user)
    return (Item.CANCELLED if item.action == Item.CANCEL else Item.MIGRATED), ""


def _stay(locked, graph, key, now):
    """The instance keeps its state (same key) on the new version."""
    locked.step_count += 1
    locked.state_name = graph.names[key]
    if not graph.children[key]:
        locked.status, locked.outcome = Instance.FINISHED, graph.outcome(key)
        locked.assignee_id, locked.due_at = None, None
    else:
        # A new position: new timers; the deadline still counts from the state's entry
        # and a reminder already due is not sent again.
        timers.on_position(locked, graph, now)


def _save_outcomes(results):
    """Write item statuses: one UPDATE per status, one per refused item (with its reason)."""
    by_status = {}
    for item, (status, reason) in results:
        if reason:
            Item.objects.filter(pk=item.pk).update(status=status, reason=reason[:2000])
        else:
            by_status.setdefault(status, []).append(item.pk)
    for status, pks in by_status.items():
        Item.objects.filter(pk__in=pks).update(status=status)
    counts = {}
    for _, (status, _) in results:
        counts[status] = counts.get(status, 0) + 1
    return counts


def _batch(migration_id, statuses, size):
    """Lock the migration row and read its next batch of items in `statuses`."""
    migration = (VersionMigration.objects.select_for_update(of=("self",))
                 .select_related("target", "created_by", "reverted_by").get(pk=migration_id))
    items = list(Item.objects.filter(migration_id=migration_id, status__in=statuses)
                 .select_related("from_version").order_by("id")[:size])
    return migration, items


def _run_batch(migration_id, size):
    """Migrate one batch in one transaction; returns how many items it handled."""
    with transaction.atomic():
        migration, items = _batch(migration_id, [Item.PENDING], size)
        if not items:
            return 0
        target = engine.compiled(migration.target)
        now = timezone.now()
        results = [(item, _migrate_one(migration, item, target, migration.created_by, now))
                   for item in items]
        counts = _save_outcomes(results)
        VersionMigration.objects.filter(pk=migration_id).update(
            processed=F("processed") + len(items),
            migrated=F("migrated") + counts.get(Item.MIGRATED, 0),
            cancelled=F("cancelled") + counts.get(Item.CANCELLED, 0),
            refused=F("refused") + counts.get(Item.REFUSED, 0))
    return len(items)


def _set(migration_id, **fields):
    VersionMigration.objects.filter(pk=migration_id).update(**fields)


def run(migration_id, batch_size=BATCH_SIZE, progress=None):
    """Run a migration's pending items in batches; returns the migration, as it ended.

    A failing batch is rolled back and the migration marked failed (the error kept);
    the exception is not raised here, the migration says what happened.
    """
    if not VersionMigration.objects.filter(pk=migration_id).exclude(
            status=VersionMigration.DONE).update(status=VersionMigration.RUNNING,
                                                  started_at=timezone.now(), error=""):
        return VersionMigration.objects.get(pk=migration_id)  # done already (a task re-run)
    try:
        while _run_batch(migration_id, batch_size):
            if progress:
                progress(VersionMigration.objects.get(pk=migration_id))
    except Exception as exc:  # noqa: BLE001 - any failure: keep it on the migration
        logger.exception("Migration %s failed", migration_id)
        _set(migration_id, status=VersionMigration.FAILED, finished_at=timezone.now(),
             error=f"{type(exc).__name__}: {exc}"[:4000])
    else:
        _set(migration_id, status=VersionMigration.DONE, finished_at=timezone.now())
    return VersionMigration.objects.get(pk=migration_id)


def resume(migration, background=True):
    """Continue a failed (or stalled: its worker died) migration with its pending items.

    Safe even if another runner is still at work: batches lock the migration row and take
    only pending items, so no instance is migrated twice.
    """
    with transaction.atomic():
        locked = VersionMigration.objects.select_for_update().get(pk=migration.pk)
        if locked.status == VersionMigration.DONE:
            raise MigrationError(f"Migration #{locked.pk} is done; there is nothing left to "
                                 f"continue.")
        _set(locked.pk, status=VersionMigration.QUEUED)
        if background:
            _set(locked.pk, task_id=str(run_migration_task.enqueue(locked.pk).id))
    return run(locked.pk) if not background else VersionMigration.objects.get(pk=locked.pk)


# -- reverting ---------------------------------------------------------------------------------

def request_revert(migration, user=None, background=True):
    """Start reverting a migration as a whole (queued as a task, or run here)."""
    with transaction.atomic():
        locked = VersionMigration.objects.select_for_update().get(pk=migration.pk)
        if not locked.revertible:
            raise MigrationError(_not_revertible(locked))
        total = locked.items.filter(status__in=[Item.MIGRATED, Item.CANCELLED]).count()
        fields = {"revert_status": VersionMigration.QUEUED, "revert_error": "",
                  "reverted_by": user if getattr(user, "pk", None) else None,
                  "revert_requested_at": timezone.now(),
                  "revert_total": locked.revert_processed + total}
        _set(locked.pk, **fields)
        if background:
            _set(locked.pk, revert_task_id=str(revert_migration_task.enqueue(locked.pk).id))
    if not background:
        return run_revert(locked.pk)
    return VersionMigration.objects.get(pk=locked.pk)


def _not_revertible(migration):
    if migration.revert_status == VersionMigration.DONE:
        return f"Migration #{migration.pk} has already been reverted."
    if migration.running:
        return f"Migration #{migration.pk} is still running; wait for it to finish."
    return f"Migration #{migration.pk} moved no instance; there is nothing to revert."


def _revert_one(migration, item, user, now):
    """Put one instance back where the item says it was; returns (status, reason)."""
    try:
        locked = engine.lock(item.instance_id)
    except Instance.DoesNotExist:
        return Item.KEPT, "The instance was deleted meanwhile."
    if locked.step_count != item.from_position + 1:
        return Item.KEPT, (f"Instance {locked.label} changed since the migration: it is now "
                           f"at '{locked.state_name}' ({locked.status}); it was left alone.")
    current = engine.compiled_by_id(locked.version_id)
    graph = engine.compiled_by_id(item.from_version_id)
    key = locked.state_key
    locked.step_count += 1
    locked.version_id, locked.state_key = item.from_version_id, item.from_key
    locked.state_name = graph.names.get(item.from_key, item.from_name)
    locked.status, locked.outcome = item.from_status, item.from_outcome
    locked.assignee_id, locked.state_entered_at = item.from_assignee_id, item.from_entered_at
    timers.on_position(locked, graph, now)  # its deadline, counted from its entry again
    entry = engine.record(
        locked, graph, HistoryEntry.MIGRATE, user=user, now=now, from_key=key,
        from_name=current.names.get(key, key),
        note=f"Reverted migration #{migration.pk}: back to version "
             f"{item.from_version.number} '{locked.state_name}'.",
        data={"migration": migration.pk, "revert": True,
              "to_version": item.from_version.number})
    signals.send_on_commit(signals.instance_moved, locked, entry, user)
    return Item.REVERTED, ""


def _revert_batch(migration_id, size):
    with transaction.atomic():
        migration, items = _batch(migration_id, [Item.MIGRATED, Item.CANCELLED], size)
        if not items:
            return 0
        now = timezone.now()
        results = [(item, _revert_one(migration, item, migration.reverted_by, now))
                   for item in items]
        counts = _save_outcomes(results)
        VersionMigration.objects.filter(pk=migration_id).update(
            revert_processed=F("revert_processed") + len(items),
            reverted=F("reverted") + counts.get(Item.REVERTED, 0),
            kept=F("kept") + counts.get(Item.KEPT, 0))
    return len(items)


def run_revert(migration_id, batch_size=BATCH_SIZE, progress=None):
    """Revert a migration's migrated and cancelled items in batches (like `run`)."""
    if not VersionMigration.objects.filter(pk=migration_id).exclude(
            revert_status__in=["", VersionMigration.DONE]).update(
            revert_status=VersionMigration.RUNNING):
        return VersionMigration.objects.get(pk=migration_id)  # not requested, or done
    try:
        while _revert_batch(migration_id, batch_size):
            if progress:
                progress(VersionMigration.objects.get(pk=migration_id))
    except Exception as exc:  # noqa: BLE001 - any failure: keep it on the migration
        logger.exception("Revert of migration %s failed", migration_id)
        _set(migration_id, revert_status=VersionMigration.FAILED,
             revert_error=f"{type(exc).__name__}: {exc}"[:4000])
    else:
        _set(migration_id, revert_status=VersionMigration.DONE, reverted_at=timezone.now())
    return VersionMigration.objects.get(pk=migration_id)


# -- background tasks (django-tasks; `manage.py db_worker` runs them) ------------------------

@task()
def run_migration_task(migration_id):
    """Run a migration in batches; fails (after recording why) if the migration failed."""
    migration = run(migration_id)
    if migration.status == VersionMigration.FAILED:
        raise MigrationError(f"Migration #{migration_id} failed: {migration.error}")
    return {"migrated": migration.migrated, "cancelled": migration.cancelled,
            "refused": migration.refused}


@task()
def revert_migration_task(migration_id):
    """Revert a migration in batches; fails (after recording why) if the revert failed."""
    migration = run_revert(migration_id)
    if migration.revert_status == VersionMigration.FAILED:
        raise MigrationError(f"Revert of migration #{migration_id} failed: "
                             f"{migration.revert_error}")
    return {"reverted": migration.reverted, "kept": migration.kept}
