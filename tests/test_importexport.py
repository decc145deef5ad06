"""Machines as JSON: round trips, every validation error, limits, revisions, fuzzing, admin."""
import copy
import json
import os
import sys
import time
import uuid

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reversion.models import Revision, Version

from flowr import interchange
from flowr.demo.setup import demo_documents
from flowr.models import HistoryEntry, Instance, Machine, State, TaskStateRecord, Transition
from flowr.resources import MachineJSON, MachineResource
from tests.factories import chain_document, register_chain_rules

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


# -- helpers ------------------------------------------------------------------------

def export_documents(queryset=None):
    """Export through the resource and the JSON format, as the admin does; parse back."""
    text = MachineJSON().export_data(MachineResource().export(queryset))
    return json.loads(text)


def import_text(text, dry_run=False, user=None):
    """Import file text through the resource; returns the import-export Result."""
    dataset = MachineJSON().create_dataset(text)
    return MachineResource().import_data(dataset, dry_run=dry_run, user=user,
                                         file_name="machines.json")


def import_docs(docs, **kwargs):
    return import_text(json.dumps(docs), **kwargs)


def database_snapshot():
    """Everything an import could write, to prove that nothing was."""
    return (
        list(Machine.objects.order_by("pk").values()),
        list(State.objects.order_by("pk").values()),
        list(Transition.objects.order_by("pk").values()),
        Revision.objects.count(), Version.objects.count(),
    )


def row_messages(result):
    return {row.number: row.error.messages for row in result.invalid_rows}


def empty_database():
    HistoryEntry.objects.all().delete()
    Instance.objects.all().delete()
    TaskStateRecord.objects.all().delete()
    Machine.objects.all().delete()


def doc_named(name):
    return copy.deepcopy(next(d for d in demo_documents() if d["name"] == name))


def states_of(doc):
    return {s["key"]: s for s in doc["graph"]["states"]}


@pytest.fixture
def chain_rules(db):
    register_chain_rules()


# -- round trips --------------------------------------------------------------------

def test_every_demo_machine_round_trips_into_an_empty_database(demo_machines):
    exported = export_documents()
    assert sorted(d["name"] for d in exported) == ["Flowr example", "Order approval",
                                                   "Support ticket", "Vacation request"]
    empty_database()
    result = import_docs(exported)
    assert not result.has_errors() and not result.has_validation_errors()
    assert result.totals["new"] == 4
    assert export_documents() == exported
    approved = State.objects.get(machine__name="Order approval", name="Approved")
    assert approved.settings == {"max_amount": 5000}
    assert Machine.objects.get(name="Order approval").root_state.name == "Draft"


def test_demo_fixture_is_the_export_of_the_demo_machines(demo_machines):
    assert export_documents() == demo_documents()


def test_500_state_machine_round_trips(chain_rules):
    doc = chain_document(500, "Chain 500")
    machine, created = interchange.apply_document(doc)
    assert created and machine.states.count() == 500
    exported = export_documents(Machine.objects.filter(pk=machine.pk))
    assert exported == [doc]
    empty_database()
    result = import_docs(exported)
    assert result.totals["new"] == 1 and not result.has_validation_errors()
    assert export_documents() == [doc]


def test_importing_an_existing_machine_updates_it_as_one_revision(demo_machines, admin_user):
    doc = doc_named("Order approval")
    doc["description"] = "Now with express shipping."
    states_of(doc)["approved"]["settings"] = {"max_amount": 9000}
    states_of(doc)["submitted"]["name"] = "Awaiting review"
    machine = demo_machines["orders"]
    state_ids = dict(machine.states.values_list("key", "id"))
    revisions = Revision.objects.count()
    result = import_docs([doc], user=admin_user)
    assert result.totals == {**result.totals, "new": 0, "update": 1}
    assert Machine.objects.count() == 4
    machine.refresh_from_db()
    assert machine.description == "Now with express shipping."
    assert dict(machine.states.values_list("key", "id")) == state_ids  # keys and rows kept
    assert machine.states.get(key="submitted").name == "Awaiting review"
    assert Revision.objects.count() == revisions + 1
    revision = Revision.objects.latest("pk")
    assert revision.user == admin_user
    assert revision.comment == "Updated by import from machines.json."
    versions = Version.objects.get_for_object(machine)
    assert versions.first().revision == revision
    assert export_documents(Machine.objects.filter(pk=machine.pk)) == [doc]


