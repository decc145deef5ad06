"""Migrations of running instances between versions (flowr.migrations_api): mapping by key,
by rule and by hand, refusals, 1,000 instances migrated and reverted, failures midway,
the background task (immediate backend and a real db_worker)."""
import os
import subprocess
import sys

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from flowr import builder, engine
from flowr import migration_runner as runner
from flowr import migrations_api as migrations
from flowr.exceptions import MappingInvalid, MigrationError
from flowr.models import (
    HistoryEntry, Instance, TaskStateRecord, VersionMigration, VersionMigrationItem,
)

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]
Item = VersionMigrationItem
IMMEDIATE = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}


def _at(machine, *path, **kwargs):
    instance = machine.start(**kwargs)
    for name in path:
        instance.step(to=name)
    return instance


def _fresh(instance):
    return Instance.objects.get(pk=instance.pk)


def _replays(instance):
    """Does the instance's position equal the replay of its history?"""
    instance = _fresh(instance)
    return engine.replay(instance.history.all()) == engine.position_of(instance)


def row_counts():
    """Rows of every table a migration could write."""
    return [model.objects.count() for model in (Instance, HistoryEntry, VersionMigration,
                                                Item, TaskStateRecord)]


@pytest.fixture
def renamed(example_machine, admin_user):
    """v1 = A→C→(D|E), E→A; v2 = the same with C renamed "C′" (same key)."""
    v1 = example_machine.latest_version()
    builder.update_state(example_machine.states.get(name="C"), name="C′")
    return example_machine, v1, example_machine.publish(admin_user)


@pytest.fixture
def replaced(example_machine, admin_user):
    """v2 = E pruned and a new state "E2" of E's rule added under C (a new key)."""
    v1 = example_machine.latest_version()
    builder.prune_state(example_machine.states.get(name="E"))
    e2 = builder.add_child(example_machine.states.get(name="C"), "flowr_example.E", name="E2")
    builder.connect(e2, example_machine.root_state)
    return example_machine, v1, example_machine.publish(admin_user)


# -- planning ----------------------------------------------------------------------------

def test_plan_prefills_by_key_then_by_rule_and_writes_nothing(replaced, admin_user):
    machine, v1, v2 = replaced
    at_c, at_e = _at(machine, "C", version=v1), _at(machine, "C", "E", version=v1)
    before = row_counts()
    with CaptureQueriesContext(connection) as queries:
        plan = migrations.plan_migration(machine, 2, user=admin_user)
        outcomes = dict((i.pk, o) for i, o in plan.outcomes())
        plan.digest()
    assert row_counts() == before
    assert not [q for q in queries.captured_queries
                if q["sql"].split()[0].upper() in ("INSERT", "UPDATE", "DELETE")]
    by_name = {s.name: s for s in plan.states}
    e2 = machine.states.get(name="E2").key
    assert (by_name["C"].choice.how, by_name["C"].choice.to) == ("key", by_name["C"].key)
    assert (by_name["E"].choice.how, by_name["E"].choice.to) == ("rule", e2)
    assert [s.name for s in plan.rows] == ["E"]  # only the state v2 lacks needs a row
    assert outcomes[at_e.pk].to_name == "E2" and outcomes[at_c.pk].to_name == "C"
    assert plan.counts() == {"map": 2, "leave": 0, "cancel": 0, "refused": 0}


def test_a_state_without_a_match_must_be_chosen(example_machine, admin_user):
    machine = example_machine
    v1 = machine.latest_version()
    builder.prune_state(machine.states.get(name="E"))
    machine.publish(admin_user)
    _at(machine, "C", "E", version=v1)
    plan = migrations.plan_migration(machine, 2)
    with pytest.raises(MappingInvalid, match="Version 2 has no state 'E' and no state of its "
                                             "rule; choose where its 1 instance go"):
        plan.check()
    plan = migrations.plan_migration(machine, 2, mapping={"E": "A"})
    plan.check()
    assert plan.counts()["map"] == 1


