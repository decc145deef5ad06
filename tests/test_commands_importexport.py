"""export_machines and import_machines: same format, same validation, --dry-run, limits."""
import io
import json

import pytest
from django.core.management import CommandError, call_command
from reversion.models import Revision

from flowr.demo.setup import FIXTURE, demo_documents
from flowr.models import Machine

from .test_importexport import database_snapshot, doc_named, empty_database

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def write(tmp_path, docs, name="machines.json"):
    path = tmp_path / name
    path.write_text(json.dumps(docs) if not isinstance(docs, str) else docs, encoding="utf-8")
    return str(path)


def test_export_all_to_stdout_is_the_demo_fixture(demo_machines):
    out, _ = run("export_machines")
    assert json.loads(out) == demo_documents()
    assert out == FIXTURE.read_text(encoding="utf-8")


def test_export_chosen_machines_to_a_file(demo_machines, tmp_path):
    path = tmp_path / "out.json"
    uuid = str(demo_machines["support"].uuid)
    _, err = run("export_machines", "Order approval", uuid, "--output", str(path))
    assert err.strip() == f"Exported 2 machine(s) to {path}."
    assert [d["name"] for d in json.loads(path.read_text())] == ["Order approval",
                                                                "Support ticket"]


def test_export_filters_by_rule_set(demo_machines):
    out, _ = run("export_machines", "--rule-set", "support")
    assert [d["name"] for d in json.loads(out)] == ["Support ticket"]


def test_export_of_an_unknown_machine_fails_clearly(demo_machines):
    with pytest.raises(CommandError, match="No machine named or with uuid 'Nope'"):
        run("export_machines", "Nope")


def test_import_into_an_empty_database_round_trips(demo_machines, tmp_path, admin_user):
    out, _ = run("export_machines")
    path = write(tmp_path, out)
    empty_database()
    out, _ = run("import_machines", path, "--user", "admin")
    assert out.splitlines() == ["Row 1: created machine 'Flowr example'.",
                                "Row 2: created machine 'Order approval'.",
                                "Row 3: created machine 'Support ticket'.",
                                "Row 4: created machine 'Vacation request'.",
                                "Imported: 4 new, 0 updated, 0 unchanged."]
    again, _ = run("export_machines")
    assert json.loads(again) == demo_documents()
    assert Revision.objects.filter(user=admin_user,
                                   comment="Created by import from machines.json.").count() == 4


def test_import_updates_existing_machine_as_a_revision(demo_machines, tmp_path):
    doc = doc_named("Order approval")
    doc["description"] = "From the command line."
    revisions = Revision.objects.count()
    out, _ = run("import_machines", write(tmp_path, [doc]))
    assert out.splitlines() == ["Row 1: updated machine 'Order approval'.",
                                "Imported: 0 new, 1 updated, 0 unchanged."]
    assert Machine.objects.get(name="Order approval").description == "From the command line."
    assert Machine.objects.count() == 4
    assert Revision.objects.count() == revisions + 1
    assert Revision.objects.latest("pk").comment == "Updated by import from machines.json."


def test_dry_run_writes_nothing(demo_machines, tmp_path):
    doc = doc_named("Order approval")
    doc["description"] = "Not yet."
    before = database_snapshot()
    out, _ = run("import_machines", write(tmp_path, [doc]), "--dry-run")
    assert out.splitlines() == ["Row 1: would update machine 'Order approval'.",
                                "Dry run: 0 new, 1 updated, 0 unchanged; nothing was written."]
    assert database_snapshot() == before


def test_invalid_row_fails_with_messages_and_writes_nothing(demo_machines, tmp_path):
    good = doc_named("Support ticket")
    good["description"] = "would change"
    bad = doc_named("Order approval")
    bad["graph"]["transitions"].append(["approved", "ghost"])
    before = database_snapshot()
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match=r"Nothing was imported: 1 problem\(s\) in 1 row\(s\)"):
        call_command("import_machines", write(tmp_path, [good, bad]), stdout=out, stderr=err)
    assert err.getvalue().strip() == (
        "Row 2: Machine 'Order approval': A transition refers to unknown state 'ghost'.")
    assert database_snapshot() == before


@pytest.mark.parametrize("content, expected", [
    ("[1, 2", "Nothing was imported: The file is not valid JSON"),
    ('{"uuid": "x"}', "it holds an object"),
    ("[" * 10_000 + "]" * 10_000, "nests values too deeply"),
])
def test_unreadable_file_fails_clearly(db, tmp_path, content, expected):
    with pytest.raises(CommandError, match=expected):
        run("import_machines", write(tmp_path, content))


def test_file_above_the_limit_is_refused_before_reading(db, tmp_path, settings):
    settings.FLOWR_IMPORT_MAX_BYTES = 100
    path = write(tmp_path, "[" + " " * 500 + "]")
    with pytest.raises(CommandError, match=r"The file is 502 bytes; imports are limited to "
                                           r"100 bytes \(setting FLOWR_IMPORT_MAX_BYTES\)"):
        run("import_machines", path)


def test_missing_file_and_unknown_user_fail_clearly(db, tmp_path):
    with pytest.raises(CommandError, match="Cannot read .*nope.json: No such file"):
        run("import_machines", str(tmp_path / "nope.json"))
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        run("import_machines", str(FIXTURE), "--user", "ghost")


def test_every_argument_has_help():
    from flowr.management.commands import export_machines, import_machines

    for module in (export_machines, import_machines):
        parser = module.Command().create_parser("manage.py", module.__name__)
        for action in parser._actions:
            assert action.help, (module.__name__, action.dest)


def test_importing_unchanged_machines_writes_no_revision(demo_machines):
    revisions = Revision.objects.count()
    before = database_snapshot()
    out, _ = run("import_machines", str(FIXTURE))
    assert out.splitlines() == ["Row 1: left unchanged machine 'Flowr example'.",
                                "Row 2: left unchanged machine 'Order approval'.",
                                "Row 3: left unchanged machine 'Support ticket'.",
                                "Row 4: left unchanged machine 'Vacation request'.",
                                "Imported: 0 new, 0 updated, 4 unchanged."]
    assert Revision.objects.count() == revisions
    assert database_snapshot() == before