def test_update_can_swap_state_names_add_and_remove_states(demo_machines):
    doc = doc_named("Support ticket")
    states = states_of(doc)
    states["open"]["name"], states["resolved"]["name"] = "Resolved", "Open"
    doc["graph"]["states"] = [s for s in doc["graph"]["states"] if s["key"] != "closed"]
    doc["graph"]["transitions"].remove(["resolved", "closed"])
    doc["graph"]["states"].append({"key": "done", "name": "Done", "rule": "support.Closed",
                                   "settings": {}})
    doc["graph"]["transitions"].append(["resolved", "done"])
    result = import_docs([doc])
    assert result.totals["update"] == 1, row_messages(result)
    assert export_documents(Machine.objects.filter(name="Support ticket")) == [doc]


def test_dry_run_previews_without_writing(demo_machines):
    doc = doc_named("Order approval")
    doc["description"] = "changed"
    new = chain_free_copy(doc_named("Flowr example"), "Example copy")
    before = database_snapshot()
    result = import_docs([doc, new], dry_run=True)
    assert [row.import_type for row in result.rows] == ["update", "new"]
    assert "6 states, 6 transitions" in result.rows[0].diff[-1]
    assert database_snapshot() == before


def chain_free_copy(doc, name):
    doc = copy.deepcopy(doc)
    doc["uuid"], doc["name"] = str(uuid.uuid4()), name
    return doc


def test_import_and_export_query_counts_do_not_grow_with_states(chain_rules):
    counts = {}
    for size in (50, 500):
        doc = chain_document(size, f"Chain {size}")
        with CaptureQueriesContext(connection) as imported:
            result = import_docs([doc])
        assert result.totals["new"] == 1
        with CaptureQueriesContext(connection) as exported:
            export_documents(Machine.objects.filter(name=f"Chain {size}"))
        counts[size] = (len(imported), len(exported))
    assert counts[500][1] == counts[50][1] <= 5
    # Bulk writes: SQLite batches keep a 10× bigger graph within a few extra queries.
    assert counts[500][0] <= counts[50][0] + 12, counts


# -- validation: one test per error; nothing at all is written -------------------------

def _add_state(doc, key, name, rule, parent=None, settings=None):
    doc["graph"]["states"].append({"key": key, "name": name, "rule": rule,
                                   "settings": settings or {}})
    if parent:
        doc["graph"]["transitions"].append([parent, key])


def _missing_graph(doc):
    del doc["graph"]


def _missing_state_name(doc):
    del doc["graph"]["states"][1]["name"]


def _name_is_a_number(doc):
    doc["description"] = 5


def _states_not_a_list(doc):
    doc["graph"]["states"] = "draft, submitted"


def _transition_not_a_pair(doc):
    doc["graph"]["transitions"].append(["draft"])


def _unknown_rule_set(doc):
    doc["rule_set"] = "antigravity"


def _unknown_rule(doc):
    states_of(doc)["shipped"]["rule"] = "os.system"


def _child_not_allowed(doc):
    doc["graph"]["transitions"].append(["approved", "draft"])


def _duplicate_child_rules(doc):
    doc["graph"]["states"] = [s for s in doc["graph"]["states"] if s["key"] != "rejected"]
    doc["graph"]["transitions"].remove(["submitted", "rejected"])
    _add_state(doc, "approved-2", "Approved again", "orders.Approved", "submitted",
               {"max_amount": 1})


def _unreachable_state(doc):
    _add_state(doc, "lonely", "Lonely", "orders.Shipped")


def _missing_root(doc):
    doc["graph"]["root"] = "nowhere"


def _root_with_wrong_rule(doc):
    doc["graph"]["root"] = "submitted"


def _duplicate_keys(doc):
    states_of(doc)["shipped"]["key"] = "approved"


def _duplicate_names(doc):
    states_of(doc)["shipped"]["name"] = "Approved"


def _transition_to_unknown_state(doc):
    doc["graph"]["transitions"].append(["approved", "ghost"])


def _bad_settings(doc):
    states_of(doc)["approved"]["settings"] = {"max_amount": -5}


def _settings_on_a_rule_without_form(doc):
    states_of(doc)["draft"]["settings"] = {"colour": "red"}


def _unsupported_format(doc):
    doc["format"] = 2


def _bad_uuid(doc):
    doc["uuid"] = "not-a-uuid"


def _unknown_field(doc):
    doc["graf"] = {}


