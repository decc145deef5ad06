"""Instances in the admin: list buttons, instance page, stepping, bulk action, task state."""
import socket
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, Permission
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse
from django.utils import timezone

from flowr import builder, engine
from flowr.models import Instance
from flowr.rules import Rule, RuleSet, register
from flowr.sync import sync_rule_sets

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

LIST = reverse("admin:flowr_instance_changelist")


def change_url(instance):
    return reverse("admin:flowr_instance_change", args=[instance.pk])


def step_url(instance):
    return reverse("admin:flowr_instance_step", args=[instance.pk])


def task_state_url(instance):
    return reverse("admin:flowr_instance_task_state", args=[instance.pk])


def texts(response):
    """Messages stored by this response's request (the client does not follow redirects)."""
    return [str(m) for m in get_messages(response.wsgi_request)]


def message(response):
    """The message the response's request added last."""
    return texts(response)[-1]


def fresh(instance):
    return Instance.objects.get(pk=instance.pk)


def make_user(django_user_model, name, *codenames):
    user = django_user_model.objects.create_user(name, password="pw", is_staff=True)
    # The demo orders' Submitted state names the Order reviewers as its candidates.
    user.groups.add(Group.objects.get_or_create(name="Order reviewers")[0])
    for codename in codenames:
        app, _, code = codename.rpartition(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app,
                                                         codename=code))
    return user


@pytest.fixture
def orders(demo_machines, admin_user):
    """An orders instance (Draft) started by the admin."""
    return demo_machines["orders"].start(user=admin_user)


def at(instance, *names, user=None):
    for name in names:
        engine.step(instance, to=name, user=user)
    return instance


def post_step(client, instance, to=None, **extra):
    data = {"position": instance.step_count, **extra}
    if to is not None:
        data["to"] = engine.compiled(instance.version).resolve(to)
    return client.post(step_url(instance), data)


# -- the list -----------------------------------------------------------------------

def test_list_shows_columns_and_one_button_per_allowed_step(staff_client, orders, admin_user):
    submitted = at(orders.machine.start(), "Submitted")
    finished = at(orders.machine.start(), "Submitted", "Rejected")
    response = staff_client.get(LIST)
    html = response.content.decode()
    assert response.status_code == 200
    for text in ("Order approval", "v1", "Draft", "admin", "Start instances"):
        assert text in html
    # One child: a single "Next: …" button submitting the row's own POST form.
    assert f'form="flowr-step-{orders.pk}" name="to"' in html and "Next: Submitted" in html
    assert f'<form id="flowr-step-{orders.pk}" method="post" action="{step_url(orders)}">' in html
    # Several children: one button each; Rejected needs data, so it links to the page.
    for name in ("Approved", "Needs rework"):
        assert f">{name}</button>" in html
    assert f'{change_url(submitted)}#flowr-step-' in html and "Rejected…" in html
    # Finished: its status instead of buttons, and no row form.
    assert f'flowr-step-{finished.pk}"' not in html
    assert "flowr-status-finished" in html and '<span class="flowr-muted">finished</span>' in html


def test_list_button_steps_once_logs_and_returns_to_the_list(staff_client, orders, admin_user):
    response = post_step(staff_client, orders, next=LIST + "?status=active")
    assert response.status_code == 302 and response["Location"] == LIST + "?status=active"
    assert fresh(orders).state_name == "Submitted"
    assert "stepped from Draft to Submitted" in " ".join(texts(response))
    log = LogEntry.objects.get(object_id=str(orders.pk))
    assert log.user == admin_user and log.get_change_message() == \
        "Stepped from Draft to Submitted."


def test_step_button_for_each_of_several_choices(staff_client, orders):
    at(orders, "Submitted")
    response = post_step(staff_client, orders, to="Needs rework", note="please fix")
    assert response.status_code == 302 and response["Location"] == change_url(orders)
    entry = fresh(orders).history.first()
    assert (entry.from_name, entry.to_name, entry.note) == ("Submitted", "Needs rework",
                                                          "please fix")
    post_step(staff_client, fresh(orders))  # Rework has one child: no choice needed
    assert fresh(orders).state_name == "Submitted"


