"""Comparing versions: golden text of the pure comparison (states added, removed, renamed,
changed; transitions; settings; options; names shared by two keys), the running instances
per state, the compare page and the publish preview (GET reads, POST publishes)."""
import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from flowr import builder
from flowr.comparison import compare_definitions, compare_draft, compare_versions
from flowr.models import Instance, MachineVersion
from tests.test_migrations import row_counts

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def _state(key, name, rule, settings=None, options=None):
    state = {"key": key, "name": name, "rule": f"r.{rule}", "settings": settings or {}}
    if options:
        state["options"] = options
    return state


OLD = {"format": 1, "rule_set": "r", "root": "a", "states": [
    _state("a", "Start", "Start"),
    _state("b", "Review", "Review", {"limit": 500}, {"groups": ["Clerks"], "due_after": 86400}),
    _state("c", "Approve", "Approve"),
    _state("d", "Archive", "Archive"),
    _state("e", "Check", "Check"),
], "transitions": [["a", "b"], ["b", "c"], ["c", "d"], ["b", "e"]]}

NEW = {"format": 1, "rule_set": "r", "root": "a", "states": [
    _state("a", "Start", "Start"),
    _state("b", "Review′", "Review", {"limit": 900},
           {"groups": ["Clerks", "Managers"], "due_after": 172800, "timeout_to": "c"}),
    _state("c", "Approve", "Approve2"),
    _state("f", "Check", "Check"),
], "transitions": [["a", "b"], ["b", "c"], ["b", "f"], ["c", "a"]]}

GOLDEN = [
    "Added state 'Check [f]' (r.Check).",
    "Removed state 'Archive' (r.Archive).",
    "Removed state 'Check [e]' (r.Check).",
    "Renamed state 'Review' to 'Review′'.",
    "Changed settings of 'Review′': limit: 500 → 900.",
    "Changed options of 'Review′': Candidate groups: Clerks → Clerks, Managers; Due after: "
    "1 day → 2 days; On timeout step to: — → 'Approve'.",
    "Changed the rule of 'Approve' from r.Approve to r.Approve2.",
    "Added transition 'Review′' → 'Check [f]'.",
    "Added transition 'Approve' → 'Start'.",
    "Removed transition 'Approve' → 'Archive'.",
    "Removed transition 'Review' → 'Check [e]'.",
]


def test_golden_comparison_of_states_transitions_settings_and_options():
    result = compare_definitions(OLD, NEW, "v1", "v2")
    assert result.lines() == GOLDEN
    kinds = {s.key: (s.kind, s.what) for s in result.states}
    assert kinds == {"a": ("unchanged", []), "b": ("changed", ["renamed", "settings", "options"]),
                     "c": ("changed", ["rule"]), "d": ("removed", []), "e": ("removed", []),
                     "f": ("added", [])}
    assert result.marks("old") == {"b": "changed", "c": "changed", "d": "removed",
                                   "e": "removed", ("c", "d"): "removed",
                                   ("b", "e"): "removed"}
    assert result.marks("new") == {"b": "changed", "c": "changed", "f": "added",
                                   ("b", "f"): "added", ("c", "a"): "added"}


def test_golden_comparison_the_other_way_and_of_a_root_change():
    back = compare_definitions(NEW, OLD)
    assert back.lines()[:4] == [
        "Added state 'Archive' (r.Archive).", "Added state 'Check [e]' (r.Check).",
        "Removed state 'Check [f]' (r.Check).", "Renamed state 'Review′' to 'Review'."]
    assert not compare_definitions(OLD, OLD).has_changes
    moved_root = dict(OLD, root="b")
    assert compare_definitions(OLD, moved_root).lines() == [
        "The root changed from 'Start' to 'Review'."]


def test_running_instances_per_removed_or_changed_state(example_machine, admin_user):
    machine = example_machine
    v1 = machine.latest_version()
    for path in (["C", "E"], ["C", "E"], ["C"], []):
        instance = machine.start()
        for name in path:
            instance.step(to=name)
    Instance.objects.filter(state_name="A").update(status=Instance.CANCELLED)  # not running
    builder.prune_state(machine.states.get(name="E"))
    builder.update_state(machine.states.get(name="C"), options={"due_after": 3600})
    v2 = machine.publish(admin_user)
    with CaptureQueriesContext(connection) as queries:
        result = compare_versions(v1, v2)
    assert len(queries.captured_queries) == 1  # definitions loaded; one aggregate query
    assert {s.key: s.running for s in result.states if s.running} == {
        machine.states.get(name="C").key: 1, v1.definition["states"][3]["key"]: 2}
    assert result.impact_lines() == [
        "v2 changes (options) 'C', where 1 running instance on v1 sits.",
        "v2 removes 'E', where 2 running instances on v1 sit."]


# -- the compare page -----------------------------------------------------------------------

def _compare_url(machine):
    return f"/admin/flowr/machine/{machine.pk}/versions/compare/"