def _bad_state_key(doc):
    states_of(doc)["shipped"]["key"] = "../../etc"


def _name_of_another_machine(doc):
    doc["name"] = "Support ticket"


VALIDATION_CASES = [
    ("missing field", _missing_graph, "has no 'graph' field"),
    ("missing state field", _missing_state_name, "State #2 has no 'name' field"),
    ("wrong type", _name_is_a_number, "Its description must be a text, not a number"),
    ("wrong type of states", _states_not_a_list, "Its graph states must be a list, not a text"),
    ("transition not a pair", _transition_not_a_pair,
     "Transition #7 must be a pair of state keys [parent, child]"),
    ("unknown rule set", _unknown_rule_set, "Its rule set 'antigravity' is not registered"),
    ("unknown rule", _unknown_rule,
     "'Shipped' (os.system) uses rule os.system, which is not registered in this rule set"),
    ("child not allowed", _child_not_allowed,
     "Rule orders.Approved of state 'Approved' does not allow a child of rule orders.Draft"),
    ("too many children", None, "allows at most 1 (multiple_paths is off)"),
    ("duplicate child rules", _duplicate_child_rules,
     "already has a child of rule orders.Approved: 'Approved'; two children of one state "
     "never share a rule"),
    ("unreachable", _unreachable_state,
     "State 'Lonely' (orders.Shipped) is not reachable from the root"),
    ("missing root", _missing_root, "The graph has no root state"),
    ("root with wrong rule", _root_with_wrong_rule,
     "Root state 'Submitted' (orders.Submitted) must use the root rule orders.Draft"),
    ("duplicate keys", _duplicate_keys, "Two states have the key 'approved'"),
    ("duplicate names", _duplicate_names, "Two states have the name 'Approved'"),
    ("transition to unknown state", _transition_to_unknown_state,
     "A transition refers to unknown state 'ghost'"),
    ("settings fail the form", _bad_settings,
     "State 'Approved': Settings for rule orders.Approved are invalid: max_amount: Ensure this "
     "value is greater than or equal to 0."),
    ("settings for a rule without form", _settings_on_a_rule_without_form,
     "State 'Draft': Rule orders.Draft takes no settings"),
    ("unsupported format", _unsupported_format,
     "Its format version 2 is not supported; this site reads format 1"),
    ("invalid uuid", _bad_uuid, "Its uuid 'not-a-uuid' is not a valid UUID"),
    ("unknown field", _unknown_field, "It has unknown field(s) 'graf'"),
    ("bad state key", _bad_state_key, "has the key '../../etc'; a key is 1 to 64 letters"),
    ("name of another machine", _name_of_another_machine,
     "Another machine named 'Support ticket' already exists on this site"),
]


def _too_many_children_file():
    doc = doc_named("Flowr example")
    _add_state(doc, "b", "B", "flowr_example.B", "a")
    return doc, "Machine 'Flowr example'"


@pytest.mark.parametrize("case, mutate, expected", VALIDATION_CASES,
                         ids=[c[0] for c in VALIDATION_CASES])
def test_invalid_row_is_reported_and_nothing_is_written(demo_machines, case, mutate, expected):
    if mutate is None:
        bad, name = _too_many_children_file()
    else:
        bad, name = doc_named("Order approval"), "Machine 'Order approval'"
        mutate(bad)
    if case == "name of another machine":
        name = "Machine 'Support ticket'"
    good_update = doc_named("Support ticket")
    good_update["description"] = "would change"
    good_new = chain_free_copy(doc_named("Flowr example"), "Brand new")
    before = database_snapshot()
    result = import_docs([good_update, bad, good_new])
    assert row_messages(result).keys() == {2}, row_messages(result)
    messages = row_messages(result)[2]
    assert any(expected in m for m in messages), messages
    assert all(m.startswith(name) for m in messages), messages
    assert not result.has_errors()
    assert database_snapshot() == before
    # The same document alone, and validate_document directly, say the same.
    assert import_docs([bad]).invalid_rows[0].error.messages == messages
    assert interchange.validate_document(bad, number=2) == messages


def test_rule_keys_from_data_are_never_imported(demo_machines):
    doc = doc_named("Order approval")
    doc["rule_set"] = "antigravity"
    for state in doc["graph"]["states"]:
        state["rule"] = "antigravity.Fly"
    assert "antigravity" not in sys.modules
    result = import_docs([doc])
    assert result.has_validation_errors()
    assert "antigravity" not in sys.modules


