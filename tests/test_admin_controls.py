"""Operator controls in the admin: the panel, confirmation pages, bulk actions, reports."""
import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.urls import reverse

from flowr import controls, engine
from tests.test_admin_instances import LIST, change_url, fresh, message, texts

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def control_url(instance, name):
    return reverse("admin:flowr_instance_control", args=[instance.pk, name])


def bulk_url(name):
    return reverse("admin:flowr_instance_control_bulk", args=[name])


def make_user(django_user_model, name, *codenames):
    user = django_user_model.objects.create_user(name, password="pw", is_staff=True)
    for codename in ("view_instance", *codenames):
        user.user_permissions.add(Permission.objects.get(content_type__app_label="flowr",
                                                         codename=codename))
    return user


def assert_replays(instance):
    row = fresh(instance)
    assert engine.replay(row.history.all()) == engine.position_of(row)
    return row


@pytest.fixture
def order(demo_machines, admin_user):
    """An order at Submitted, with a business key and a title."""
    instance = demo_machines["orders"].start(user=admin_user, business_key="ORD-7",
                                             title="Seven chairs")
    instance.step()
    return instance


def confirm(client, instance, name, position=None, **data):
    position = instance.step_count if position is None else position
    return client.post(control_url(instance, name), {"position": position, "confirm": "1",
                                                     **data})


# -- the panel ----------------------------------------------------------------------------

def test_panel_shows_the_controls_the_user_may_use(client, order, django_user_model):
    client.force_login(make_user(django_user_model, "viewer"))
    assert "operator-controls" not in client.get(change_url(order)).content.decode()
    client.force_login(make_user(django_user_model, "pauser", "suspend_instance"))
    html = client.get(change_url(order)).content.decode()
    assert "Operator controls" in html and f'action="{control_url(order, "suspend")}"' in html
    assert "Suspend…</button>" in html and "Cancel…" not in html
    # Resume is there but disabled, with the reason.
    assert 'disabled title="Instance Seven chairs (ORD-7) is active; only suspended ' \
           'instances can be resumed."' in html


def test_suspended_instance_offers_resume_and_no_step_buttons(staff_client, order):
    controls.suspend(order, reason="audit")
    html = staff_client.get(change_url(order)).content.decode()
    assert "it takes no steps until it is resumed" in html
    assert "flowr-step-form" not in html
    assert "Resume…</button>" in html
    assert 'disabled title="Instance Seven chairs (ORD-7) is suspended; only active' in html
    row_html = staff_client.get(LIST).content.decode()
    assert f'flowr-step-{order.pk}"' not in row_html  # no step form for its row
    response = staff_client.post(reverse("admin:flowr_instance_step", args=[order.pk]),
                                 {"position": fresh(order).step_count, "to": "approved"})
    assert "is suspended; resume it first" in message(response)
    assert fresh(order).state_name == "Submitted"


# -- single controls ----------------------------------------------------------------------

def test_cancel_through_its_confirmation_page(staff_client, order, admin_user):
    page = staff_client.post(control_url(order, "cancel"), {"position": order.step_count})
    html = page.content.decode()
    assert page.status_code == 200
    assert "Cancel instance Seven chairs (ORD-7)" in html and 'name="reason"' in html
    assert 'value="Cancel the instance"' in html
    assert fresh(order).status == "active"  # the page changes nothing
    refused = confirm(staff_client, order, "cancel", reason="  ")
    assert refused.status_code == 200 and "errornote" in refused.content.decode()
    assert fresh(order).status == "active"
    response = confirm(staff_client, order, "cancel", reason="Customer withdrew")
    assert response.status_code == 302 and response["Location"] == change_url(order)
    assert message(response) == "Instance Seven chairs (ORD-7): Cancelled: Customer withdrew"
    row = assert_replays(order)
    entry = row.history.first()
    assert (row.status, entry.kind, entry.note, entry.user) == (
        "cancelled", "cancel", "Customer withdrew", admin_user)
    log = LogEntry.objects.get(object_id=str(order.pk))
    assert (log.object_repr, log.user, log.get_change_message()) == (
        "Seven chairs (ORD-7)", admin_user, "Cancelled: Customer withdrew")


@pytest.mark.parametrize("name", ["cancel", "suspend", "resume", "move", "undo"])
def test_every_control_url_is_post_only_and_needs_its_permission(client, order, name,
                                                                 django_user_model):
    client.force_login(make_user(django_user_model, "viewer", "change_instance",
                                 "step_instance"))
    assert client.get(control_url(order, name)).status_code == 405
    assert client.get(bulk_url(name)).status_code == 405
    forged = {"position": order.step_count, "confirm": "1", "reason": "r", "target": "draft",
              "checked": "draft", "run_hooks": "no", "ids": [order.pk],
              f"position_{order.pk}": order.step_count}
    assert client.post(control_url(order, name), forged).status_code == 403
    assert client.post(bulk_url(name), forged).status_code == 403
    row = fresh(order)
    assert (row.status, row.last_seq) == ("active", 1)


