"""Running instances and versions: edits never disturb them; moving them between versions
(engine.move, versioning.plan_move) and the admin's move action (now a migration with a
mapping step: see test_admin_migrations.py) with its permissions."""
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

def test_action_maps_previews_then_confirm_records_a_migration(two_versions, staff_client):
    machine, v1, v2 = two_versions
    at_c = _at(machine, "C", version=v1)
    at_e = _at(machine, "C", "E", version=v1)
    response = staff_client.post("/admin/flowr/instance/", {
        "action": "move_to_version", "_selected_action": [at_c.pk, at_e.pk]})
    html = response.content.decode()
    assert response.status_code == 200
    assert "Nothing has moved yet" in html and "Not in v2" in html
    ids = f"{at_c.pk},{at_e.pk}"
    data = {"ids": ids, "target": v2.pk, "stage": "preview", f"map-{at_e.state_key}": "leave"}
    response = staff_client.post(MOVE_URL, data)
    assert response.context["counts"] == {"map": 1, "leave": 1, "cancel": 0, "refused": 0}
    assert "Confirm: migrate 1" in response.content.decode()
    assert Instance.objects.get(pk=at_c.pk).version == v1  # nothing moved by the preview

    response = staff_client.post(CONFIRM_URL, {**data, "digest": response.context["digest"]})

    assert response.status_code == 302 and "/versionmigration/" in response["Location"]
    assert Instance.objects.get(pk=at_c.pk).version == v2
    assert Instance.objects.get(pk=at_e.pk).version == v1
    [message] = _messages(response)
    assert message.endswith(": 1 migrated, 0 cancelled, 1 left on their version, 0 refused.")


def test_preview_of_all_instances_of_a_version_with_constant_queries(two_versions,
                                                                     staff_client):
    machine, v1, v2 = two_versions
    _at(machine, "C", version=v1)
    staff_client.get(MOVE_URL, {"version": v1.pk, "target": v2.pk})  # warm the caches
    with CaptureQueriesContext(connection) as few:
        small = staff_client.get(MOVE_URL, {"version": v1.pk, "target": v2.pk})
    for _ in range(5):
        _at(machine, "C", version=v1)
    with CaptureQueriesContext(connection) as many:
        large = staff_client.get(MOVE_URL, {"version": v1.pk, "target": v2.pk})
    assert small.status_code == large.status_code == 200
    assert large.context["counts"]["map"] == 6
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
    data = {"ids": str(instance.pk), "target": v2.pk, "csrfmiddlewaretoken": "x" * 32}
    viewer = _staff(django_user_model, "view_instance")
    viewer.cookies["csrftoken"] = "x" * 32
    assert viewer.get(MOVE_URL, {"ids": instance.pk}).status_code == 403
    assert viewer.post(CONFIRM_URL, data).status_code == 403
    changelist = viewer.get("/admin/flowr/instance/").content.decode()
    assert "move_to_version" not in changelist

    django_user_model.objects.filter(username="clerk").delete()
    clerk = _staff(django_user_model, "view_instance", "change_instance")
    data["digest"] = clerk.get(MOVE_URL, data).context["digest"]
    assert clerk.get(CONFIRM_URL).status_code == 405
    assert clerk.post(CONFIRM_URL, data).status_code == 403  # no CSRF cookie
    assert Instance.objects.get(pk=instance.pk).version == v1
    clerk.cookies["csrftoken"] = "x" * 32
    assert clerk.post(CONFIRM_URL, data).status_code == 302
    assert Instance.objects.get(pk=instance.pk).version == v2