def test_too_many_states_is_refused(demo_machines, settings):
    settings.FLOWR_IMPORT_MAX_STATES = 5
    before = database_snapshot()
    result = import_docs([doc_named("Flowr example"), doc_named("Order approval")])
    assert row_messages(result) == {2: [
        "Machine 'Order approval': It has 6 states; imports allow at most 5 states per machine "
        "(setting FLOWR_IMPORT_MAX_STATES)."]}
    assert database_snapshot() == before


def test_default_limits_live_in_config():
    from flowr.config import DEFAULTS

    assert DEFAULTS["FLOWR_IMPORT_MAX_STATES"] >= 500
    assert DEFAULTS["FLOWR_IMPORT_MAX_BYTES"] >= 1024 * 1024


def test_same_machine_twice_in_one_file_is_refused(demo_machines):
    doc = doc_named("Flowr example")
    twin = copy.deepcopy(doc)
    twin["name"] = "Twin"
    before = database_snapshot()
    result = import_docs([doc, twin])
    assert row_messages(result) == {2: [
        "Machine 'Twin': row 1 has the same uuid; a file may hold each machine only once."]}
    assert database_snapshot() == before


def test_list_of_numbers_reports_each_row(demo_machines):
    before = database_snapshot()
    result = import_text("[1, 2.5, true]")
    assert row_messages(result) == {
        1: ["The machine in row 1 is a number, not a machine (an object with uuid, name, "
            "description, rule_set, format, graph)."],
        2: ["The machine in row 2 is a number, not a machine (an object with uuid, name, "
            "description, rule_set, format, graph)."],
        3: ["The machine in row 3 is true/false, not a machine (an object with uuid, name, "
            "description, rule_set, format, graph)."]}
    mixed = json.dumps([doc_named("Flowr example"), 7])
    assert row_messages(import_text(mixed)).keys() == {2}
    assert database_snapshot() == before


@pytest.mark.parametrize("text, expected", [
    ('[{"name": ', "The file is not valid JSON (line 1, column 11: Expecting value)."),
    ('{"name": "x"}', "The file must hold a JSON list of machines (as exported by Flowr); "
                      "it holds an object."),
    ("[]", "The file holds an empty list: there is no machine to import."),
    ("[NaN]", "The file is not valid JSON: NaN is not a valid JSON number."),
    ("[" * 10_000 + "]" * 10_000, "The file nests values too deeply to be read"),
    ("[" * 40 + "]" * 40, "The file nests values more than 32 levels deep"),
    ('["a\\u0000b"]', "The file contains a NUL character"),
    ('["\\ud800"]', "The file contains an invalid character (a lone UTF-16 surrogate"),
    (b'[{"name": "\xff"}]', "The file is not UTF-8 text (byte 12 is invalid)"),
], ids=["malformed", "object", "empty", "nan", "deep-10000", "deep-40", "nul", "surrogate",
        "not-utf8"])
def test_unreadable_files_give_a_clear_message(text, expected):
    with pytest.raises(interchange.DocumentError) as caught:
        MachineJSON().create_dataset(text)
    assert str(caught.value).startswith(expected)


def test_file_above_the_byte_limit_is_refused_before_parsing(settings, monkeypatch):
    settings.FLOWR_IMPORT_MAX_BYTES = 1000
    monkeypatch.setattr(json, "loads", lambda *a, **k: pytest.fail("parsed"))
    with pytest.raises(interchange.DocumentError) as caught:
        MachineJSON().create_dataset(b"[" + b" " * 2000 + b"]")
    assert str(caught.value) == (
        "The file is 2.0 KB; imports are limited to 1000 bytes (setting "
        "FLOWR_IMPORT_MAX_BYTES). Split it into smaller files.")


# -- fuzzing ------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4),
    max_leaves=20)
PATHS = st.lists(st.sampled_from(["graph", "states", "transitions", 0, 1, 2, "settings",
                                  "name", "key", "rule", "root", "uuid", "format",
                                  "rule_set"]), min_size=1, max_size=4)


def _mutate(doc, path, value):
    """Replace whatever `path` leads to in doc (as far as it leads) by `value`."""
    target = doc
    for step in path[:-1]:
        if isinstance(target, dict) and step in target:
            target = target[step]
        elif isinstance(target, list) and isinstance(step, int) and step < len(target):
            target = target[step]
        else:
            break
    last = path[-1]
    if isinstance(target, dict) and isinstance(last, str):
        target[last] = value
    elif isinstance(target, list) and isinstance(last, int) and last < len(target):
        target[last] = value
    return doc