def test_a_stale_tab_is_refused_after_a_cycle(staff_client, demo_machines):
    """Two tabs show a ticket at Open; tab 1 steps Open → Waiting → Open; tab 2's stale
    "Waiting on customer" button is then refused, although the state is Open again."""
    ticket = at(demo_machines["support"].start(), "Open")
    stale = fresh(ticket)  # tab 2's page
    post_step(staff_client, fresh(ticket), to="Waiting on customer")
    post_step(staff_client, fresh(ticket), to="Open")
    assert fresh(ticket).state_name == "Open"
    response = post_step(staff_client, stale, to="Waiting on customer")
    assert message(response).startswith("Already moved: ")
    assert (fresh(ticket).state_name, fresh(ticket).step_count) == ("Open", 3)


def test_step_rejects_get_and_an_unsafe_next_url(staff_client, orders):
    assert staff_client.get(step_url(orders)).status_code == 405
    assert staff_client.get(task_state_url(orders)).status_code == 405
    response = post_step(staff_client, orders, next="https://evil.example/")
    assert response["Location"] == change_url(orders)


def test_step_without_position_changes_nothing(staff_client, orders):
    response = staff_client.post(step_url(orders), {"to": ""})
    assert fresh(orders).state_name == "Draft"
    assert "incomplete" in message(response)


def test_double_submission_steps_once(staff_client, orders):
    data = {"position": orders.step_count}
    first = staff_client.post(step_url(orders), data)
    second = staff_client.post(step_url(orders), data)
    assert "stepped from Draft to Submitted" in message(first)
    assert message(second).startswith("Already moved: ")
    assert "has already moved on: it is now at 'Submitted'" in message(second)
    assert fresh(orders).state_name == "Submitted"
    assert orders.history.count() == 2  # start + one step


def test_step_form_data_is_validated_and_stored(staff_client, orders):
    at(orders, "Submitted")
    page = staff_client.get(change_url(orders)).content.decode()
    assert 'name="data-reason"' in page  # Rejected's step form on the instance page
    refused = post_step(staff_client, orders, to="Rejected")
    assert "Stepping to 'Rejected' needs: Reason: This field is required." in message(refused)
    assert fresh(orders).state_name == "Submitted"
    post_step(staff_client, orders, to="Rejected", **{"data-reason": "Too expensive"})
    entry = fresh(orders).history.first()
    assert (entry.to_name, entry.data) == ("Rejected", {"reason": "Too expensive"})
    page = staff_client.get(change_url(orders)).content.decode()
    assert "Too expensive" in page and "it takes no more steps" in page


def test_guard_refusal_shows_its_reason_and_changes_nothing(staff_client, demo_machines):
    ticket = at(demo_machines["support"].start(), "Open", "Resolved")
    response = post_step(staff_client, ticket, to="Closed")
    assert "customer has not confirmed the fix yet" in message(response)
    assert fresh(ticket).state_name == "Resolved"
    assert ticket.history.count() == 3
    assert not LogEntry.objects.filter(object_id=str(ticket.pk)).exists()


def test_failing_hook_shows_its_message_and_changes_nothing(staff_client, admin_user):
    class Start(Rule):
        children = ["Explode"]

    class Explode(Rule):
        def on_enter(self, instance):
            instance.task_state["half"] = "written"
            raise RuntimeError("printer on fire")

    register(RuleSet("boom", "Boom", root=Start, rules=[Start, Explode]))
    sync_rule_sets()
    machine = builder.create_machine("boom", "Boom")
    builder.add_child(machine.root_state, "boom.Explode")
    machine.publish()
    instance = machine.start()
    response = post_step(staff_client, instance)
    assert "RuntimeError: printer on fire" in message(response)
    assert fresh(instance).state_name == "Start"
    assert engine.task_state_of(fresh(instance)) == {}


# -- permissions ----------------------------------------------------------------------

