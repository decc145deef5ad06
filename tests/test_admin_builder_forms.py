"""The builder's on-demand forms: add with settings and options, edit, connect, refusals."""
import re

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse
from reversion.models import Revision

from flowr import builder

pytestmark = pytest.mark.django_db


def change_url(machine):
    return reverse("admin:flowr_machine_change", args=[machine.pk])


def state_url(machine, state, query=""):
    return reverse("admin:flowr_machine_state_page", args=[machine.pk, state.pk]) + query


def action_url(machine, name, state):
    return reverse(f"admin:flowr_machine_state_{name}", args=[machine.pk, state.pk])


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def orders(db):
    """An order machine holding Draft → Submitted only."""
    machine = builder.create_machine("orders", "Fresh orders")
    builder.add_child(machine.root_state, "orders.Submitted")
    return machine


def submitted(machine):
    return machine.states.get(name="Submitted")


# -- add with settings ----------------------------------------------------------------

def test_one_click_add_of_a_rule_with_settings_opens_its_form(staff_client, orders):
    response = staff_client.post(action_url(orders, "add", submitted(orders)),
                                 {"rule": "orders.Approved"})
    assert response.status_code == 302
    assert response["Location"] == state_url(orders, submitted(orders),
                                             "?do=add&rule=orders.Approved")
    assert orders.states.count() == 2 and Revision.objects.count() == 0
    page = staff_client.get(response["Location"])
    html = page.content.decode()
    assert "Fill in the new state&#x27;s settings, then add it." in html
    assert re.search(r'<input type="number" name="settings-max_amount" value="1000"', html)
    assert 'name="name" value="Approved"' in html
    assert f'action="{action_url(orders, "add", submitted(orders))}"' in html


def test_add_with_settings_creates_the_state_with_them(staff_client, admin_user, orders):
    response = staff_client.post(action_url(orders, "add", submitted(orders)), {
        "form": "1", "rule": "orders.Approved", "name": "Manager approval",
        "settings-max_amount": "1000"}, follow=True)
    assert messages_of(response) == ["Added state 'Manager approval' under 'Submitted'."]
    approved = orders.states.get(name="Manager approval")
    assert (approved.rule_key, approved.settings, approved.options) == (
        "orders.Approved", {"max_amount": 1000}, {})
    revision = Revision.objects.get()
    assert (revision.comment, revision.user) == ("Added state Manager approval under "
                                                 "Submitted", admin_user)