def test_refused_mappings_name_the_reason_and_write_nothing(demo_machines, django_user_model):
    """Mapping to a state whose rule needs a permission the user lacks; to no state;
    cancelling without the cancel permission."""
    machine = demo_machines["orders"]
    v1 = machine.latest_version()
    submitted = machine.states.get(name="Submitted")
    builder.remove_state(machine.states.get(name="Needs rework"))
    v2 = machine.publish()
    instance = _at(machine, "Submitted", "Needs rework", version=v1)
    clerk = django_user_model.objects.create_user("clerk", is_staff=True)
    before = row_counts()
    approved = machine.states.get(name="Approved")
    plan = migrations.plan_migration(machine, v2, mapping={"Needs rework": "Approved"},
                                     user=clerk)
    with pytest.raises(MappingInvalid) as refused:
        migrations.migrate(plan, user=clerk)
    assert ("'Needs rework' cannot be mapped to 'Approved': Stepping into 'Approved' needs the "
            "permission 'flowr_demo.approve_order'.") in str(refused.value)
    assert list(refused.value.errors) == [instance.state_key]
    with pytest.raises(MappingInvalid, match="There is no state 'Nowhere'"):
        migrations.plan_migration(machine, v2, mapping={"needs-rework": "Nowhere"})
    plan = migrations.plan_migration(machine, v2, cancel=["Needs rework"], user=clerk)
    assert "needs the permission 'flowr.cancel_instance'" in plan.problems[instance.state_key]
    assert row_counts() == before
    assert _fresh(instance).version == v1
    # The same mapping is fine for a user holding the rule's permission.
    plan = migrations.plan_migration(machine, v2, mapping={"Needs rework": approved.key})
    assert not plan.problems and submitted.key != approved.key


def test_a_target_whose_rule_left_the_code_is_refused(renamed, monkeypatch):
    from flowr.rules import get_rule_set

    machine, v1, v2 = renamed
    _at(machine, "C", "E", version=v1)
    monkeypatch.delitem(get_rule_set("flowr_example").rules, "D")
    plan = migrations.plan_migration(machine, v2, mapping={"E": "D"})
    assert "'D' cannot hold instances" in list(plan.problems.values())[0]


# -- the 1,000 instances of the issue -------------------------------------------------------

def test_rename_then_migrate_1000_then_revert(renamed, admin_user):
    machine, v1, v2 = renamed
    instances = [_at(machine, "C", version=v1, task_state={"n": n}) for n in range(1000)]
    key = instances[0].state_key
    states = {i.pk: (_fresh(i).task_state_version, i.task_state) for i in instances}

    plan = migrations.plan_migration(machine, 2, mapping={"C": "C′"}, user=admin_user)
    migration = migrations.migrate(plan, user=admin_user, note="Rename")

    assert (migration.status, migration.migrated, migration.refused) == ("done", 1000, 0)
    assert not Instance.objects.filter(version=v1).exists()  # 0 stranded
    entries = HistoryEntry.objects.filter(kind=HistoryEntry.MIGRATE)
    assert entries.count() == 1000
    entry = entries.first()
    assert (entry.from_key, entry.to_key, entry.from_name, entry.to_name, entry.version,
            entry.user, entry.data["migration"]) == (key, key, "C", "C′", v2, admin_user,
                                                     migration.pk)
    for instance in instances:
        fresh = _fresh(instance)
        assert (fresh.version_id, fresh.state_name) == (v2.pk, "C′")
        assert engine.replay(fresh.history.all()) == engine.position_of(fresh)
        assert (fresh.task_state_version, fresh.task_state) == states[instance.pk]

    migration = migrations.revert(migration, user=admin_user)

    assert (migration.revert_status, migration.reverted, migration.kept) == ("done", 1000, 0)
    for instance in instances:
        fresh = _fresh(instance)
        assert (fresh.version_id, fresh.state_key, fresh.state_name) == (v1.pk, key, "C")
        assert engine.replay(fresh.history.all()) == engine.position_of(fresh)
        assert (fresh.task_state_version, fresh.task_state) == states[instance.pk]
    assert HistoryEntry.objects.filter(kind=HistoryEntry.MIGRATE).count() == 2000
    with pytest.raises(MigrationError, match="already been reverted"):
        migrations.revert(migration)