def test_view_only_staff_see_no_buttons_and_get_403(client, django_user_model, orders):
    client.force_login(make_user(django_user_model, "viewer", "flowr.view_instance"))
    html = client.get(LIST).content.decode()
    assert "Next: Submitted" not in html and "flowr-step-" not in html
    assert "Start instances" not in html
    page = client.get(change_url(orders)).content.decode()
    assert "not step it" in page and 'name="position"' not in page
    assert "Save task state" not in page
    assert post_step(client, orders).status_code == 403
    assert client.post(task_state_url(orders), {"task_state": "{}"}).status_code == 403
    assert client.post(reverse("admin:flowr_instance_start"), {}).status_code == 403
    assert fresh(orders).state_name == "Draft"


def test_change_permission_does_not_allow_stepping(client, django_user_model, orders):
    client.force_login(make_user(django_user_model, "editor", "flowr.view_instance",
                                 "flowr.change_instance"))
    assert post_step(client, orders).status_code == 403
    assert fresh(orders).state_name == "Draft"


def test_rule_permission_disables_the_button_and_refuses_the_step(client, django_user_model,
                                                                  orders):
    client.force_login(make_user(django_user_model, "clerk", "flowr.view_instance",
                                 "flowr.step_instance"))
    at(orders, "Submitted")
    html = client.get(LIST).content.decode()
    assert "needs the permission &#x27;flowr_demo.approve_order&#x27;" in html
    assert 'disabled title="Stepping into' in html
    page = client.get(change_url(orders)).content.decode()
    assert "needs the permission" in page
    response = post_step(client, orders, to="Approved")
    assert "needs the permission 'flowr_demo.approve_order'" in message(response)
    assert fresh(orders).state_name == "Submitted"


def test_manager_with_the_rule_permission_may_approve(client, django_user_model, orders):
    manager = make_user(django_user_model, "manager", "flowr.view_instance",
                        "flowr.step_instance", "flowr_demo.approve_order")
    client.force_login(manager)
    at(orders, "Submitted")
    post_step(client, orders, to="Approved")
    assert fresh(orders).state_name == "Approved"
    assert fresh(orders).history.first().user == manager


# -- the instance page ----------------------------------------------------------------

def test_instance_page_shows_state_history_task_state_and_diagram(staff_client, demo_machines,
                                                                   admin_user):
    ticket = at(demo_machines["support"].start(user=admin_user), "Open", "Waiting on customer",
                user=admin_user)
    response = staff_client.get(change_url(ticket))
    html = response.content.decode()
    assert response.status_code == 200
    assert f"Instance #{str(ticket.pk)[:8]} of Support ticket" in html
    assert "Next: Open" in html and f'name="position" value="{ticket.step_count}"' in html
    assert 'name="_save"' not in html  # read-only: no save buttons
    history = html[html.index('id="history"'):]
    assert history.index("Open → <strong>Waiting") < history.index("New → <strong>Open")
    assert "&quot;times_opened&quot;: 1" in html  # pretty-printed task state
    assert "<svg" in html and "flowr-diagram" in html


def test_instance_page_diagram_gets_current_and_visited(staff_client, demo_machines,
                                                        monkeypatch):
    ticket = at(demo_machines["support"].start(), "Open", "Resolved")
    calls = []

    def fake_svg(version, current=None, visited=()):
        calls.append((version.pk, current, set(visited)))
        return "<svg></svg>"

    monkeypatch.setattr("flowr.admin.instances.version_svg", fake_svg)
    staff_client.get(change_url(ticket))
    graph = engine.compiled(ticket.version)
    keys = {graph.resolve(n) for n in ("New", "Open", "Resolved")}
    assert calls == [(ticket.version_id, graph.resolve("Resolved"), keys)]


def test_instance_page_refuses_posts(staff_client, orders):
    assert staff_client.post(change_url(orders), {"state_name": "Shipped"}).status_code == 405
    assert fresh(orders).state_name == "Draft"