def test_refused_add_comes_back_with_what_was_typed(staff_client, orders):
    response = staff_client.post(action_url(orders, "add", submitted(orders)), {
        "form": "1", "rule": "orders.Approved", "name": "Big ones",
        "settings-max_amount": "-5"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "greater than or equal to 0" in html
    assert 'value="-5"' in html and 'value="Big ones"' in html
    assert "Settings for rule orders.Approved are invalid" in messages_of(response)[0]
    response = staff_client.post(action_url(orders, "add", submitted(orders)), {
        "form": "1", "rule": "orders.Approved", "name": "Draft", "settings-max_amount": "9"})
    assert "A state named &#x27;Draft&#x27; already exists" in response.content.decode()
    assert 'value="9"' in response.content.decode()
    assert orders.states.count() == 2 and Revision.objects.count() == 0


def test_the_page_offers_add_with_settings_as_a_form_link(staff_client, orders):
    html = staff_client.get(change_url(orders)).content.decode()
    s = submitted(orders)
    assert (f'<a href="../builder/state/{s.pk}/?do=add&amp;rule=orders.Approved" '
            f'class="flowr-btn flowr-btn-add" data-inline>Add Approved…</a>') in html
    assert ('name="rule" value="orders.Rejected" class="flowr-btn flowr-btn-add">'
            'Add Rejected</button>') in html


def test_fragment_is_only_the_form(staff_client, orders):
    response = staff_client.get(state_url(orders, submitted(orders),
                                          "?do=add&rule=orders.Approved&fragment=1"))
    html = response.content.decode()
    assert "<html" not in html and html.count("<form") == 1
    assert 'name="csrfmiddlewaretoken"' in html and 'name="form" value="1"' in html


def test_settings_fields_use_one_widget_everywhere(staff_client, demo_machines):
    machine = demo_machines["orders"]
    approved = machine.states.get(name="Approved")
    number = re.compile(r'<input type="number" name="settings-max_amount" value="(\d+|-5)"')
    pages = [staff_client.get(state_url(machine, approved, "?do=edit")),
             staff_client.get(state_url(machine, approved, "?do=edit&fragment=1")),
             staff_client.post(action_url(machine, "edit", approved),
                               {"form": "1", "name": "Approved", "settings-max_amount": "-5"})]
    assert [number.search(p.content.decode()).group(1) for p in pages] == ["5000", "5000", "-5"]


# -- the state page's guards ------------------------------------------------------------

def test_state_page_guards(staff_client, django_user_model, orders):
    from django.test import Client

    s = submitted(orders)
    assert staff_client.post(state_url(orders, s)).status_code == 405
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_machine"))
    other = Client()
    other.force_login(viewer)
    assert other.get(state_url(orders, s)).status_code == 403
    gone = reverse("admin:flowr_machine_state_page", args=[orders.pk, 999999])
    response = staff_client.get(gone, follow=True)
    assert "That state no longer exists" in messages_of(response)[0]
    response = staff_client.get(reverse("admin:flowr_machine_state_page", args=["abc", s.pk]),
                                follow=True)
    assert response.status_code == 200 and "doesn’t exist" in messages_of(response)[0]


def test_state_page_shows_every_form_or_the_one_asked_for(staff_client, orders):
    s = submitted(orders)
    full = staff_client.get(state_url(orders, s, "?do=nonsense")).content.decode()
    assert full.count('class="flowr-form-box') == 5  # edit, add ×3, connect
    gone = staff_client.get(state_url(orders, s, "?do=add&rule=orders.Draft"))
    assert "cannot be added under" in messages_of(gone)[0]
    connect = staff_client.get(state_url(orders, s, "?do=connect")).content.decode()
    assert "No existing state can follow this one now." in connect


# -- edit with options -------------------------------------------------------------------

@pytest.fixture
def reviewers(db):
    return Group.objects.create(name="Reviewers")


def test_edit_saves_options_and_the_page_summarises_them(staff_client, demo_machines,
                                                         reviewers):
    machine = demo_machines["orders"]
    s, rejected = machine.states.get(name="Submitted"), machine.states.get(name="Rejected")
    form = staff_client.get(state_url(machine, s, "?do=edit")).content.decode()
    assert 'name="options-groups" value="Reviewers"' in form
    assert f'<option value="{rejected.key}">Rejected</option>' in form
    response = staff_client.post(action_url(machine, "edit", s), {
        "form": "1", "name": "Submitted", "options-groups": ["Reviewers"],
        "options-due_after": "2 days", "options-timeout_to": rejected.key,
        "options-remind_after": "1 day"}, follow=True)
    assert messages_of(response) == ["Saved state 'Submitted'."]
    s.refresh_from_db()
    assert s.options == {"groups": ["Reviewers"], "due_after": 172800,
                         "timeout_to": rejected.key, "remind_after": 86400}
    html = response.content.decode()
    summary = "Reviewers · due 2 days → Rejected · remind 1 day"
    assert f'<div class="flowr-options">{summary}</div>' in html
    assert f"<title>Submitted · {summary}</title>" in html
    # What the timeout needs cannot be taken away under it; the page says so.
    assert ("Remove: &#x27;Submitted&#x27; steps to it when due; change the timing of "
            "&#x27;Submitted&#x27; first.") in html
    assert re.search(rf'id="flowr-state-{rejected.pk}".*?<button[^>]*remove/"[^>]*disabled',
                     html, re.S)


def test_invalid_options_come_back_with_errors(staff_client, demo_machines, reviewers):
    machine = demo_machines["orders"]
    s = machine.states.get(name="Submitted")
    before = s.options  # the demo names its candidate group
    rejected = machine.states.get(name="Rejected")
    response = staff_client.post(action_url(machine, "edit", s), {
        "form": "1", "name": "Renamed", "options-timeout_to": rejected.key,
        "options-due_after": "soon"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "is not a duration" in html and 'value="Renamed"' in html
    s.refresh_from_db()
    assert (s.name, s.options) == ("Submitted", before)


def test_add_with_options(staff_client, orders, reviewers):
    response = staff_client.post(action_url(orders, "add", submitted(orders)), {
        "form": "1", "rule": "orders.Rejected", "name": "Rejected",
        "options-groups": ["Reviewers"], "options-assign": "stepper"}, follow=True)
    assert messages_of(response) == ["Added state 'Rejected' under 'Submitted'."]
    assert orders.states.get(name="Rejected").options == {"groups": ["Reviewers"],
                                                           "assign": "stepper"}
    form = staff_client.get(state_url(orders, submitted(orders),
                                      "?do=add&rule=orders.Approved")).content.decode()
    assert "options-timeout_to" not in form  # a new state has no next state to time out to


# -- what the rows offer ------------------------------------------------------------------

def test_a_hidden_add_says_why(staff_client):
    machine = builder.create_machine("flowr_example", "Fresh")
    builder.add_child(machine.root_state, "flowr_example.C")
    html = staff_client.get(change_url(machine)).content.decode()
    assert ("Cannot add B: &#x27;A&#x27; allows one child (its rule&#x27;s multiple_paths is "
            "off) and already has &#x27;C&#x27;.") in html


def test_connect_to_one_of_several_existing_states_opens_a_list(staff_client):
    from tests.factories import hub_machine

    machine = hub_machine(30, name="Hub 30")
    end = machine.states.get(key="s1l8")  # an open chain end: any Link may follow it
    html = staff_client.get(change_url(machine)).content.decode()
    assert (f'<a href="../builder/state/{end.pk}/?do=connect&amp;rule=hub.Link" '
            f'class="flowr-btn" data-inline>Connect to a Link…</a>') in html
    assert f'value="{machine.root_state.pk}" class="flowr-btn">Connect to Hub</button>' in html
    form = staff_client.get(state_url(machine, end, "?do=connect&rule=hub.Link&fragment=1"))
    options = re.findall(r'<option value="(\d+)"', form.content.decode())
    links = machine.states.filter(rule_key="hub.Link").values_list("pk", flat=True)
    assert sorted(map(int, options)) == sorted(links)
    target = machine.states.get(key="s0l0")
    response = staff_client.post(action_url(machine, "connect", end), {"child": target.pk},
                                 follow=True)
    assert messages_of(response) == [f"Connected '{end.name}' → '{target.name}'."]


def test_a_state_that_may_add_many_rules_offers_a_few_then_a_list(staff_client):
    from tests.factories import hub_machine

    machine = hub_machine(10, name="Hub 10")
    hub = machine.root_state
    html = staff_client.get(change_url(machine)).content.decode()
    row = re.search(rf'id="flowr-state-{hub.pk}".*?</tr>', html, re.S).group()
    assert row.count("flowr-btn flowr-btn-add") == 6
    assert f'<a href="../builder/state/{hub.pk}/?do=add" class="flowr-btn" data-inline>' \
           f'Add… (193 more rules)</a>' in row
    listed = staff_client.get(state_url(machine, hub, "?do=add")).content.decode()
    assert listed.count('name="rule" value="hub.Spoke') == 199 and "<select" not in listed
    response = staff_client.post(action_url(machine, "add", hub), {"rule": "hub.Spoke150"},
                                 follow=True)
    assert messages_of(response) == ["Added state 'Spoke150' under 'Hub'."]