def test_an_instance_stepped_after_migrating_is_left_alone_and_reported(renamed, admin_user):
    machine, v1, v2 = renamed
    instances = [_at(machine, "C", version=v1) for _ in range(3)]
    migration = migrations.migrate(migrations.plan_migration(machine, v2), user=admin_user)
    stepped = _fresh(instances[1])
    stepped.step(to="D")
    back, changed = migrations.revert_preview(migration)
    assert (back, [item.instance_id for item in changed]) == (2, [stepped.pk])

    migration = migrations.revert(migration, user=admin_user)

    assert (migration.reverted, migration.kept) == (2, 1)
    kept = migration.items.get(status=Item.KEPT)
    assert kept.instance_id == stepped.pk
    assert kept.reason == (f"Instance {stepped.label} changed since the migration: it is now "
                           f"at 'D' (finished); it was left alone.")
    fresh = _fresh(stepped)
    assert (fresh.version, fresh.state_name, fresh.status) == (v2, "D", Instance.FINISHED)
    assert all(_replays(i) for i in instances)
    assert {_fresh(i).version for i in instances if i.pk != stepped.pk} == {v1}


# -- outcomes: enter, stay, cancel, leave, refused ---------------------------------------------

def test_cancel_leave_and_enter_with_options_then_revert(replaced, admin_user):
    machine, v1, v2 = replaced
    builder.update_state(machine.states.get(name="E2"),
                         options={"due_after": 3600, "assign": "starter"})
    v3 = machine.publish(admin_user)
    at_e = _at(machine, "C", "E", version=v1, user=admin_user)
    at_a = _at(machine, version=v1)
    at_e_cancel = _at(machine, "C", "E2", version=v2)
    suspended = _at(machine, version=v1)
    Instance.objects.filter(pk=suspended.pk).update(status=Instance.SUSPENDED)

    plan = migrations.plan_migration(
        machine, v3, instances=Instance.objects.all(), leave=["A"],
        mapping={"E": "E2", "E2": migrations.CANCEL})
    outcomes = {i.pk: o for i, o in plan.outcomes()}
    assert outcomes[suspended.pk].reason == ("It is suspended; resume it first; only active "
                                             "instances are migrated.")
    migration = migrations.migrate(plan, user=admin_user)

    assert (migration.migrated, migration.cancelled, migration.left, migration.refused) == (
        1, 1, 1, 1)
    entered = _fresh(at_e)
    assert (entered.version, entered.state_name, entered.assignee) == (v3, "E2", admin_user)
    assert entered.due_at is not None and entered.state_entered_at > at_e.state_entered_at
    assert _fresh(at_a).version == v1 and _fresh(at_a).step_count == at_a.step_count
    cancelled = _fresh(at_e_cancel)
    assert (cancelled.status, cancelled.version) == (Instance.CANCELLED, v2)
    assert _replays(at_e) and _replays(at_e_cancel)

    migrations.revert(migration, user=admin_user)
    back = _fresh(at_e)
    assert (back.version, back.state_name, back.assignee, back.due_at) == (
        v1, "E", None, None)
    assert back.state_entered_at == at_e.state_entered_at
    assert _fresh(at_e_cancel).status == Instance.ACTIVE
    assert _replays(at_e) and _replays(at_e_cancel)


def test_an_instance_moved_after_confirming_is_refused_at_run_time(renamed, admin_user):
    machine, v1, v2 = renamed
    first, second = _at(machine, "C", version=v1), _at(machine, "C", version=v1)
    plan = migrations.plan_migration(machine, v2)
    with override_settings(TASKS={"default": {"BACKEND":
                                              "django_tasks.backends.dummy.DummyBackend"}}):
        migration = migrations.migrate(plan, user=admin_user, background=True)
    assert migration.status == "queued" and migration.task_id
    second.step(to="D")  # between the confirmation and the run
    migration = runner.run(migration.pk)
    assert (migration.status, migration.migrated, migration.refused) == ("done", 1, 1)
    item = migration.items.get(instance=second)
    assert item.status == Item.REFUSED and "has already moved on" in item.reason
    assert _fresh(first).version == v2 and _fresh(second).version == v1


