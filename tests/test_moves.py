"""Running instances and versions: edits never disturb them; moving them between versions
(dry run, confirm, refusals with reasons, history, undo) and the move action's permissions."""
import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.db import connection
from reversion.models import Version

from flowr import builder, engine, versioning
from flowr.models import HistoryEntry, Instance

# Database-sensitive (explicit primary keys on restore, reversion casts, row locks):
# also run in the PostgreSQL pass.
pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

MOVE_URL = "/admin/flowr/instance/move/"
CONFIRM_URL = "/admin/flowr/instance/move/confirm/"


def _messages(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def _names(instance):
    instance = Instance.objects.get(pk=instance.pk)
    return sorted(option.name for option in instance.allowed_steps())


def _at(machine, *path, version=None):
    """Start an instance on `version` and step it along `path` (state names)."""
    instance = machine.start(version=version)
    for name in path:
        instance.step(to=name)
    return Instance.objects.get(pk=instance.pk)


@pytest.fixture
def two_versions(example_machine, admin_user):
    """v1 = A→C→(D|E), E→A (the example); v2 = the same with E pruned: A→C→D."""
    v1 = example_machine.latest_version()
    with builder.revision(admin_user, "Pruned E"):
        builder.prune_state(example_machine.states.get(name="E"))
    v2 = example_machine.publish(admin_user)
    assert v2.number == 2
    return example_machine, v1, v2


def test_edit_revert_and_republish_never_change_a_running_instance(example_machine, admin_user):
    machine = example_machine
    v1 = machine.latest_version()
    with builder.revision(admin_user, "Before edits"):
        builder.update_state(machine.states.get(name="C"), name="C")
    before_edits = Version.objects.get_for_object(machine).order_by("-pk").first()
    instance = _at(machine, "C")
    assert _names(instance) == ["D", "E"]

    with builder.revision(admin_user, "Pruned D, renamed C"):
        builder.prune_state(machine.states.get(name="D"))
        builder.update_state(machine.states.get(name="C"), name="Review")
    assert _names(instance) == ["D", "E"]
    v2 = machine.publish(admin_user)
    assert _names(instance) == ["D", "E"]
    versioning.revert(machine, before_edits, user=admin_user)
    assert _names(instance) == ["D", "E"]
    v3 = machine.publish(admin_user)
    assert (v3.number, v3.checksum) == (3, v1.checksum)  # the reverted graph, republished
    assert _names(instance) == ["D", "E"]

    engine.move(instance, v2, user=admin_user)
    assert _names(instance) == ["E"]  # only after the move does it see version 2


def test_move_success_refusal_history_and_undo(two_versions, admin_user):
    machine, v1, v2 = two_versions
    at_c = _at(machine, "C", version=v1)
    at_e = _at(machine, "C", "E", version=v1)
    plan = versioning.plan_move([at_c, at_e], v2)
    assert plan.movable == [at_c]
    assert plan.refused == [(at_e, "Its current state 'E' does not exist in version 2.")]
    assert [line for line in plan.diffs[0][1].lines()] == [
        "Removed state 'E' (flowr_example.E).", "Removed transition 'C' → 'E'.",
        "Removed transition 'E' → 'A'."]

    moved, refused = versioning.move_instances([at_c, at_e], v2, user=admin_user)

    assert [entry.instance_id for entry in moved] == [at_c.pk]
    assert "does not exist in version 2" in refused[0][1]
    at_c.refresh_from_db()
    at_e.refresh_from_db()
    assert (at_c.version, at_c.state_name) == (v2, "C")
    assert at_e.version == v1
    entry = at_c.history.order_by("-seq").first()
    assert (entry.kind, entry.from_name, entry.to_name, entry.version, entry.user) == (
        HistoryEntry.MOVE, "C", "C", v2, admin_user)
    assert not at_e.history.filter(kind=HistoryEntry.MOVE).exists()

    versioning.move_instances([at_c], v1, user=admin_user)  # undo: move back
    at_c.refresh_from_db()
    assert at_c.version == v1 and _names(at_c) == ["D", "E"]
    assert at_c.history.filter(kind=HistoryEntry.MOVE).count() == 2


def test_plan_refuses_instances_of_several_machines(two_versions, demo_machines):
    machine, v1, v2 = two_versions
    other = demo_machines["support"]
    mixed = [_at(machine, version=v1), other.start()]
    with pytest.raises(versioning.MoveError, match="different machines"):
        versioning.plan_move(mixed, v2)


# -- the admin action -------------------------------------------------------------------

def test_action_shows_dry_run_preview_then_confirm_moves(two_versions, staff_client):
    machine, v1, v2 = two_versions
    at_c = _at(machine, "C", version=v1)
    at_e = _at(machine, "C", "E", version=v1)
    response = staff_client.post("/admin/flowr/instance/", {
        "action": "move_to_version", "_selected_action": [at_c.pk, at_e.pk]})
    html = response.content.decode()
    assert response.status_code == 200
    assert "Dry run: nothing has moved yet" in html
    assert "Removed state &#x27;E&#x27;" in html
    assert "does not exist in version 2" in html
    assert "Move 1 instance to version 2" in html
    assert Instance.objects.get(pk=at_c.pk).version == v1  # nothing moved by the preview

    response = staff_client.post(CONFIRM_URL, {"ids": [at_c.pk, at_e.pk], "target": v2.pk})

    assert response.status_code == 302 and "/report/" in response["Location"]
    assert Instance.objects.get(pk=at_c.pk).version == v2
    assert Instance.objects.get(pk=at_e.pk).version == v1
    hint, summary = _messages(response)
    assert "move them back to version 1" in hint
    assert summary.startswith("Moved 1 of 2 instances; 1 refused.")
    report = staff_client.get(response["Location"]).content.decode()
    assert "Move to version 2 of &#x27;Example&#x27;: result" in report
    assert report.count("flowr-report-ok") == report.count("flowr-report-refused") == 1
    assert "does not exist in version 2" in report


def test_preview_of_all_instances_of_a_version_with_constant_queries(two_versions,
                                                                     staff_client):
    machine, v1, v2 = two_versions
    _at(machine, "C", version=v1)
    with CaptureQueriesContext(connection) as few:
        small = staff_client.get(MOVE_URL, {"version": v1.pk, "target": v2.pk})
    for _ in range(5):
        _at(machine, "C", version=v1)
    with CaptureQueriesContext(connection) as many:
        large = staff_client.get(MOVE_URL, {"version": v1.pk, "target": v2.pk})
    assert small.status_code == large.status_code == 200
    assert "6 of 6 can move" in large.content.decode()
    assert len(many.captured_queries) == len(few.captured_queries)


def test_selection_spanning_machines_is_refused_with_a_message(two_versions, demo_machines,
                                                               staff_client):
    machine, v1, v2 = two_versions
    ids = [_at(machine, version=v1).pk, demo_machines["support"].start().pk]
    response = staff_client.post("/admin/flowr/instance/", {
        "action": "move_to_version", "_selected_action": ids}, follow=True)
    assert any("different machines" in m for m in _messages(response))
    response = staff_client.post(CONFIRM_URL, {"ids": ids, "target": v2.pk}, follow=True)
    assert any("different machines" in m for m in _messages(response))
    assert not HistoryEntry.objects.filter(kind=HistoryEntry.MOVE).exists()


def _staff(django_user_model, *codenames):
    user = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def test_moving_needs_change_permission_post_and_csrf(two_versions, django_user_model):
    machine, v1, v2 = two_versions
    instance = _at(machine, "C", version=v1)
    data = {"ids": [instance.pk], "target": v2.pk, "csrfmiddlewaretoken": "x" * 32}
    viewer = _staff(django_user_model, "view_instance")
    viewer.cookies["csrftoken"] = "x" * 32
    assert viewer.get(MOVE_URL, {"ids": instance.pk}).status_code == 403
    assert viewer.post(CONFIRM_URL, data).status_code == 403
    changelist = viewer.get("/admin/flowr/instance/").content.decode()
    assert "move_to_version" not in changelist

    django_user_model.objects.filter(username="clerk").delete()
    clerk = _staff(django_user_model, "view_instance", "change_instance")
    assert clerk.get(CONFIRM_URL).status_code == 405
    assert clerk.post(CONFIRM_URL, {"ids": [instance.pk], "target": v2.pk}).status_code == 403
    assert Instance.objects.get(pk=instance.pk).version == v1
    clerk.cookies["csrftoken"] = "x" * 32
    assert clerk.post(CONFIRM_URL, data).status_code == 302
    assert Instance.objects.get(pk=instance.pk).version == v2