def _assert_import_is_all_or_nothing(text):
    before = database_snapshot()
    try:
        dataset = MachineJSON().create_dataset(text)
    except interchange.DocumentError:
        assert database_snapshot() == before
        return
    result = MachineResource().import_data(dataset, dry_run=False)
    assert not result.has_errors(), [e.error for r in result.rows for e in r.errors]
    if result.has_validation_errors():
        assert database_snapshot() == before
        for row in result.invalid_rows:
            assert row.error.messages and all(isinstance(m, str) for m in row.error.messages)
    else:
        docs = json.loads(text)
        imported = export_documents(Machine.objects.filter(uuid__in=[d["uuid"] for d in docs]))
        assert sorted(imported, key=lambda d: d["uuid"]) == sorted(
            (interchange_normal(d) for d in docs), key=lambda d: d["uuid"])


def interchange_normal(doc):
    """What a valid document looks like once exported again (description defaults to "")."""
    return {"description": "", **doc, "uuid": str(uuid.UUID(doc["uuid"]))}


FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@FUZZ
@given(value=JSON_VALUES)
def test_fuzz_random_json_never_crashes_or_writes(demo_machines, value):
    _assert_import_is_all_or_nothing(json.dumps(value))
    _assert_import_is_all_or_nothing(json.dumps([value, doc_named("Flowr example")]))


@FUZZ
@given(path=PATHS, value=JSON_VALUES, which=st.sampled_from(["Flowr example",
                                                             "Order approval",
                                                             "Support ticket"]))
