"""The machine builder in the admin: every button, refusal, permission and revision."""
import re

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from reversion.models import Revision

from flowr import builder, engine
from flowr.models import Instance, Machine, RuleSetRecord, Transition
from flowr.rules import Rule, RuleSet, register, unregister

pytestmark = pytest.mark.django_db


def change_url(machine):
    return reverse("admin:flowr_machine_change", args=[machine.pk])


def action_url(machine, name, state=None):
    if state is None:
        return reverse(f"admin:flowr_machine_{name}", args=[machine.pk])
    return reverse(f"admin:flowr_machine_state_{name}", args=[machine.pk, state.pk])


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def state(machine, name):
    return machine.states.get(name=name)


def edges_of(machine):
    return sorted((t.parent.name, t.child.name) for t in
                  Transition.objects.filter(machine=machine).select_related("parent", "child"))


@pytest.fixture
def fresh_machine(db):
    """A flowr example machine holding only its root state A."""
    return builder.create_machine("flowr_example", "Fresh")


@pytest.fixture
def viewer(client, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_machine"))
    client.force_login(user)
    return client


# -- adding a machine ---------------------------------------------------------------

def test_add_form_creates_machine_with_root_state_and_revision(staff_client, admin_user):
    record = RuleSetRecord.objects.get(key="orders")
    response = staff_client.post(reverse("admin:flowr_machine_add"), {
        "rule_set": record.pk, "name": "Big orders", "description": "For big ones.",
        "_continue": "1"}, follow=True)
    machine = Machine.objects.get(name="Big orders")
    assert response.redirect_chain[-1][0] == change_url(machine)
    assert [(s.name, s.rule_key, s.is_root) for s in machine.states.all()] == [
        ("Draft", "orders.Draft", True)]
    revision = Revision.objects.get()
    assert revision.user == admin_user
    assert "Created machine Big orders from rule set orders" in revision.comment


def test_add_form_offers_only_registered_rule_sets(staff_client):
    RuleSetRecord.objects.create(key="gone", name="Gone", root_rule_key="gone.X",
                                 is_registered=False)
    response = staff_client.get(reverse("admin:flowr_machine_add"))
    choices = [str(c[1]) for c in response.context["adminform"].form.fields["rule_set"].choices]
    assert "Order approval" in choices and "Gone" not in choices
    assert "name" in response.context["adminform"].form.fields


# -- the machine page -----------------------------------------------------------------

def test_machine_page_shows_states_buttons_diagram_and_status(staff_client, fresh_machine):
    response = staff_client.get(change_url(fresh_machine))
    html = response.content.decode()
    assert response.status_code == 200
    assert "<svg" in html and 'class="flowr-diagram"' in html
    assert "Draft: never published." in html
    assert ">Add B</button>" in html and ">Add C</button>" in html
    assert action_url(fresh_machine, "publish") in html
    assert reverse("admin:flowr_machine_history", args=[fresh_machine.pk]) in html
    # A machine that is not published cannot start an instance yet.
    assert action_url(fresh_machine, "start") not in html
    assert "Publish the machine first." in html


def test_status_tracks_draft_changes_against_latest_version(staff_client, example_machine):
    html = staff_client.get(change_url(example_machine)).content.decode()
    assert "Published: no changes since version 1." in html
    builder.update_state(state(example_machine, "D"), name="Done")
    html = staff_client.get(change_url(example_machine)).content.decode()
    assert "Draft changes since the last published version (v1)." in html


def test_versions_listed_with_publisher_and_instance_counts(staff_client, example_machine,
                                                            admin_user):
    engine.start(example_machine)
    engine.start(example_machine)
    builder.update_state(state(example_machine, "D"), name="Done")
    v2 = engine.publish(example_machine, user=admin_user)
    engine.start(example_machine)
    response = staff_client.get(change_url(example_machine))
    rows = re.findall(r'<tr class="flowr-version"><td><a href="[^"]+">v(\d+)</a></td>'
                      r'<td>[^<]*</td>\s*'
                      r'<td>([^<]*)</td><td>(\d+)</td>', response.content.decode())
    assert rows == [(str(v2.number), "admin", "1"), ("1", "—", "2")]


# -- per-state buttons ------------------------------------------------------------------

def test_add_child_button_adds_state_with_one_revision(staff_client, admin_user, fresh_machine):
    a = state(fresh_machine, "A")
    response = staff_client.post(action_url(fresh_machine, "add", a),
                                 {"rule": "flowr_example.C"}, follow=True)
    assert response.redirect_chain[-1][0] == change_url(fresh_machine)
    assert messages_of(response) == ["Added state 'C' under 'A'."]
    assert edges_of(fresh_machine) == [("A", "C")]
    revision = Revision.objects.get()
    assert revision.comment == "Added state C under A"
    assert revision.user == admin_user
    # A allows one child only: its add buttons are gone now.
    html = response.content.decode()
    assert ">Add B</button>" not in html and ">Add D</button>" in html


def test_forbidden_child_is_refused_with_message_and_nothing_changes(staff_client, fresh_machine):
    a = state(fresh_machine, "A")
    response = staff_client.post(action_url(fresh_machine, "add", a),
                                 {"rule": "flowr_example.D"}, follow=True)
    assert response.status_code == 200
    [message] = messages_of(response)
    assert "does not allow a child of rule flowr_example.D" in message
    assert fresh_machine.states.count() == 1
    assert Revision.objects.count() == 0


def test_second_child_refused_when_multiple_paths_is_off(staff_client, fresh_machine):
    a = state(fresh_machine, "A")
    staff_client.post(action_url(fresh_machine, "add", a), {"rule": "flowr_example.C"},
                      follow=True)
    response = staff_client.post(action_url(fresh_machine, "add", a),
                                 {"rule": "flowr_example.B"}, follow=True)
    assert "multiple_paths is off" in messages_of(response)[0]
    assert edges_of(fresh_machine) == [("A", "C")]
    assert Revision.objects.count() == 1


def test_connect_and_disconnect_buttons(staff_client, admin_user, fresh_machine):
    a = state(fresh_machine, "A")
    c = builder.add_child(a, "flowr_example.C")
    e = builder.add_child(c, "flowr_example.E")
    html = staff_client.get(change_url(fresh_machine)).content.decode()
    # E may loop back to A, the one state of rule A: one click connects them.
    assert (f'formaction="../builder/state/{e.pk}/connect/" name="child" value="{a.pk}" '
            f'class="flowr-btn">Connect to A</button>') in html
    assert ">Add another A</button>" in html
    response = staff_client.post(action_url(fresh_machine, "connect", e), {"child": a.pk},
                                 follow=True)
    assert messages_of(response) == ["Connected 'E' → 'A'."]
    assert ("E", "A") in edges_of(fresh_machine)
    assert Revision.objects.get().comment == "Connected E to A"
    response = staff_client.post(action_url(fresh_machine, "disconnect", e), {"child": a.pk},
                                 follow=True)
    assert messages_of(response) == ["Removed the transition 'E' → 'A'."]
    assert ("E", "A") not in edges_of(fresh_machine)
    assert Revision.objects.order_by("-pk").first().comment == "Removed transition E → A"
    assert Revision.objects.count() == 2


def test_disconnect_that_strands_states_is_refused(staff_client, example_machine):
    a, c = state(example_machine, "A"), state(example_machine, "C")
    html = staff_client.get(change_url(example_machine)).content.decode()
    assert re.search(r'<div class="flowr-transition" data-child="[^"]+" title="Removing A → C '
                     r'would leave &#x27;C&#x27;, &#x27;D&#x27; and &#x27;E&#x27; unreachable '
                     r'from the root.">→ C <button[^>]+ disabled', html)
    response = staff_client.post(action_url(example_machine, "disconnect", a), {"child": c.pk},
                                 follow=True)
    assert "would leave" in messages_of(response)[0]
    assert ("A", "C") in edges_of(example_machine)


def test_connect_to_unknown_state_is_refused(staff_client, example_machine):
    e = state(example_machine, "E")
    response = staff_client.post(action_url(example_machine, "connect", e), {"child": 999999},
                                 follow=True)
    assert "Choose an existing state" in messages_of(response)[0]


def test_remove_button_and_its_refusal(staff_client, example_machine):
    html = staff_client.get(change_url(example_machine)).content.decode()
    assert ("Remove: it would leave &#x27;D&#x27; and &#x27;E&#x27; unreachable from the root; "
            "Prune… removes them too.") in html
    c, d = state(example_machine, "C"), state(example_machine, "D")
    response = staff_client.post(action_url(example_machine, "remove", c), follow=True)
    assert "use prune" in messages_of(response)[0]
    assert example_machine.states.filter(name="C").exists()
    response = staff_client.post(action_url(example_machine, "remove", d), follow=True)
    assert messages_of(response) == ["Removed state 'D'."]
    assert not example_machine.states.filter(name="D").exists()
    assert Revision.objects.get().comment == "Removed state D"


def test_prune_shows_what_goes_then_removes_on_confirmation(staff_client, example_machine):
    c = state(example_machine, "C")
    response = staff_client.post(action_url(example_machine, "prune", c))
    assert response.status_code == 200
    listed = re.findall(r"<li>(\w+) <span", response.content.decode())
    assert sorted(listed) == ["C", "D", "E"]
    assert example_machine.states.count() == 4  # nothing removed yet
    response = staff_client.post(action_url(example_machine, "prune", c), {"confirm": "yes"},
                                 follow=True)
    assert messages_of(response) == ["Pruned 'C': removed C, D, E."]
    assert list(example_machine.states.values_list("name", flat=True)) == ["A"]
    assert Revision.objects.get().comment == "Pruned state C (removed C, D, E)"


def test_root_cannot_be_pruned(staff_client, example_machine):
    response = staff_client.post(action_url(example_machine, "prune", state(example_machine, "A")),
                                 {"confirm": "yes"}, follow=True)
    assert "root cannot be pruned" in messages_of(response)[0]
    assert example_machine.states.count() == 4


def test_edit_renames_and_saves_settings(staff_client, admin_user, demo_machines):
    machine = demo_machines["orders"]
    approved = state(machine, "Approved")
    page = reverse("admin:flowr_machine_state_page", args=[machine.pk, approved.pk])
    html = staff_client.get(page + "?do=edit").content.decode()
    assert f'id="id_edit{approved.pk}_settings-max_amount"' in html and 'value="5000"' in html
    response = staff_client.post(action_url(machine, "edit", approved),
                                 {"name": "Manager approved", "settings-max_amount": "250"},
                                 follow=True)
    assert messages_of(response) == ["Saved state 'Manager approved'."]
    approved.refresh_from_db()
    assert (approved.name, approved.settings) == ("Manager approved", {"max_amount": 250})
    revision = Revision.objects.order_by("-pk").first()
    assert revision.comment == ("Renamed state Approved to Manager approved and saved its "
                                "settings and options")
    assert revision.user == admin_user


def test_edit_with_invalid_settings_shows_errors_and_changes_nothing(staff_client,
                                                                     demo_machines):
    machine = demo_machines["orders"]
    approved = state(machine, "Approved")
    revisions = Revision.objects.count()
    response = staff_client.post(action_url(machine, "edit", approved),
                                 {"name": "Renamed", "settings-max_amount": "-5"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "greater than or equal to 0" in html
    assert "Settings for rule orders.Approved are invalid" in messages_of(response)[0]
    approved.refresh_from_db()
    assert (approved.name, approved.settings) == ("Approved", {"max_amount": 5000})
    assert Revision.objects.count() == revisions


def test_edit_with_duplicate_name_is_refused(staff_client, example_machine):
    response = staff_client.post(action_url(example_machine, "edit", state(example_machine, "D")),
                                 {"name": "E"})
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert example_machine.states.filter(name="D").exists()


def test_action_on_a_state_that_is_gone_says_so(staff_client, example_machine):
    d = state(example_machine, "D")
    builder.remove_state(d)
    response = staff_client.post(action_url(example_machine, "remove", d), follow=True)
    assert "no longer exists" in messages_of(response)[0]


# -- machine-level buttons ---------------------------------------------------------------

def test_publish_creates_version_then_reports_unchanged(staff_client, admin_user,
                                                        fresh_machine):
    builder.add_child(state(fresh_machine, "A"), "flowr_example.B")
    response = staff_client.post(action_url(fresh_machine, "publish"), follow=True)
    assert messages_of(response) == ["Published version 1 of 'Fresh'."]
    assert fresh_machine.versions.get().published_by == admin_user
    response = staff_client.post(action_url(fresh_machine, "publish"), follow=True)
    assert messages_of(response) == ["Nothing changed since version 1; no new version was "
                                     "created."]
    assert fresh_machine.versions.count() == 1


def test_start_redirects_to_the_new_instance(staff_client, admin_user, example_machine):
    response = staff_client.post(action_url(example_machine, "start"))
    instance = Instance.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:flowr_instance_change", args=[instance.pk])
    assert instance.started_by == admin_user and instance.state_name == "A"


def test_start_unpublished_machine_is_refused(staff_client, fresh_machine):
    response = staff_client.post(action_url(fresh_machine, "start"), follow=True)
    assert "has no published version; publish it first" in messages_of(response)[0]
    assert Instance.objects.count() == 0


# -- HTTP method and permissions -----------------------------------------------------------

ALL_STATE_ACTIONS = ["add", "connect", "disconnect", "edit", "remove", "prune"]


@pytest.mark.parametrize("name", ALL_STATE_ACTIONS + ["publish", "start"])
def test_get_answers_405(staff_client, example_machine, name):
    target = state(example_machine, "C") if name in ALL_STATE_ACTIONS else None
    response = staff_client.get(action_url(example_machine, name, target))
    assert response.status_code == 405


def test_view_only_staff_see_no_buttons(viewer, example_machine):
    response = viewer.get(change_url(example_machine))
    html = response.content.decode()
    assert response.status_code == 200
    assert "<svg" in html and "flowr-states-table" in html
    for name in ["publish", "start"]:
        assert action_url(example_machine, name) not in html
    assert "/builder/state/" not in html
    assert "<button" not in html.split('id="flowr-diagram"')[1]


@pytest.mark.parametrize("name", ALL_STATE_ACTIONS + ["publish", "start"])
def test_view_only_staff_get_403_on_forged_post(viewer, example_machine, name):
    c = state(example_machine, "C")
    target = c if name in ALL_STATE_ACTIONS else None
    data = {"rule": "flowr_example.D", "child": c.pk, "name": "X", "confirm": "yes"}
    response = viewer.post(action_url(example_machine, name, target), data)
    assert response.status_code == 403
    assert example_machine.states.count() == 4 and example_machine.versions.count() == 1
    assert Instance.objects.count() == 0


def test_change_permission_alone_cannot_start(client, django_user_model, example_machine):
    user = django_user_model.objects.create_user("editor", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(
        codename__in=["view_machine", "change_machine"]))
    client.force_login(user)
    html = client.get(change_url(example_machine)).content.decode()
    assert action_url(example_machine, "publish") in html
    assert action_url(example_machine, "start") not in html
    assert client.post(action_url(example_machine, "start")).status_code == 403
    response = client.post(action_url(example_machine, "add", state(example_machine, "D")),
                           {"rule": "flowr_example.A"})
    assert response.status_code == 302


def test_csrf_is_enforced(client, admin_user, example_machine):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(admin_user)
    response = csrf_client.post(action_url(example_machine, "publish"))
    assert response.status_code == 403


# -- unregistered rule set ------------------------------------------------------------------

def test_machine_of_unregistered_rule_set_warns_without_buttons(staff_client, example_machine):
    unregister("flowr_example")
    response = staff_client.get(change_url(example_machine))
    html = response.content.decode()
    assert response.status_code == 200
    assert "is no longer registered in code" in html
    assert "/builder/" not in html
    response = staff_client.post(action_url(example_machine, "add", state(example_machine, "D")),
                                 {"rule": "flowr_example.A"}, follow=True)
    assert "no longer registered" in messages_of(response)[0]
    assert example_machine.states.count() == 4


def test_page_offers_exactly_the_connections_the_builder_allows(demo_machines, fresh_machine):
    from flowr.admin import builder_forms, builder_page

    c = builder.add_child(state(fresh_machine, "A"), "flowr_example.C")
    builder.add_child(builder.add_child(c, "flowr_example.E"), "flowr_example.A")
    offered = 0
    for machine in [*demo_machines.values(), fresh_machine]:
        graph = builder.MachineGraph.load(machine)
        for row in builder_page.state_rows(graph, graph.rule_set, True):
            fast = sorted(o.key for add in row.adds for o in add.existing)
            form = builder_forms.connect_box(machine, graph, row.state)
            listed = ([key for key, _ in form.forms[0].fields["child"].choices]
                      if form.forms else [])
            allowed = sorted(o.key for o in graph.connectable(row.state))
            assert fast == allowed, (machine, row.state)
            assert sorted(graph.states[[s.pk for s in graph.states].index(pk)].key
                          for pk in listed) == allowed
            offered += len(fast)
    assert offered > 0


def test_export_link_downloads_this_machine(staff_client, example_machine):
    html = staff_client.get(change_url(example_machine)).content.decode()
    url = re.search(r'<a href="([^"]+)" class="flowr-tool-export">Export</a>', html).group(1)
    response = staff_client.get(url)
    assert response.status_code == 200
    assert b"Example" in response.content


def test_state_whose_rule_left_the_code_is_shown_and_publish_refused(staff_client,
                                                                    example_machine):
    class A(Rule):
        children = ["C"]

    class C(Rule):
        children = ["E"]

    class E(Rule):
        children = ["A"]

    unregister("flowr_example")
    register(RuleSet("flowr_example", "Flowr example", root=A, rules=[A, C, E]))
    response = staff_client.get(change_url(example_machine))
    html = response.content.decode()
    assert response.status_code == 200
    assert "This graph breaks the current rules" in html
    assert "uses rule flowr_example.D, which is not registered" in html
    assert "flowr_example.D (not registered)" in html
    response = staff_client.post(action_url(example_machine, "publish"), follow=True)
    assert "cannot be published" in messages_of(response)[0]
    assert example_machine.versions.count() == 1