def test_task_state_edit_valid_and_invalid(staff_client, orders, admin_user):
    response = staff_client.post(task_state_url(orders), {"task_state": '{"amount": 12}'})
    assert response["Location"].endswith("#task-state")
    assert engine.task_state_of(fresh(orders)) == {"amount": 12}
    assert LogEntry.objects.filter(object_id=str(orders.pk),
                                   change_message="Edited the task state.").exists()
    bad = staff_client.post(task_state_url(orders), {"task_state": '{"amount": '})
    assert "not valid JSON" in message(bad)
    listed = staff_client.post(task_state_url(orders), {"task_state": "[1, 2]"})
    assert "must be a JSON object" in message(listed)
    assert engine.task_state_of(fresh(orders)) == {"amount": 12}
    page = staff_client.get(change_url(orders)).content.decode()
    assert "&quot;amount&quot;: 12" in page


def test_task_state_edit_unblocks_a_guard(staff_client, demo_machines):
    ticket = at(demo_machines["support"].start(), "Open", "Resolved")
    staff_client.post(task_state_url(ticket), {"task_state": '{"customer_confirmed": true}'})
    post_step(staff_client, fresh(ticket), to="Closed")
    assert fresh(ticket).status == Instance.FINISHED


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_store_down_shows_a_message_never_a_500(staff_client, demo_machines):
    ticket = at(demo_machines["support"].start(), "Open", "Waiting on customer")
    down = override_settings(FLOWS_STATE_STORE="flowr.statestore.redis_store",
                             FLOWS_REDIS_STATE_STORE_HOST="127.0.0.1",
                             FLOWS_REDIS_STATE_STORE_PORT=closed_port())
    with down:
        response = staff_client.get(change_url(ticket))
        assert response.status_code == 200
        assert "The task state cannot be shown" in response.content.decode()
        saved = staff_client.post(task_state_url(ticket), {"task_state": "{}"})
        assert saved.status_code == 302 and "Task state not saved" in message(saved)
        stepped = post_step(staff_client, ticket)  # Waiting.on_leave writes task state
        assert stepped.status_code == 302 and "could not be" in message(stepped)
    assert fresh(ticket).state_name == "Waiting on customer" and ticket.history.count() == 3


# -- start ----------------------------------------------------------------------------

def test_start_one_lands_on_the_instance(staff_client, demo_machines, admin_user):
    machine = demo_machines["orders"]
    start = reverse("admin:flowr_instance_start")
    form = staff_client.get(start + f"?machine={machine.pk}")
    assert form.status_code == 200 and f'value="{machine.pk}" selected' in form.content.decode()
    response = staff_client.post(start, {"machine": machine.pk, "count": 1})
    instance = Instance.objects.filter(started_by=admin_user).get()
    assert response["Location"] == change_url(instance)
    assert LogEntry.objects.filter(object_id=str(instance.pk)).count() == 1


def test_start_many_lands_on_the_filtered_list(staff_client, demo_machines):
    machine = demo_machines["support"]
    before = machine.instances.count()
    response = staff_client.post(reverse("admin:flowr_instance_start"),
                                 {"machine": machine.pk, "count": 5})
    assert response["Location"] == f"{LIST}?machine__id__exact={machine.pk}"
    assert machine.instances.count() == before + 5
    assert "Started 5 instances of 'Support ticket' (version 1)." in texts(response)
    too_many = staff_client.post(reverse("admin:flowr_instance_start"),
                                 {"machine": machine.pk, "count": 1000})
    assert too_many.status_code == 200 and machine.instances.count() == before + 5


# -- bulk action ----------------------------------------------------------------------

def bulk(client, instances, **extra):
    data = {"action": "step_selected", "_selected_action": [str(i.pk) for i in instances],
            **extra}
    return client.post(LIST, data)