def test_fuzz_mutated_documents_never_crash_or_partially_write(demo_machines, path, value,
                                                               which):
    doc = _mutate(doc_named(which), path, value)
    other = doc_named("Order approval" if which != "Order approval" else "Support ticket")
    other["description"] = "changed by fuzz"
    _assert_import_is_all_or_nothing(json.dumps([other, doc]))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(data=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_fuzz_raw_bytes_parse_or_give_a_clear_message(data):
    try:
        documents = interchange.parse(data)
    except interchange.DocumentError as exc:
        assert str(exc).startswith("The file ")
    else:
        assert isinstance(documents, list) and documents


@settings(max_examples=150, deadline=None, derandomize=True)
@given(value=JSON_VALUES)
def test_fuzz_validate_document_returns_messages(value):
    errors = interchange.validate_document(value)
    assert errors and all(isinstance(e, str) for e in errors)


# -- admin: export, import with preview, limits, permissions ---------------------------

def _upload(content, name="machines.json"):
    if isinstance(content, str):
        content = content.encode()
    return SimpleUploadedFile(name, content, content_type="application/json")


def _preview(client, content):
    return client.post(reverse("admin:flowr_machine_import"),
                       {"import_file": _upload(content), "format": "0", "resource": "0"})


def test_admin_export_action_downloads_selected_machines(staff_client, demo_machines):
    chosen = [demo_machines["orders"].pk, demo_machines["support"].pk]
    response = staff_client.post(reverse("admin:flowr_machine_changelist"),
                                 {"action": "export_machines_json", "_selected_action": chosen})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response["Content-Disposition"].startswith('attachment; filename="machines-')
    docs = json.loads(response.content)
    assert sorted(d["name"] for d in docs) == ["Order approval", "Support ticket"]


def test_admin_action_is_listed_with_its_label(staff_client, demo_machines):
    response = staff_client.get(reverse("admin:flowr_machine_changelist"))
    assert "Export selected machines as JSON" in response.content.decode()


def test_admin_list_export_offers_json_and_round_trips(staff_client, demo_machines):
    url = reverse("admin:flowr_machine_export")
    page = staff_client.get(url)
    assert page.status_code == 200 and "json" in page.content.decode().lower()
    response = staff_client.post(url, {"format": "0", "resource": "0"})
    assert response.status_code == 200
    assert json.loads(response.content) == demo_documents()


def test_admin_single_machine_export(staff_client, demo_machines):
    machine = demo_machines["orders"]
    response = staff_client.get(reverse("admin:flowr_machine_export_json", args=[machine.pk]))
    assert response["Content-Disposition"] == 'attachment; filename="order-approval.json"'
    assert json.loads(response.content) == [doc_named("Order approval")]


def test_admin_import_preview_then_confirm(staff_client, admin_user, demo_machines):
    new = chain_free_copy(doc_named("Flowr example"), "Imported example")
    update = doc_named("Order approval")
    update["description"] = "Updated through the admin."
    before = database_snapshot()
    response = _preview(staff_client, json.dumps([new, update]))
    html = response.content.decode()
    assert response.status_code == 200 and "Confirm import" in html
    assert "4 states, 4 transitions" in html and "Imported example" in html
    assert database_snapshot() == before
    confirm = response.context["confirm_form"]
    response = staff_client.post(reverse("admin:flowr_machine_process_import"),
                                 {**confirm.initial}, follow=True)
    messages = [str(m) for m in response.context["messages"]]
    assert messages == ["Import finished: 1 new: Imported example; 1 updated: Order approval."]
    assert Machine.objects.get(name="Imported example").states.count() == 4
    assert Machine.objects.get(name="Order approval").description == "Updated through the admin."
    revision = Revision.objects.latest("pk")
    assert revision.user == admin_user


def test_admin_import_shows_row_errors_without_traceback(staff_client, demo_machines):
    bad = doc_named("Order approval")
    _bad_settings(bad)
    before = database_snapshot()
    response = _preview(staff_client, json.dumps([doc_named("Flowr example"), bad]))
    html = response.content.decode()
    assert "1 machine cannot be imported; nothing was imported" in html
    assert "Machine &#x27;Order approval&#x27;: State &#x27;Approved&#x27;" in html
    assert "Traceback" not in html and "Confirm import" not in html
    assert "6 states, 6 transitions" in html  # the graph cell is a summary, not the JSON
    assert database_snapshot() == before


@pytest.mark.parametrize("content, expected", [
    ("[1, 2", "The file is not valid JSON"),
    ('{"a": 1}', "it holds an object"),
    ("[" * 10_000 + "]" * 10_000, "nests values too deeply"),
    (b"\xff\xfe", "The file is not UTF-8 text"),
])
def test_admin_import_unreadable_file_gives_form_error(staff_client, content, expected):
    response = _preview(staff_client, content)
    assert response.status_code == 200
    errors = " ".join(response.context["form"].errors["import_file"])
    assert expected in errors
    assert "uuid, name, description, rule_set, format, graph" in response.content.decode()
    assert "Traceback" not in response.content.decode()


def test_admin_import_of_a_50_mb_file_is_refused_clearly(staff_client, settings):
    settings.FLOWR_IMPORT_MAX_BYTES = 2 * 1024 * 1024
    content = b"[" + b" " * (50 * 1024 * 1024) + b"]"
    response = _preview(staff_client, content)
    assert response.status_code == 200
    errors = response.context["form"].errors["import_file"]
    assert errors == ["The file is 50.0 MB; imports are limited to 2.0 MB (setting "
                      "FLOWR_IMPORT_MAX_BYTES). Split it into smaller files."]


def test_admin_import_page_explains_the_format_and_limits(staff_client):
    html = staff_client.get(reverse("admin:flowr_machine_import")).content.decode()
    assert "Choose a JSON file exported by Flowr (format 1)" in html
    assert "2.0 MB per file, 2000 states per machine" in html


def test_confirm_after_the_data_changed_reports_and_writes_nothing(staff_client, demo_machines):
    new = chain_free_copy(doc_named("Flowr example"), "Late example")
    response = _preview(staff_client, json.dumps([new]))
    confirm = response.context["confirm_form"]
    Machine.objects.filter(name="Flowr example").update(name="Late example")  # name now taken
    before = database_snapshot()
    response = staff_client.post(reverse("admin:flowr_machine_process_import"),
                                 {**confirm.initial}, follow=True)
    messages = [str(m) for m in response.context["messages"]]
    assert messages[0].startswith("Row 1: Machine 'Late example': Another machine named")
    assert messages[-1] == "Nothing was imported; correct the file and import it again."
    assert database_snapshot() == before


def test_process_import_answers_405_to_get(staff_client):
    assert staff_client.get(reverse("admin:flowr_machine_process_import")).status_code == 405


def test_import_needs_add_and_change_permission(client, django_user_model, demo_machines):
    user = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(
        codename__in=["view_machine", "change_machine"]))
    client.force_login(user)
    assert client.get(reverse("admin:flowr_machine_import")).status_code == 403
    before = database_snapshot()
    response = client.post(reverse("admin:flowr_machine_process_import"),
                           {"import_file_name": "x", "original_file_name": "x.json",
                            "format": "0", "resource": "0"})
    assert response.status_code == 403
    assert database_snapshot() == before