def test_compare_page_shows_both_diagrams_counts_and_writes_nothing(example_machine,
                                                                   admin_user, staff_client):
    machine = example_machine
    e = machine.start()
    e.step(to="C")
    e.step(to="E")
    builder.prune_state(machine.states.get(name="E"))
    builder.update_state(machine.states.get(name="C"), name="Check")
    machine.publish(admin_user)
    before = row_counts()
    response = staff_client.get(_compare_url(machine), {"a": "1", "b": "2"})
    html = response.content.decode()
    assert response.status_code == 200 and row_counts() == before
    assert "Renamed state &#x27;C&#x27; to &#x27;Check&#x27;." in html
    assert "v2 removes &#x27;E&#x27;, where 1 running instance on v1 sits." in html
    assert html.count('class="flowr-diagram"') == 2
    assert 'class="fd-node fd-removed"' in html and 'class="fd-node fd-changed"' in html
    assert f"/admin/flowr/instance/move/?version={machine.versions.get(number=1).pk}" in html
    # Default: the latest two versions.
    assert staff_client.get(_compare_url(machine)).context["a"].number == 1


@pytest.mark.parametrize("query", [{"a": "x"}, {"b": "99"}, {"a": "1%00"}, {"a": "9" * 40}])
def test_compare_page_answers_bad_versions_with_404(example_machine, staff_client, query):
    assert staff_client.get(_compare_url(example_machine), query).status_code == 404


def test_compare_page_is_get_only_and_needs_view_permission(example_machine,
                                                           django_user_model):
    user = django_user_model.objects.create_user("nobody", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    assert client.get(_compare_url(example_machine)).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_machine"))
    client.force_login(user)
    assert client.get(_compare_url(example_machine)).status_code == 200
    assert client.post(_compare_url(example_machine)).status_code == 405
    assert client.get("/admin/flowr/machine/999/versions/compare/").status_code in (302, 404)


def test_machine_page_links_to_compare_move_and_migrations(example_machine, staff_client):
    machine = example_machine
    machine.start()
    builder.update_state(machine.states.get(name="D"), name="Done")
    v2 = machine.publish()
    html = staff_client.get(f"/admin/flowr/machine/{machine.pk}/change/").content.decode()
    assert f"{_compare_url(machine)}?a=1&amp;b=2" in html
    v1 = MachineVersion.objects.get(machine=machine, number=1)
    assert f"/admin/flowr/instance/move/?version={v1.pk}" in html
    assert f"/admin/flowr/instance/move/?machine={machine.pk}" in html
    assert f"/admin/flowr/versionmigration/?machine__id__exact={machine.pk}" in html
    assert f"/admin/flowr/machine/{machine.pk}/builder/publish/preview/" in html
    assert v2.number == 2


# -- publish with a preview ---------------------------------------------------------------

def _preview_url(machine):
    return f"/admin/flowr/machine/{machine.pk}/builder/publish/preview/"


def test_publish_preview_shows_affected_instances_then_publishes(example_machine,
                                                                 staff_client):
    machine = example_machine
    for _ in range(12):
        instance = machine.start()
        instance.step(to="C")
        instance.step(to="E")
    builder.prune_state(machine.states.get(name="E"))
    before = row_counts(), MachineVersion.objects.count()
    response = staff_client.get(_preview_url(machine))
    html = response.content.decode()
    assert (row_counts(), MachineVersion.objects.count()) == before
    assert "v2 removes &#x27;E&#x27;, where 12 running instances on v1 sit." in html
    assert 'value="Publish version 2"' in html

    response = staff_client.post(_preview_url(machine), {"draft": response.context["draft"]},
                                 follow=True)
    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert message.startswith("Published version 2 of &#x27;Example&#x27;. 12 running "
                              "instances on v1 sit in states it removes or changes")
    assert "move them to version 2" in message
    assert machine.versions.count() == 2


def test_publish_is_refused_when_the_draft_changed_since_the_preview(example_machine,
                                                                      staff_client):
    machine = example_machine
    builder.update_state(machine.states.get(name="D"), name="Done")
    draft = staff_client.get(_preview_url(machine)).context["draft"]
    builder.update_state(machine.states.get(name="Done"), name="Finished")
    response = staff_client.post(_preview_url(machine), {"draft": draft}, follow=True)
    assert "changed since this page was shown" in str(list(response.context["messages"])[0])
    assert machine.versions.count() == 1


def test_publish_preview_of_a_first_version_and_of_no_change(staff_client, example_machine):
    fresh = builder.create_machine("flowr_example", "Fresh")
    html = staff_client.get(_preview_url(fresh)).content.decode()
    assert "Publish version 1" in html and "freezes the current graph (1 state)" in html
    html = staff_client.get(_preview_url(example_machine)).content.decode()
    assert "Nothing changed since version 1" in html and 'value="Publish' not in html
    latest, result = compare_draft(example_machine)
    assert latest.number == 1 and not result.has_changes


def test_publish_needs_change_permission_and_csrf(example_machine, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_machine"))
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get(_preview_url(example_machine)).status_code == 200
    client.cookies["csrftoken"] = "x" * 32
    assert client.post(_preview_url(example_machine),
                       {"csrfmiddlewaretoken": "x" * 32}).status_code == 403
    assert example_machine.versions.count() == 1
