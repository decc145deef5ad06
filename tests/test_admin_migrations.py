"""The admin's "Move to another version…": mapping step, per-instance preview, confirm,
the migration's result page, revert and continue; permissions, bad input, query counts."""
import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings

from flowr import builder
from flowr import migration_runner as runner
from flowr.admin import moves
from flowr.models import HistoryEntry, Instance, VersionMigration, VersionMigrationItem
from tests.test_migrations import row_counts

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]
MOVE_URL = "/admin/flowr/instance/move/"
CONFIRM_URL = "/admin/flowr/instance/move/confirm/"
DUMMY = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}


def _messages(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def _at(machine, *path, version=None):
    instance = machine.start(version=version)
    for name in path:
        instance.step(to=name)
    return Instance.objects.get(pk=instance.pk)


@pytest.fixture
def pruned(example_machine, admin_user):
    """v1 = A→C→(D|E), E→A; v2 = E pruned (no state of E's rule left): A→C→D."""
    v1 = example_machine.latest_version()
    builder.prune_state(example_machine.states.get(name="E"))
    return example_machine, v1, example_machine.publish(admin_user)


def _post_ids(instances, **extra):
    return {"ids": ",".join(str(i.pk) for i in instances), **extra}


def _page(client, data):
    response = client.post(MOVE_URL, data)
    assert response.status_code == 200
    return response.context, response.content.decode()


def test_action_maps_previews_confirms_then_reverts(pruned, staff_client, admin_user):
    machine, v1, v2 = pruned
    at_c = _at(machine, "C", version=v1)
    at_e = [_at(machine, "C", "E", version=v1) for _ in range(2)]
    e_key, a_key = at_e[0].state_key, machine.states.get(name="A").key
    before = row_counts()

    response = staff_client.post("/admin/flowr/instance/", {
        "action": "move_to_version", "_selected_action": [at_c.pk] + [i.pk for i in at_e]})
    html = response.content.decode()
    assert response.status_code == 200 and response.context["stage"] == "map"
    [row] = response.context["rows"]
    assert (row.name, row.count, row.choice.action) == ("E", 2, "")
    assert "No state of v2 has this key or rule: choose." in html
    assert "Kept by stable key: C (1)." in html

    data = _post_ids([at_c, *at_e], target=v2.pk, stage="preview")
    context, html = _page(staff_client, data)  # unmapped: stays on the mapping step
    assert context["stage"] == "map" and "choose where its 2 instances go" in html
    data[f"map-{e_key}"] = f"to:{a_key}"
    context, html = _page(staff_client, data)
    assert context["stage"] == "preview"
    assert context["counts"] == {"map": 3, "leave": 0, "cancel": 0, "refused": 0}
    assert html.count("<strong>Migrated</strong> → v2 “A”") == 2
    assert "<strong>Migrated</strong> → v2 “C”" in html
    assert row_counts() == before  # the action, mapping and preview wrote nothing

    data.update(digest=context["digest"], note="E is gone")
    response = staff_client.post(CONFIRM_URL, data)
    migration = VersionMigration.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/admin/flowr/versionmigration/{migration.pk}/change/"
    assert (migration.status, migration.migrated, migration.note) == ("done", 3, "E is gone")
    assert Instance.objects.get(pk=at_e[0].pk).state_name == "A"
    entry = HistoryEntry.objects.filter(kind=HistoryEntry.MIGRATE, instance=at_e[0]).get()
    assert entry.note == ("Migration #%d: version 1 'E' → version 2 'A'. E is gone"
                          % migration.pk)

    page = staff_client.get(response["Location"]).content.decode()
    assert "3 of 3</strong> instances handled" in page and 'http-equiv="refresh"' not in page
    revert_url = f"/admin/flowr/versionmigration/{migration.pk}/revert/"
    assert revert_url in page
    Instance.objects.get(pk=at_c.pk).step(to="D")
    preview = staff_client.get(revert_url).content.decode()
    assert "<strong>2</strong> instances will go back" in preview
    assert "<strong>1</strong> instance changed since the migration" in preview
    response = staff_client.post(revert_url, follow=True)
    assert "Reverted migration #%d: 2 instance(s) went back; 1 changed since" % migration.pk \
        in _messages(response)[0]
    assert {i.version_id for i in Instance.objects.filter(pk__in=[i.pk for i in at_e])} == {
        v1.pk}
    assert "list them" in response.content.decode()


def test_a_refused_mapping_is_shown_with_its_reason_and_nothing_is_written(
        demo_machines, django_user_model):
    machine = demo_machines["orders"]
    v1 = machine.latest_version()
    builder.remove_state(machine.states.get(name="Needs rework"))
    v2 = machine.publish()
    instance = _at(machine, "Submitted", "Needs rework", version=v1)
    clerk = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    clerk.user_permissions.set(Permission.objects.filter(
        codename__in=["view_instance", "change_instance"]))
    client = Client()
    client.force_login(clerk)
    approved = machine.states.get(name="Approved").key
    before = row_counts()
    data = {"ids": str(instance.pk), "target": v2.pk, "stage": "preview",
            f"map-{instance.state_key}": f"to:{approved}"}
    context, html = _page(client, data)
    assert context["stage"] == "map"
    assert ("&#x27;Needs rework&#x27; cannot be mapped to &#x27;Approved&#x27;: Stepping into "
            "&#x27;Approved&#x27; needs the permission") in html
    response = client.post(CONFIRM_URL, {**data, "digest": "x"})
    assert response.status_code == 200 and response.context["stage"] == "map"
    assert row_counts() == before


def test_a_stale_preview_is_shown_again_and_nothing_moves(pruned, staff_client):
    machine, v1, v2 = pruned
    instance = _at(machine, "C", version=v1)
    context, _ = _page(staff_client, _post_ids([instance], target=v2.pk))
    assert context["stage"] == "preview"  # nothing to map: straight to the preview
    digest = context["digest"]
    Instance.objects.get(pk=instance.pk).step(to="D")
    before = row_counts()
    response = staff_client.post(CONFIRM_URL, _post_ids([instance], target=v2.pk,
                                                        digest=digest))
    assert response.status_code == 200
    assert "Some instances changed since the preview" in response.content.decode()
    assert row_counts() == before


def test_a_large_migration_runs_as_a_task_and_its_page_refreshes(pruned, staff_client,
                                                                 monkeypatch):
    machine, v1, v2 = pruned
    instances = [_at(machine, "C", version=v1) for _ in range(3)]
    monkeypatch.setattr(moves, "INLINE_LIMIT", 2)
    context, html = _page(staff_client, {"version": v1.pk, "target": v2.pk})
    assert "runs in batches as a background task" in html
    with override_settings(TASKS=DUMMY):
        response = staff_client.post(CONFIRM_URL, {"version": v1.pk, "target": v2.pk,
                                                   "digest": context["digest"]}, follow=True)
    migration = VersionMigration.objects.get()
    assert migration.status == "queued" and migration.task_id
    page = response.content.decode()
    assert "is queued" in _messages(response)[0]
    assert 'http-equiv="refresh"' in page and "waiting for a worker" in page
    assert Instance.objects.filter(version=v1).count() == 3
    runner.run(migration.pk)  # what the worker does
    page = staff_client.get(f"/admin/flowr/versionmigration/{migration.pk}/change/")
    assert 'http-equiv="refresh"' not in page.content.decode()
    assert all(Instance.objects.get(pk=i.pk).version == v2 for i in instances)


def test_a_failed_migration_page_offers_continue(pruned, staff_client, monkeypatch):
    machine, v1, v2 = pruned
    instance = _at(machine, "C", version=v1)
    from flowr import engine, migrations_api

    migration = runner.record_plan(migrations_api.plan_migration(machine, v2))
    monkeypatch.setattr(engine, "lock", lambda pk: 1 / 0)
    runner.run(migration.pk)
    monkeypatch.undo()
    url = f"/admin/flowr/versionmigration/{migration.pk}/"
    page = staff_client.get(url + "change/").content.decode()
    assert "The migration failed:</strong> ZeroDivisionError" in page
    assert "<strong>1</strong> still pending" in page
    assert staff_client.get(url + "continue/").status_code == 405
    response = staff_client.post(url + "continue/", follow=True)
    assert "Continuing migration" in _messages(response)[0]
    assert Instance.objects.get(pk=instance.pk).version == v2


def _user(django_user_model, *codenames):
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def test_permissions_post_only_and_csrf(pruned, django_user_model, admin_user):
    machine, v1, v2 = pruned
    instance = _at(machine, "C", version=v1)
    from flowr import migrations_api

    migration = migrations_api.migrate(migrations_api.plan_migration(machine, v2))
    viewer = _user(django_user_model, "view_instance", "view_versionmigration")
    viewer.cookies["csrftoken"] = "x" * 32
    token = {"csrfmiddlewaretoken": "x" * 32}
    assert viewer.get(MOVE_URL, {"ids": instance.pk}).status_code == 403
    assert viewer.post(CONFIRM_URL, {"ids": instance.pk, **token}).status_code == 403
    revert = f"/admin/flowr/versionmigration/{migration.pk}/revert/"
    assert viewer.get(revert).status_code == 403
    assert viewer.post(revert, token).status_code == 403
    assert viewer.get(f"/admin/flowr/versionmigration/{migration.pk}/change/").status_code \
        == 200
    assert "move_to_version" not in viewer.get("/admin/flowr/instance/").content.decode()
    admin = Client(enforce_csrf_checks=True)
    admin.force_login(admin_user)
    assert admin.get(CONFIRM_URL).status_code == 405
    assert admin.post(revert).status_code == 403  # no CSRF token
    assert Instance.objects.get(pk=instance.pk).version == v2


@pytest.mark.parametrize("query", [
    {"ids": "not-a-uuid"}, {"version": "abc"}, {"version": "99999"}, {"machine": "x%00"},
    {"machine": "99999"}, {"ids": "00000000-0000-0000-0000-000000000000"},
    {"version": "{v1}", "target": "abc"}, {"version": "{v1}", "target": "99999"},
    {"version": "{v1}", "page": "-3", "stage": "preview"}, {"version": "{v1}", "page": "9" * 40},
    {"version": "{v1}", "map-zzz": "to:nowhere", "stage": "preview"},
])
def test_bad_input_never_answers_500(pruned, staff_client, query):
    machine, v1, v2 = pruned
    _at(machine, "C", "E", version=v1)
    query = {k: v.replace("{v1}", str(v1.pk)) for k, v in query.items()}
    for response in (staff_client.get(MOVE_URL, query), staff_client.post(CONFIRM_URL, query)):
        assert response.status_code in (200, 302, 404)


def test_migration_pages_answer_bad_ids_with_404(staff_client):
    for url in ("/admin/flowr/versionmigration/abc/change/",
                "/admin/flowr/versionmigration/999/change/",
                "/admin/flowr/versionmigration/999/revert/"):
        assert staff_client.get(url).status_code in (302, 404)


def test_preview_queries_stay_constant(pruned, staff_client):
    machine, v1, v2 = pruned
    _at(machine, "C", version=v1)
    data = {"version": v1.pk, "target": v2.pk}
    staff_client.get(MOVE_URL, data)  # compiles the versions once per process
    with CaptureQueriesContext(connection) as few:
        staff_client.get(MOVE_URL, data)
    for _ in range(6):
        _at(machine, "C", version=v1)
        _at(machine, "C", "E", version=v1)
    with CaptureQueriesContext(connection) as many:
        response = staff_client.get(MOVE_URL, data)
    assert response.context["rows"][0].count == 6
    assert len(many.captured_queries) == len(few.captured_queries)


def test_migration_page_queries_stay_constant(pruned, staff_client):
    from flowr import migrations_api

    machine, v1, v2 = pruned

    def page_queries(count):
        for _ in range(count):
            _at(machine, "C", version=v1)
        migration = migrations_api.migrate(migrations_api.plan_migration(machine, v2))
        with CaptureQueriesContext(connection) as queries:
            assert staff_client.get(f"/admin/flowr/versionmigration/{migration.pk}/change/"
                                    ).status_code == 200
        return len(queries.captured_queries)

    assert page_queries(1) == page_queries(8)
    assert VersionMigrationItem.objects.count() == 9