def test_export_needs_view_permission(client, django_user_model, demo_machines):
    user = django_user_model.objects.create_user("nobody", password="pw", is_staff=True)
    client.force_login(user)
    machine = demo_machines["orders"]
    assert client.get(reverse("admin:flowr_machine_export")).status_code == 403
    url = reverse("admin:flowr_machine_export_json", args=[machine.pk])
    assert client.get(url).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_machine"))
    assert client.get(url).status_code == 200


def test_confirm_with_a_vanished_temporary_file_says_so(staff_client, demo_machines):
    before = database_snapshot()
    response = staff_client.post(reverse("admin:flowr_machine_process_import"),
                                 {"import_file_name": "no-such-upload", "format": "0",
                                  "original_file_name": "machines.json", "resource": "0"},
                                 follow=True)
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert messages == ["Nothing was imported: the uploaded file is no longer available (or "
                        "was changed); upload it again."]
    assert database_snapshot() == before


def test_admin_import_of_unchanged_machines_says_so(staff_client, demo_machines):
    response = _preview(staff_client, json.dumps([doc_named("Support ticket")]))
    assert "Unchanged" in response.content.decode()
    revisions = Revision.objects.count()
    response = staff_client.post(reverse("admin:flowr_machine_process_import"),
                                 {**response.context["confirm_form"].initial}, follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        "Import finished: 1 unchanged: Support ticket."]
    assert Revision.objects.count() == revisions


# -- uploads waiting for their confirmation -------------------------------------------

@pytest.fixture
def uploads(settings, tmp_path):
    """The folder of import uploads, private to the test."""
    settings.FLOWR_IMPORT_TMP_DIR = str(tmp_path / "uploads")
    from flowr.admin.importexport import ImportUploads

    return lambda: sorted(os.listdir(ImportUploads.folder()))


def test_confirmed_upload_is_removed(staff_client, demo_machines, uploads):
    response = _preview(staff_client, json.dumps([doc_named("Support ticket")]))
    assert len(uploads()) == 1  # kept for the confirmation
    staff_client.post(reverse("admin:flowr_machine_process_import"),
                      {**response.context["confirm_form"].initial})
    assert uploads() == []


@pytest.mark.parametrize("content", ["[1, 2", json.dumps([{"name": "no rule set"}])])
def test_refused_upload_is_removed_at_once(staff_client, demo_machines, uploads, content):
    response = _preview(staff_client, content)
    assert "Confirm import" not in response.content.decode()
    assert uploads() == []


def test_upload_never_confirmed_is_removed_after_the_maximum_age(staff_client, demo_machines,
                                                                   uploads, settings):
    from flowr.admin.importexport import ImportUploads

    settings.FLOWR_IMPORT_TMP_MAX_AGE = 3600
    _preview(staff_client, json.dumps([doc_named("Support ticket")]))
    (left,) = uploads()
    path = os.path.join(ImportUploads.folder(), left)
    assert ImportUploads.remove_old() == 0  # younger than an hour: kept
    os.utime(path, (time.time() - 3601, time.time() - 3601))
    _preview(staff_client, json.dumps([doc_named("Order approval")]))  # sweeps old ones
    assert left not in uploads() and len(uploads()) == 1


@pytest.mark.parametrize("field, value", [
    ("format", "abc"), ("format", "7"), ("resource", "9"), ("resource", "x"),
    ("import_file_name", "../../etc/passwd"), ("import_file_name", "\x00"),
])
def test_altered_confirmation_is_refused_with_a_message(staff_client, demo_machines, uploads,
                                                         tmp_path, field, value):
    response = _preview(staff_client, json.dumps([doc_named("Support ticket")]))
    bystander = tmp_path / "uploads" / "not-an-upload.txt"
    bystander.write_text("kept")
    before = database_snapshot()
    data = {**response.context["confirm_form"].initial, field: value}
    response = staff_client.post(reverse("admin:flowr_machine_process_import"), data,
                                 follow=True)
    assert response.status_code == 200
    assert [str(m) for m in response.context["messages"]][0].startswith("Nothing was imported")
    assert database_snapshot() == before and bystander.read_text() == "kept"
