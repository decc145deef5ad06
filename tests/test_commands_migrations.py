"""manage.py migrate_instances and revert_migration: counts per state, outcome, dry run,
clear errors (non-zero exit, nothing written) for an invalid mapping."""
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from flowr import builder
from flowr.models import HistoryEntry, Instance, VersionMigration
from tests.test_migrations import row_counts

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def _run(*args):
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def pruned(example_machine):
    """v1: A→C→(D|E), E→A with two instances at E and one at C; v2: E pruned, C renamed."""
    machine = example_machine
    for path in (["C", "E"], ["C", "E"], ["C"]):
        instance = machine.start()
        for name in path:
            instance.step(to=name)
    builder.prune_state(machine.states.get(name="E"))
    builder.update_state(machine.states.get(name="C"), name="Check")
    machine.publish()
    return machine


def test_dry_run_prints_counts_and_writes_nothing(pruned):
    before = row_counts()
    out = _run("migrate_instances", "--machine", "Example", "--to", "2", "--map", "E=A",
               "--dry-run")
    assert row_counts() == before
    e_key = Instance.objects.filter(state_name="E").first().state_key
    assert "Machine 'Example': 3 instance(s) to version 2." in out
    assert f"  E [{e_key}] on v1: 2 → 'A' (mapped)" in out
    assert "  C [" in out and "on v1: 1 → 'Check' (same state)" in out
    assert "Totals: 3 to migrate, 0 to cancel, 0 left, 0 refused." in out
    assert out.strip().endswith("Dry run: nothing was written.")


def test_migrate_then_revert_by_command(pruned, admin_user):
    out = _run("migrate_instances", "--machine", str(pruned.uuid), "--to", "2", "--from", "1",
               "--cancel", "E", "--user", "admin", "--note", "E retired")
    migration = VersionMigration.objects.get()
    assert f"Migration #{migration.pk} done: 1 migrated, 2 cancelled, 0 left, 0 refused." in out
    assert migration.created_by == admin_user and migration.note == "E retired"
    assert Instance.objects.filter(status=Instance.CANCELLED).count() == 2
    out = _run("revert_migration", str(migration.pk), "--dry-run")
    assert "3 instance(s) would go back, 0 changed since." in out
    out = _run("revert_migration", str(migration.pk))
    assert "Reverted: 3 went back, 0 changed since and were left alone." in out
    assert not Instance.objects.exclude(status=Instance.ACTIVE).exists()
    assert HistoryEntry.objects.filter(kind=HistoryEntry.MIGRATE).count() == 6
    with pytest.raises(CommandError, match="already been reverted"):
        _run("revert_migration", str(migration.pk))


@pytest.mark.parametrize("args, message", [
    ([], "choose where its 2 instances go"),
    (["--map", "E=Nowhere"], "There is no state 'Nowhere'"),
    (["--map", "Z=A"], "There is no state 'Z' (by key or name) in the source versions"),
    (["--map", "E"], "--map takes OLD_STATE=NEW_STATE"),
    (["--map", "E=A", "--leave", "E"], "given two different outcomes"),
    (["--to", "9"], "has no version 9; its versions are 1, 2"),
])
def test_an_invalid_mapping_exits_non_zero_and_writes_nothing(pruned, args, message):
    before = row_counts()
    base = ["migrate_instances", "--machine", "Example"]
    with pytest.raises(CommandError) as error:
        _run(*base, *(args if "--to" in args else ["--to", "2", *args]))
    assert message in str(error.value)
    assert row_counts() == before


def test_unknown_machine_user_and_migration_are_clear_errors(pruned):
    with pytest.raises(CommandError, match="No machine named or with uuid 'Nope'"):
        _run("migrate_instances", "--machine", "Nope", "--to", "2")
    with pytest.raises(CommandError, match="No user 'ghost'"):
        _run("migrate_instances", "--machine", "Example", "--to", "2", "--map", "E=A",
             "--user", "ghost")
    with pytest.raises(CommandError, match="No migration 'x1'"):
        _run("revert_migration", "x1")
