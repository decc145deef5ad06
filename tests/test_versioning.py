"""Versioning: one revision per builder action, compare, revert (refused if rules changed),
recover, the delete guard, archiving, and the machine list's object tools."""
import pytest
import reversion
from django import forms
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.test import Client
from reversion.models import Revision, Version

from flowr import builder, versioning
from flowr.models import Machine, State, Transition
from flowr.rules import Rule, RuleSet, get_rule_set, register, unregister

# Database-sensitive (explicit primary keys on restore, reversion casts, row locks):
# also run in the PostgreSQL pass.
pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

APPROVAL = {"max_amount": 500}


def _messages(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def _build_orders(user):
    """Draft → Submitted → (Approved, Rejected), each builder call in its own revision."""
    with builder.revision(user, "Created machine Orders"):
        machine = builder.create_machine("orders", "Orders")
    draft = machine.root_state
    with builder.revision(user, "Added state Submitted under Draft"):
        submitted = builder.add_child(draft, "orders.Submitted")
    with builder.revision(user, "Added state Approved under Submitted"):
        builder.add_child(submitted, "orders.Approved", settings=APPROVAL)
    with builder.revision(user, "Added state Rejected under Submitted"):
        builder.add_child(submitted, "orders.Rejected")
    return machine


def _latest_version(machine):
    return Version.objects.get_for_object(machine).order_by("-pk").first()


def _state(machine, name):
    return machine.states.get(name=name)


def _recorded(revision, machine):
    """(states, transitions) counts a revision holds for the machine."""
    versions = revision.version_set.all()
    states = sum(1 for v in versions if v.content_type.model == "state"
                 and v.field_dict["machine_id"] == machine.pk)
    transitions = sum(1 for v in versions if v.content_type.model == "transition"
                      and v.field_dict["machine_id"] == machine.pk)
    return states, transitions


# -- one revision per builder action ----------------------------------------------------

def _check_one_revision(action, machine, user, comment):
    before = Revision.objects.count()
    with builder.revision(user, comment):
        action()
    assert Revision.objects.count() == before + 1
    revision = Revision.objects.latest("pk")
    assert revision.user == user
    assert revision.comment == comment
    assert _recorded(revision, machine) == (machine.states.count(), machine.transitions.count())
    snap = versioning.snapshot(revision, machine.pk)
    assert snap.definition() == versioning.current_definition(machine)


def test_each_builder_action_is_one_revision_with_user_comment_and_whole_graph(admin_user):
    user = admin_user
    machine = _build_orders(user)
    revisions = Revision.objects.order_by("pk")
    assert [r.comment for r in revisions] == [
        "Created machine Orders", "Added state Submitted under Draft",
        "Added state Approved under Submitted", "Added state Rejected under Submitted"]
    assert {r.user for r in revisions} == {user}
    assert _recorded(revisions[0], machine) == (1, 0)
    submitted = _state(machine, "Submitted")
    steps = [
        (lambda: builder.add_child(submitted, "orders.Rework"), "Added state Needs rework"),
        (lambda: builder.connect(_state(machine, "Needs rework"), submitted),
         "Connected Needs rework to Submitted"),
        (lambda: builder.disconnect(_state(machine, "Needs rework"), submitted),
         "Disconnected Needs rework from Submitted"),
        (lambda: builder.update_state(_state(machine, "Approved"), name="OK",
                                      settings={"max_amount": 900}), "Renamed Approved to OK"),
        (lambda: builder.remove_state(_state(machine, "Rejected")), "Removed state Rejected"),
        (lambda: builder.prune_state(submitted), "Pruned Submitted"),
    ]
    for action, comment in steps:
        _check_one_revision(action, machine, user, comment)
    assert list(machine.states.values_list("name", flat=True)) == ["Draft"]


def test_builder_calls_outside_a_revision_record_nothing(admin_user):
    machine = builder.create_machine("orders", "Quiet")
    builder.add_child(machine.root_state, "orders.Submitted")
    assert Revision.objects.count() == 0


# -- diff -------------------------------------------------------------------------------

def test_diff_definitions_reports_added_removed_renamed_settings_and_transitions():
    old = {"name": "M", "root": "a", "states": [
        {"key": "a", "name": "Start", "rule": "s.A", "settings": {}},
        {"key": "b", "name": "Old name", "rule": "s.B", "settings": {"n": 1}},
        {"key": "c", "name": "Gone", "rule": "s.C", "settings": {}}],
        "transitions": [["a", "b"], ["a", "c"]]}
    new = {"name": "M2", "root": "a", "states": [
        {"key": "a", "name": "Start", "rule": "s.A", "settings": {}},
        {"key": "b", "name": "New name", "rule": "s.B", "settings": {"n": 2}},
        {"key": "d", "name": "Fresh", "rule": "s.D", "settings": {}}],
        "transitions": [["a", "b"], ["b", "d"]]}
    diff = versioning.diff_definitions(old, new)
    assert diff.added == [{"key": "d", "name": "Fresh", "rule": "s.D"}]
    assert diff.removed == [{"key": "c", "name": "Gone", "rule": "s.C"}]
    assert diff.renamed == [{"key": "b", "old": "Old name", "new": "New name"}]
    assert diff.settings_changed[0]["changes"] == ["n: 1 → 2"]
    assert diff.transitions_added == [("New name", "Fresh")]
    assert diff.transitions_removed == [("Start", "Gone")]
    assert diff.machine_renamed == ("M", "M2")
    assert "Renamed state 'Old name' to 'New name'." in diff.lines()
    assert "Removed transition 'Start' → 'Gone'." in diff.lines()
    assert not versioning.diff_definitions(new, new).has_changes


# -- revert -----------------------------------------------------------------------------

def _edit_after(machine, user):
    """Several edits after the revision with Rejected: settings, rename, remove, add."""
    with builder.revision(user, "Edits"):
        builder.update_state(_state(machine, "Approved"), settings={"max_amount": 900})
        builder.update_state(_state(machine, "Submitted"), name="In review")
    with builder.revision(user, "Remove Rejected"):
        builder.remove_state(_state(machine, "Rejected"))
    with builder.revision(user, "Add rework"):
        rework = builder.add_child(_state(machine, "In review"), "orders.Rework")
        builder.connect(rework, _state(machine, "In review"))


def test_revert_restores_states_transitions_and_settings_exactly(admin_user):
    machine = _build_orders(admin_user)
    target = _latest_version(machine)
    wanted = versioning.current_definition(machine)
    published = machine.publish(admin_user)
    _edit_after(machine, admin_user)
    assert versioning.current_definition(machine) != wanted
    count = Revision.objects.count()

    versioning.revert(machine, target, user=admin_user)

    assert versioning.current_definition(machine) == wanted
    assert _state(machine, "Approved").settings == APPROVAL
    assert Revision.objects.count() == count + 1
    revert_revision = Revision.objects.latest("pk")
    assert revert_revision.user == admin_user
    assert revert_revision.comment.startswith("Reverted to the revision of")
    assert versioning.snapshot(revert_revision, machine.pk).definition() == wanted
    # Same graph, same checksum: republishing gives back the version published then.
    assert machine.publish(admin_user).pk == published.pk


def test_revert_keeps_the_archived_flag(admin_user):
    machine = _build_orders(admin_user)
    target = _latest_version(machine)
    Machine.objects.filter(pk=machine.pk).update(archived=True)
    versioning.revert(machine, target, user=admin_user)
    assert Machine.objects.get(pk=machine.pk).archived is True


def _register_changed_orders(drop_rejected_child=False, drop_rule=None):
    """Replace the 'orders' rule set by a throwaway one (the registry is restored later)."""
    class Draft(Rule):
        children = ["Submitted"]

    class Submitted(Rule):
        children = ["Approved", "Rework"] if (drop_rejected_child or drop_rule) else \
            ["Approved", "Rejected", "Rework"]
        multiple_paths = True

    class Rework(Rule):
        children = ["Submitted"]
        display_name = "Needs rework"

    class Approved(Rule):
        settings_form = type("ApprovalSettings", (forms.Form,),
                             {"max_amount": forms.IntegerField(min_value=0)})

    class Rejected(Rule):
        pass

    rules = [r for r in [Draft, Submitted, Rework, Approved, Rejected] if r.__name__ != drop_rule]
    unregister("orders")
    register(RuleSet("orders", "Orders (changed)", root=Draft, rules=rules))


@pytest.mark.parametrize("change", [{"drop_rejected_child": True}, {"drop_rule": "Rejected"}])
def test_revert_refused_when_rules_changed_and_nothing_changes(admin_user, change):
    machine = _build_orders(admin_user)
    target = _latest_version(machine)
    _edit_after(machine, admin_user)
    before = versioning.current_definition(machine)
    count = Revision.objects.count()
    _register_changed_orders(**change)

    with pytest.raises(versioning.RevisionError) as caught:
        versioning.revert(machine, target, user=admin_user)

    assert "no longer obeys the current rules" in str(caught.value)
    assert "Rejected" in str(caught.value)
    assert versioning.current_definition(machine) == before
    assert Revision.objects.count() == count


def test_admin_revert_refused_shows_message_and_changes_nothing(admin_user, staff_client):
    machine = _build_orders(admin_user)
    target = _latest_version(machine)
    _edit_after(machine, admin_user)
    before = versioning.current_definition(machine)
    _register_changed_orders(drop_rejected_child=True)
    url = f"/admin/flowr/machine/{machine.pk}/history/{target.pk}/revert/"
    preview = staff_client.get(f"/admin/flowr/machine/{machine.pk}/history/{target.pk}/")
    assert "no longer obeys the current rules" in preview.content.decode()

    response = staff_client.post(url, follow=True)

    assert response.status_code == 200
    assert any("no longer obeys the current rules" in m for m in _messages(response))
    assert versioning.current_definition(machine) == before


def test_admin_history_compare_and_revert(admin_user, staff_client):
    machine = _build_orders(admin_user)
    with_rejected = _latest_version(machine)
    _edit_after(machine, admin_user)
    history = staff_client.get(f"/admin/flowr/machine/{machine.pk}/history/")
    html = history.content.decode()
    assert history.status_code == 200
    assert "Added state Rejected under Submitted" in html and "Remove Rejected" in html

    latest = _latest_version(machine)
    compare = staff_client.get(f"/admin/flowr/machine/{machine.pk}/history/compare/",
                               {"a": with_rejected.pk, "b": latest.pk})
    text = compare.content.decode()
    assert compare.status_code == 200
    assert "Removed state &#x27;Rejected&#x27;" in text
    assert "Renamed state &#x27;Submitted&#x27; to &#x27;In review&#x27;" in text
    assert "max_amount: 500 → 900" in text
    assert text.count("<svg") == 2

    url = f"/admin/flowr/machine/{machine.pk}/history/{with_rejected.pk}/revert/"
    assert staff_client.get(url).status_code == 405
    response = staff_client.post(url)
    assert response.status_code == 302
    assert machine.states.filter(name="Rejected").exists()
    assert any("reverted" in m for m in _messages(response))


def _staff(django_user_model, name, *codenames):
    user = django_user_model.objects.create_user(name, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def test_revert_needs_change_permission_and_csrf(admin_user, django_user_model):
    machine = _build_orders(admin_user)
    target = _latest_version(machine)
    _edit_after(machine, admin_user)
    before = versioning.current_definition(machine)
    url = f"/admin/flowr/machine/{machine.pk}/history/{target.pk}/revert/"
    viewer = _staff(django_user_model, "viewer", "view_machine")
    assert viewer.get(f"/admin/flowr/machine/{machine.pk}/history/").status_code == 200
    viewer.cookies["csrftoken"] = "x" * 32
    assert viewer.post(url, {"csrfmiddlewaretoken": "x" * 32}).status_code == 403
    editor = _staff(django_user_model, "editor", "view_machine", "change_machine")
    assert editor.post(url).status_code == 403  # no CSRF token
    assert versioning.current_definition(machine) == before


# -- recover, delete guard, archive ---------------------------------------------------------

def test_delete_then_recover_restores_machine_states_and_transitions(admin_user, staff_client):
    machine = _build_orders(admin_user)
    wanted = versioning.current_definition(machine)
    response = staff_client.post(f"/admin/flowr/machine/{machine.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Machine.objects.filter(pk=machine.pk).exists()
    assert not State.objects.filter(machine_id=machine.pk).exists()

    listing = staff_client.get("/admin/flowr/machine/recover/")
    assert "Orders" in listing.content.decode()
    deleted = Version.objects.get_deleted(Machine).get()
    preview = staff_client.get(f"/admin/flowr/machine/recover/{deleted.pk}/")
    assert preview.status_code == 200 and "Recover this machine" in preview.content.decode()
    confirm = f"/admin/flowr/machine/recover/{deleted.pk}/confirm/"
    assert staff_client.get(confirm).status_code == 405
    assert staff_client.post(f"/admin/flowr/machine/recover/{deleted.pk}/").status_code == 405

    response = staff_client.post(confirm)

    assert response.status_code == 302
    recovered = Machine.objects.get(pk=machine.pk)
    assert versioning.current_definition(recovered) == wanted
    assert Transition.objects.filter(machine=recovered).count() == 3
    assert Revision.objects.latest("pk").comment == "Recovered deleted machine 'Orders'."
    assert any("recovered with 4 states" in m for m in _messages(response))


def test_recover_refused_when_name_taken(admin_user):
    machine = _build_orders(admin_user)
    with reversion.create_revision():
        reversion.add_to_revision(machine)
        machine.delete()
    builder.create_machine("orders", "Orders")
    deleted = Version.objects.get_deleted(Machine).get()
    with pytest.raises(versioning.RevisionError, match="Another machine is now called 'Orders'"):
        versioning.recover(deleted, user=admin_user)


def test_machine_with_instances_cannot_be_deleted_but_can_be_archived(admin_user, staff_client):
    machine = _build_orders(admin_user)
    machine.publish(admin_user)
    machine.start(admin_user)
    response = staff_client.post(f"/admin/flowr/machine/{machine.pk}/delete/", {"post": "yes"},
                                 follow=True)
    assert response.status_code == 200
    assert any("has instances and cannot be deleted" in m for m in _messages(response))
    response = staff_client.post("/admin/flowr/machine/", {
        "action": "delete_selected", "_selected_action": [machine.pk], "post": "yes"},
        follow=True)
    assert any("cannot be deleted; archive" in m for m in _messages(response))
    assert Machine.objects.filter(pk=machine.pk).exists()

    response = staff_client.post("/admin/flowr/machine/", {
        "action": "archive_machines", "_selected_action": [machine.pk]}, follow=True)
    machine.refresh_from_db()
    assert machine.archived
    assert any("Archived 'Orders'" in m for m in _messages(response))
    assert Revision.objects.latest("pk").comment == "Archived machine 'Orders'."
    staff_client.post("/admin/flowr/machine/", {
        "action": "unarchive_machines", "_selected_action": [machine.pk]})
    machine.refresh_from_db()
    assert not machine.archived


def test_machine_list_shows_import_export_recover_and_add(staff_client):
    html = staff_client.get("/admin/flowr/machine/").content.decode()
    for href in ["/admin/flowr/machine/import/", "/admin/flowr/machine/export/",
                 "/admin/flowr/machine/recover/", "/admin/flowr/machine/add/"]:
        assert f'href="{href}' in html or f"href='{href}" in html, href
    assert "Recover deleted machines" in html


def test_revert_refused_when_a_settings_form_changed(admin_user):
    machine = _build_orders(admin_user)
    target = _latest_version(machine)
    with builder.revision(admin_user, "Remove Rejected"):
        builder.remove_state(_state(machine, "Rejected"))
    orders = get_rule_set("orders")
    unregister("orders")

    class StricterApproval(forms.Form):
        max_amount = forms.IntegerField(min_value=0)
        approver = forms.CharField()

    rules = dict(orders.rules)
    rules["Approved"] = type("Approved", (rules["Approved"],), {"settings_form": StricterApproval})
    register(RuleSet("orders", "Orders", root="Draft", rules=list(rules.values())))

    with pytest.raises(versioning.RevisionError, match="approver"):
        versioning.revert(machine, target, user=admin_user)
    assert not machine.states.filter(name="Rejected").exists()


def test_recover_and_archive_need_permissions(admin_user, django_user_model):
    machine = _build_orders(admin_user)
    with reversion.create_revision():
        reversion.add_to_revision(machine)
        machine.delete()
    deleted = Version.objects.get_deleted(Machine).get()
    other = builder.create_machine("orders", "Other")
    changer = _staff(django_user_model, "changer", "view_machine", "change_machine")
    changer.cookies["csrftoken"] = "x" * 32
    token = {"csrfmiddlewaretoken": "x" * 32}
    assert changer.get(f"/admin/flowr/machine/recover/{deleted.pk}/").status_code == 403
    assert changer.post(f"/admin/flowr/machine/recover/{deleted.pk}/confirm/",
                        token).status_code == 403
    assert not Machine.objects.filter(pk=machine.pk).exists()
    viewer = _staff(django_user_model, "viewer", "view_machine")
    viewer.cookies["csrftoken"] = "x" * 32
    viewer.post("/admin/flowr/machine/", dict(token, action="archive_machines",
                                              _selected_action=[other.pk]))
    other.refresh_from_db()
    assert not other.archived


def test_a_revert_failing_halfway_rolls_back_everything(admin_user, monkeypatch):
    machine = _build_orders(admin_user)
    target = _latest_version(machine)
    _edit_after(machine, admin_user)
    before = versioning.current_definition(machine)
    count = Revision.objects.count()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Transition.objects, "bulk_create", boom)
    with pytest.raises(RuntimeError):
        versioning.revert(machine, target, user=admin_user)
    assert versioning.current_definition(machine) == before
    assert Revision.objects.count() == count