def test_bulk_step_mixed_success_with_one_summary(staff_client, demo_machines, admin_user):
    machine = demo_machines["orders"]
    drafts = list(machine.instances.all())
    late = at(machine.start(), "Submitted")
    page = bulk(staff_client, [*drafts, late])
    html = page.content.decode()
    assert page.status_code == 200
    for name in ("Submitted", "Approved", "Needs rework", "Rejected"):
        assert f'value="{name}"' in html
    confirm = {"post": "yes", "target": "Submitted", "note": "batch",
               **{f"position_{i.pk}": i.step_count for i in [*drafts, late]}}
    response = bulk(staff_client, [*drafts, late], **confirm)
    assert response.status_code == 302 and "/report/" in response["Location"]
    [summary] = texts(response)
    assert summary == (f"Stepped {len(drafts)} of {len(drafts) + 1} instances; 1 refused. "
                       f"The report lists every instance.")
    report = staff_client.get(response["Location"])
    rows = report.context["report"].rows
    [refused] = [r for r in rows if not r.ok]
    assert len(rows) == len(drafts) + 1
    assert refused.label == late.label and refused.before == "Submitted"
    assert "cannot step from 'Submitted' to 'Submitted'" in refused.reason
    html = report.content.decode()
    assert "Refused: " in html and "flowr-report-table" in html
    assert all(fresh(i).state_name == "Submitted" for i in drafts)
    assert fresh(late).history.count() == 2
    assert LogEntry.objects.filter(change_message="Stepped from Draft to Submitted.").count() \
        == len(drafts)


def test_bulk_step_with_step_form_data_and_permission_reasons(client, django_user_model,
                                                             demo_machines):
    client.force_login(make_user(django_user_model, "clerk", "flowr.view_instance",
                                 "flowr.step_instance"))
    orders = [at(demo_machines["orders"].start(), "Submitted") for _ in range(2)]
    index = list(bulk(client, orders).context["data_forms"]).index("Rejected")
    refused = bulk(client, orders, post="yes", target="Approved")
    assert message(refused).startswith("Stepped 0 of 2 instances; 2 refused.")
    reasons = [row.reason for row in client.get(refused["Location"]).context["report"].rows]
    assert all("needs the permission" in reason for reason in reasons) and len(reasons) == 2
    invalid = bulk(client, orders, post="yes", target="Rejected")
    assert invalid.status_code == 200 and "This field is required" in invalid.content.decode()
    done = bulk(client, orders, post="yes", target="Rejected",
                **{f"data-{index}-reason": "duplicate"})
    assert texts(done) == ["Stepped 2 of 2 instances. The report lists every instance."]
    assert [fresh(o).history.first().data for o in orders] == [{"reason": "duplicate"}] * 2


def test_bulk_double_submission_steps_once(staff_client, orders):
    confirm = {"post": "yes", "target": "Submitted", f"position_{orders.pk}": orders.step_count}
    bulk(staff_client, [orders], **confirm)
    again = bulk(staff_client, [orders], **confirm)
    [row] = staff_client.get(again["Location"]).context["report"].rows
    assert "already moved on" in row.reason and orders.history.count() == 2


def test_bulk_action_needs_the_step_permission(client, django_user_model, orders):
    client.force_login(make_user(django_user_model, "editor", "flowr.view_instance",
                                 "flowr.change_instance"))
    html = client.get(LIST).content.decode()
    assert 'value="step_selected"' not in html
    bulk(client, [orders], post="yes", target="Submitted",
         **{f"position_{orders.pk}": orders.step_count})
    assert fresh(orders).state_name == "Draft"


# -- filters, search, expiry ----------------------------------------------------------

def test_filters_and_search(staff_client, demo_machines):
    orders = demo_machines["orders"]
    moved = at(orders.start(), "Submitted")
    old = orders.start()
    Instance.objects.filter(pk=old.pk).update(
        last_activity=timezone.now() - timedelta(hours=2))
    version = orders.latest_version()

    def ids(query):
        response = staff_client.get(LIST + query)
        return {str(i.pk) for i in response.context["cl"].result_list}

    submitted = engine.compiled(version).resolve("Submitted")
    assert ids(f"?state={submitted}") == {str(moved.pk)}
    assert ids(f"?version={version.pk}") == {str(i.pk) for i in orders.instances.all()}
    assert ids("?status=expired") == {str(old.pk)}
    assert str(old.pk) not in ids("?status=active")
    assert ids(f"?q={str(moved.pk)[:8]}") == {str(moved.pk)}
    assert ids(f"?q={moved.pk}") == {str(moved.pk)}