def test_control_urls_refuse_unknown_names_ids_and_missing_positions(staff_client, order):
    assert staff_client.post(control_url(order, "explode"), {"position": 1}).status_code == 404
    bad = reverse("admin:flowr_instance_control", args=["not-a-uuid%00", "cancel"])
    assert staff_client.post(bad, {"position": 1}).status_code == 404
    response = staff_client.post(control_url(order, "cancel"), {"position": "x" * 30})
    assert response.status_code == 302 and "form was incomplete" in message(response)
    response = staff_client.post(bulk_url("cancel"), {"ids": ["nope", "%00"], "confirm": 1})
    assert response.status_code == 302 and "No instances were selected" in message(response)


def test_a_stale_confirmation_page_is_refused(staff_client, order):
    seen = order.step_count
    fresh(order).step(to="Approved")
    response = confirm(staff_client, order, "suspend", position=seen, reason="late")
    assert response.status_code == 302
    assert message(response).startswith("Already moved: Instance Seven chairs (ORD-7) has "
                                        "already moved on")
    assert fresh(order).status == "active" and not LogEntry.objects.exists()


def test_wrong_status_is_refused_with_the_reason(staff_client, order):
    response = confirm(staff_client, order, "resume", reason="why not")
    assert "is active; only suspended instances can be resumed" in message(response)
    controls.cancel(order, reason="gone")
    response = confirm(staff_client, fresh(order), "suspend", reason="late")
    assert "is cancelled; only active instances can be suspended" in message(response)
    assert fresh(order).history.count() == 3


def test_move_asks_for_target_and_hooks_and_shows_guard_warnings(staff_client, demo_machines):
    ticket = demo_machines["support"].start(business_key="T-9")
    ticket.step()
    page = staff_client.post(control_url(ticket, "move"), {"position": ticket.step_count})
    html = page.content.decode()
    assert '<select name="target"' in html and "— choose a state —" in html
    assert 'type="radio" name="run_hooks" value="yes"' in html and "checked" not in \
        html.split('name="run_hooks"')[1].split(">")[0]
    assert 'name="confirm"' not in html  # first check a target's warnings
    key = engine.compiled(ticket.version).resolve("Closed")
    checked = staff_client.post(control_url(ticket, "move"), {
        "position": ticket.step_count, "target": key, "check": "1", "reason": "kept"})
    html = checked.content.decode()
    assert "Guard warning — Entering &#x27;Closed&#x27;: the customer has not confirmed" in html
    assert 'name="checked" value="%s"' % key in html and 'value="Move the instance"' in html
    assert ">\nkept</textarea>" in html  # what was typed so far is kept
    # Confirming another target than the one checked only shows that one's warnings.
    new = engine.compiled(ticket.version).resolve("New")
    again = confirm(staff_client, ticket, "move", target=new, checked=key, run_hooks="yes",
                    reason="r")
    assert again.status_code == 200 and fresh(ticket).state_name == "Open"
    missing_hooks = confirm(staff_client, ticket, "move", target=key, checked=key, reason="r")
    assert missing_hooks.status_code == 200 and fresh(ticket).state_name == "Open"
    done = confirm(staff_client, ticket, "move", target=key, checked=key, run_hooks="no",
                   reason="Customer confirmed by phone")
    assert done.status_code == 302
    assert message(done) == ("Instance T-9: Moved from Open to Closed (hooks skipped): "
                             "Customer confirmed by phone")
    row = assert_replays(ticket)
    assert (row.state_name, row.status, row.outcome) == ("Closed", "finished", "closed")
    assert row.history.first().data["guard_warnings"][0].startswith("Entering 'Closed'")


def test_undo_from_the_instance_page(staff_client, order):
    order.step(to="Approved")
    html = staff_client.get(change_url(order)).content.decode()
    assert "Undo last step…</button>" in html
    response = confirm(staff_client, order, "undo", reason="Approved too early")
    assert message(response) == ("Instance Seven chairs (ORD-7): Undid the step Submitted → "
                                 "Approved: Approved too early")
    row = assert_replays(order)
    assert row.state_name == "Submitted" and row.task_state == {}
    html = staff_client.get(change_url(order)).content.decode()
    assert ("The latest entry of instance Seven chairs (ORD-7)&#x27;s history is an undo "
            "(Approved → Submitted), not a step") in html
    response = confirm(staff_client, row, "undo", reason="again")
    assert "not a step" in message(response) and fresh(order).last_seq == row.last_seq


