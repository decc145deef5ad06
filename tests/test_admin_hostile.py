"""Malformed ids and values in the admin: each case of issue 11 answers 404 or a message
and changes nothing (the crawler, tests/test_crawler.py, tries every URL generically)."""
import uuid

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from flowr import builder
from flowr.admin._ids import get_or_404, parse_pk, parse_pks
from flowr.models import Instance, Machine, MachineVersion, State

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]
MALFORMED = ["abc", "not-a-uuid", "-", "\x00", "x" * 5000, "99999999999999999999", ""]


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def snapshot():
    return (list(Instance.objects.order_by("pk").values("pk", "state_key", "step_count",
                                                        "version_id", "status")),
            list(State.objects.order_by("pk").values()), Machine.objects.count())


@pytest.mark.parametrize("value", MALFORMED)
def test_parse_pk_refuses_what_the_column_cannot_hold(value):
    assert parse_pk(Machine, value) is None  # an integer key
    assert parse_pk(Instance, value) is None  # a UUID key
    assert parse_pks(Instance, [str(uuid.uuid4()), value]) is None


def test_parse_pk_accepts_real_ids(example_machine):
    instance = example_machine.start()
    assert parse_pk(Machine, str(example_machine.pk)) == example_machine.pk
    assert parse_pk(Instance, str(instance.pk)) == instance.pk
    assert parse_pks(Instance, [str(instance.pk)]) == [instance.pk]
    assert get_or_404(Instance.objects.all(), str(instance.pk)) == instance


@pytest.mark.parametrize("value", ["abc", "%00", "99999999999999999999",
                                   "0c6f1d1e-7a45-4b8e-9a59-2f0a3f6c1b11"])
def test_export_json_of_a_malformed_or_unknown_machine_is_404(staff_client, value):
    assert staff_client.get(f"/admin/flowr/machine/{value}/export-json/").status_code == 404


@pytest.mark.parametrize("field", ["version", "target"])
@pytest.mark.parametrize("value", ["abc", "\x00", "99999999999999999999"])
def test_move_preview_and_confirm_with_malformed_ids(staff_client, example_machine, field,
                                                      value):
    instance = example_machine.start()
    before = snapshot()
    response = staff_client.get(reverse("admin:flowr_instance_move"), {field: value,
                                                                      "ids": instance.pk})
    assert response.status_code in (200, 302)
    response = staff_client.post(reverse("admin:flowr_instance_move_confirm"),
                                 {field: value, "ids": str(instance.pk)}, follow=True)
    assert response.status_code == 200
    if field == "target":  # the version to move to: refused with a message
        assert "has no such version to move to" in " ".join(messages_of(response))
    else:  # a malformed source version is ignored: the selected ids decide
        assert response.templates[0].name == "admin/flowr/instance/migrate.html"
    assert snapshot() == before


@pytest.mark.parametrize("name", ["connect", "disconnect"])
@pytest.mark.parametrize("value", ["abc", "\x00", "99999999999999999999", ""])
def test_builder_connect_and_disconnect_with_a_malformed_child(staff_client, example_machine,
                                                               name, value):
    e = example_machine.states.get(name="E")
    before = snapshot()
    url = reverse(f"admin:flowr_machine_state_{name}", args=[example_machine.pk, e.pk])
    response = staff_client.post(url, {"child": value}, follow=True)
    assert "Choose an existing state" in messages_of(response)[0]
    assert snapshot() == before


@pytest.mark.parametrize("model", ["instance", "machine"])
@pytest.mark.parametrize("value", ["not-a-uuid", "abc", "\x00", "99999999999999999999"])
def test_changelist_action_with_a_malformed_selection(staff_client, example_machine, model,
                                                      value):
    example_machine.start()
    before = snapshot()
    url = reverse(f"admin:flowr_{model}_changelist")
    action = "delete_selected" if model == "instance" else "archive_machines"
    response = staff_client.post(url, {"action": action, "_selected_action": value,
                                       "index": "0"}, follow=True)
    assert response.status_code == 200
    assert "is not a" in messages_of(response)[0] and "nothing was done" in \
        messages_of(response)[0]
    assert snapshot() == before


def test_changelist_action_of_another_app_is_guarded_too(staff_client, admin_user):
    response = staff_client.post(reverse("admin:auth_user_changelist"),
                                 {"action": "delete_selected", "_selected_action": "abc",
                                  "index": "0"}, follow=True)
    assert "not a user id; nothing was done" in messages_of(response)[0]
    assert type(admin_user).objects.filter(pk=admin_user.pk).exists()


@pytest.mark.parametrize("url", ["/admin/flowr/instance/?state=%00",
                                 "/admin/flowr/instance/?q=%00",
                                 "/admin/django_tasks_database/dbtaskresult/?queue_name=%00",
                                 "/admin/auth/user/?username=%00"])
def test_nul_in_a_list_parameter_is_the_incorrect_lookup_redirect(staff_client, url):
    response = staff_client.get(url)
    assert response.status_code == 302 and response["Location"].endswith("?e=1")


def test_state_rename_too_long_or_with_nul_is_refused(staff_client, example_machine):
    e = example_machine.states.get(name="E")
    url = reverse("admin:flowr_machine_state_edit", args=[example_machine.pk, e.pk])
    for name, expected in (("x" * 201, "at most 200 characters"), ("E\x00", "NUL")):
        response = staff_client.post(url, {"name": name}, follow=True)
        assert response.status_code == 200
        assert expected in " ".join(messages_of(response))
    assert State.objects.get(pk=e.pk).name == "E"
    with pytest.raises(builder.GraphError, match="at most 200"):
        builder.update_state(e, name="y" * 300)


def test_deleting_an_instance_with_a_failing_custom_store_is_not_a_500(
        staff_client, settings, example_machine, caplog, django_capture_on_commit_callbacks):
    from tests import custom_store

    settings.FLOWS_STATE_STORE = "tests.custom_store"
    instance = example_machine.start(task_state={"a": 1})

    def refuse(self, task_id):
        raise NotImplementedError("this store cannot delete")

    original = custom_store.StateStore.delete_state
    custom_store.StateStore.delete_state = refuse
    try:
        url = reverse("admin:flowr_instance_delete", args=[instance.pk])
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = staff_client.post(url, {"post": "yes"})
    finally:
        custom_store.StateStore.delete_state = original
    assert response.status_code == 302 and callbacks  # the deletion's after-COMMIT work ran
    assert not Instance.objects.filter(pk=instance.pk).exists()
    assert any("cannot delete" in record.getMessage() for record in caplog.records)


def test_malformed_version_filter_values_do_not_reach_the_database(staff_client,
                                                                    example_machine):
    version = MachineVersion.objects.get(machine=example_machine)
    for query in (f"version={version.pk}", "version=abc", "machine__id__exact=abc",
                  "machine__id__exact=abc&version=abc&state=%00"):
        response = staff_client.get(f"/admin/flowr/instance/?{query}")
        assert response.status_code in (200, 302), query