def test_expired_instance_shows_expired_and_cannot_step(staff_client, orders):
    Instance.objects.filter(pk=orders.pk).update(
        last_activity=timezone.now() - timedelta(hours=2))
    html = staff_client.get(LIST + "?status=expired").content.decode()
    assert "flowr-status-expired" in html and "Next: Submitted" not in html
    response = post_step(staff_client, fresh(orders))
    assert "has expired (idle for longer than FLOWS_TASK_IDLE_TIMEOUT); it cannot step" in \
        message(response)


# -- query counts ---------------------------------------------------------------------

def add_instances(machine, count, user):
    version = machine.latest_version()
    graph = engine.compiled(version)
    now = timezone.now()
    Instance.objects.bulk_create(
        Instance(machine=machine, version=version, state_key=graph.root,
                 state_name=graph.names[graph.root], started_by=user, started_at=now,
                 last_activity=now) for _ in range(count))


def count_queries(client, url):
    client.get(url)  # warm the compiled-definition cache of this process
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("who", ["superuser", "clerk"])
def test_list_query_count_is_the_same_for_10_and_1000(client, django_user_model, admin_user,
                                                      demo_machines, who):
    user = admin_user if who == "superuser" else make_user(
        django_user_model, "clerk", "flowr.view_instance", "flowr.step_instance")
    client.force_login(user)
    Instance.objects.all().delete()
    add_instances(demo_machines["orders"], 5, user)
    add_instances(demo_machines["support"], 5, user)
    small = count_queries(client, LIST)
    add_instances(demo_machines["orders"], 495, user)
    add_instances(demo_machines["support"], 495, user)
    assert Instance.objects.count() == 1000
    assert count_queries(client, LIST) == small
    assert count_queries(client, LIST + "?status=active&state=Draft") <= small + 1


def test_cold_cache_costs_one_query_for_all_definitions(staff_client, demo_machines,
                                                        admin_user):
    for machine in demo_machines.values():
        add_instances(machine, 40, admin_user)
    warm = count_queries(staff_client, LIST)
    engine.clear_cache()
    with CaptureQueriesContext(connection) as queries:
        staff_client.get(LIST)
    assert len(queries) == warm + 1


def test_instance_page_query_count_does_not_grow(staff_client, demo_machines, admin_user):
    ticket = at(demo_machines["support"].start(), "Open", "Waiting on customer", "Open")
    add_instances(demo_machines["support"], 10, admin_user)
    small = count_queries(staff_client, change_url(ticket))
    add_instances(demo_machines["support"], 990, admin_user)
    at(ticket, "Waiting on customer", "Open", "Waiting on customer", "Open")
    assert count_queries(staff_client, change_url(ticket)) == small



def test_step_and_task_state_posts_need_the_csrf_token(admin_user, orders):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert post_step(client, orders).status_code == 403
    assert client.post(task_state_url(orders), {"task_state": "{}"}).status_code == 403
    assert fresh(orders).state_name == "Draft"


def test_step_and_move_actions_are_both_offered(staff_client, orders):
    html = staff_client.get(LIST).content.decode()
    assert 'value="step_selected"' in html and 'value="move_to_version"' in html


def test_unregistered_rules_are_shown_and_refuse_to_step(staff_client, orders):
    from flowr.rules import unregister

    unregister("orders")
    engine.clear_cache()
    listing = staff_client.get(LIST)
    assert listing.status_code == 200
    assert "Rule set &#x27;orders&#x27; is not registered" in listing.content.decode()
    page = staff_client.get(change_url(orders))
    assert page.status_code == 200 and "is not registered" in page.content.decode()
    response = post_step(staff_client, orders)
    assert response.status_code == 302 and "is not registered" in message(response)
    assert fresh(orders).state_name == "Draft"


def test_a_refused_task_state_edit_keeps_the_typed_text(staff_client, orders):
    typed = '{"amount": 12, "note": "half-typed'
    staff_client.post(task_state_url(orders), {"task_state": typed})
    page = staff_client.get(change_url(orders)).content.decode()
    assert "Task state not saved" in page
    assert '{&quot;amount&quot;: 12, &quot;note&quot;: &quot;half-typed' in page
    again = staff_client.get(change_url(orders)).content.decode()  # shown once only
    assert "half-typed" not in again