# -- bulk -----------------------------------------------------------------------------------

def run_action(client, action, instances):
    return client.post(LIST, {"action": action,
                              "_selected_action": [i.pk for i in instances]})


def test_bulk_suspend_with_mixed_validity_ends_on_the_report(staff_client, demo_machines,
                                                             admin_user):
    machine = demo_machines["orders"]
    good = [machine.start(business_key=f"B-{n}") for n in range(3)]
    cancelled = machine.start(title="Already gone")
    controls.cancel(cancelled, reason="x")
    page = run_action(staff_client, "suspend_selected", [*good, cancelled])
    html = page.content.decode()
    assert page.status_code == 200 and "Suspend 4 selected instances" in html
    assert "Selected instances (3 of 4 can be suspended)" in html
    assert "No: Instance Already gone is cancelled; only active instances" in html
    assert 'value="Suspend 3 instances"' in html
    moved = good[0]
    seen = moved.step_count
    fresh(moved).step()  # someone steps one of them while the page is open
    data = {"ids": [i.pk for i in [*good, cancelled]], "confirm": "1", "reason": "Audit",
            **{f"position_{i.pk}": i.step_count for i in [*good, cancelled]}}
    data[f"position_{moved.pk}"] = seen
    response = staff_client.post(bulk_url("suspend"), data)
    assert response.status_code == 302 and "/report/" in response["Location"]
    assert "Suspended 2 of 4 instances; 2 refused." in " ".join(texts(response))
    report = staff_client.get(response["Location"]).content.decode()
    assert report.count("flowr-report-refused") == 2 and "B-1" in report
    assert "already moved on" in report and "Already gone" in report
    assert [fresh(i).status for i in good] == ["active", "suspended", "suspended"]
    assert LogEntry.objects.filter(change_message__contains="Suspended: Audit").count() == 2
    for instance in good:
        assert_replays(instance)


def test_bulk_move_lists_every_state_and_refuses_other_versions(staff_client, demo_machines):
    orders = [demo_machines["orders"].start() for _ in range(2)]
    ticket = demo_machines["support"].start()
    page = run_action(staff_client, "move_selected_to_state", [*orders, ticket])
    html = page.content.decode()
    assert "Shipped (Order approval)" in html and "Closed (Support ticket)" in html
    key = engine.compiled(orders[0].version).resolve("Shipped")
    data = {"ids": [i.pk for i in [*orders, ticket]], "target": key, "run_hooks": "yes",
            "reason": "Shipped by hand", **{f"position_{i.pk}": i.step_count
                                            for i in [*orders, ticket]}}
    checked = staff_client.post(bulk_url("move"), {**data, "check": "1"})
    html = checked.content.decode()
    assert "is not a state of the version instance" in html and "(2 of 3 can be moved)" in html
    response = staff_client.post(bulk_url("move"), {**data, "checked": key, "confirm": "1"})
    assert "Moved 2 of 3 instances; 1 refused." in " ".join(texts(response))
    assert [fresh(i).state_name for i in orders] == ["Shipped", "Shipped"]
    assert fresh(ticket).state_name == "New"


def test_bulk_undo_and_cancel(staff_client, demo_machines):
    machine = demo_machines["orders"]
    stepped, started = machine.start(), machine.start()
    stepped.step()
    page = run_action(staff_client, "undo_selected", [stepped, started])
    assert "(1 of 2 can be undone)" in page.content.decode()
    data = {"ids": [stepped.pk, started.pk], "confirm": "1", "reason": "r",
            f"position_{stepped.pk}": stepped.step_count,
            f"position_{started.pk}": started.step_count}
    response = staff_client.post(bulk_url("undo"), data)
    assert "Undone 1 of 2 instances; 1 refused." in " ".join(texts(response))
    assert fresh(stepped).state_name == "Draft"
    data.update({f"position_{stepped.pk}": fresh(stepped).step_count})
    response = staff_client.post(bulk_url("cancel"), data)
    assert "Cancelled 2 of 2 instances." in " ".join(texts(response))


def test_bulk_actions_need_their_permission(client, order, django_user_model):
    client.force_login(make_user(django_user_model, "viewer", "change_instance"))
    response = run_action(client, "cancel_selected", [order])
    assert response.status_code == 302 and fresh(order).status == "active"
    actions = client.get(LIST).context["action_form"].fields["action"].choices
    assert not {"cancel_selected", "suspend_selected", "undo_selected"} & {
        name for name, _ in actions}