# -- failure midway, continue, tasks -------------------------------------------------------------

def test_a_failure_midway_leaves_each_instance_migrated_or_untouched(renamed, admin_user,
                                                                     monkeypatch):
    machine, v1, v2 = renamed
    instances = [_at(machine, "C", version=v1) for _ in range(25)]
    real_record, calls = engine.record, []

    def failing_record(*args, **kwargs):
        calls.append(1)
        if len(calls) == 15:
            raise RuntimeError("database went away")
        return real_record(*args, **kwargs)

    monkeypatch.setattr(engine, "record", failing_record)
    plan = migrations.plan_migration(machine, v2)
    migration = runner.record_plan(plan, user=admin_user)
    migration = runner.run(migration.pk, batch_size=10)

    assert (migration.status, migration.migrated, migration.processed) == ("failed", 10, 10)
    assert "RuntimeError: database went away" in migration.error
    statuses = dict(migration.items.values_list("instance_id", "status"))
    for instance in instances:
        fresh = _fresh(instance)
        migrated = statuses[instance.pk] == Item.MIGRATED
        assert fresh.version == (v2 if migrated else v1)
        assert statuses[instance.pk] in (Item.MIGRATED, Item.PENDING)
        assert fresh.history.filter(kind=HistoryEntry.MIGRATE).count() == int(migrated)
        assert _replays(instance)

    monkeypatch.setattr(engine, "record", real_record)
    migration = migrations.resume(migration)
    assert (migration.status, migration.migrated) == ("done", 25)
    assert not Instance.objects.filter(version=v1).exists()


def test_background_task_runs_with_the_immediate_backend(renamed, admin_user):
    machine, v1, v2 = renamed
    instance = _at(machine, "C", version=v1)
    with override_settings(TASKS=IMMEDIATE):
        migration = migrations.migrate(migrations.plan_migration(machine, v2),
                                       user=admin_user, background=True)
        assert (migration.status, migration.migrated) == ("done", 1)
        migration = migrations.revert(migration, user=admin_user, background=True)
    assert (migration.revert_status, migration.reverted) == ("done", 1)
    assert _fresh(instance).version == v1


def test_an_empty_selection_is_recorded_as_done(renamed):
    machine, v1, v2 = renamed
    migration = migrations.migrate(migrations.plan_migration(machine, v2), background=True)
    assert (migration.status, migration.total) == ("done", 0)
    with pytest.raises(MigrationError, match="moved no instance"):
        migrations.revert(migration)


@pytest.mark.django_db(transaction=True)
def test_a_real_db_worker_runs_the_migration(postgres_only, example_machine, admin_user):
    machine = example_machine
    v1 = machine.latest_version()
    builder.update_state(machine.states.get(name="C"), name="C′")
    v2 = machine.publish(admin_user)
    instances = [_at(machine, "C", version=v1) for _ in range(30)]
    migration = migrations.migrate(migrations.plan_migration(machine, v2), user=admin_user,
                                   background=True)
    assert migration.status == "queued"
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(
        [sys.executable, "manage.py", "db_worker", "--batch", "--no-startup-delay",
         "--no-reload"], cwd=root, env={**os.environ, "DATABASE_URL": url},
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    migration.refresh_from_db()
    assert (migration.status, migration.migrated) == ("done", 30)
    assert all(_fresh(i).version == v2 for i in instances)


@pytest.mark.redis
def test_task_state_in_redis_is_untouched_by_migrating_and_reverting(renamed, redis_url,
                                                                      settings, admin_user):
    import redis

    from tests.conftest import use_redis

    use_redis(settings)
    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    try:
        machine, v1, v2 = renamed
        instance = _at(machine, "C", version=v1, task_state={"order": 7})
        fresh = _fresh(instance)
        keys = sorted(conn.keys())
        migration = migrations.migrate(migrations.plan_migration(machine, v2), user=admin_user)
        migrations.revert(migration, user=admin_user)
        after = _fresh(instance)
        assert after.task_state_version == fresh.task_state_version
        assert after.task_state == {"order": 7} and sorted(conn.keys()) == keys
        assert _replays(instance)
    finally:
        conn.flushdb()
