"""Browser: build and edit machines only by clicking (table buttons, diagram panels,
inline forms); the rule-set diagram; screenshots in artifacts/."""
import os

import pytest
from playwright.sync_api import expect

from tests.browser_builder_helpers import (
    click, click_and_expect, edges_of, node, panel, row, screenshot, select, select_arrow,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def create_machine(page, rule_set, name):
    page.goto("/admin/flowr/machine/add/")
    page.select_option("#id_rule_set", label=rule_set)
    page.fill("#id_name", name)
    page.fill("#id_description", "Built in the browser.")
    page.click("input[name=_continue]")
    page.wait_for_url("**/change/")


def test_build_flowr_example_by_clicking(admin_page, artifacts_dir):
    from flowr.models import Instance, Machine
    from flowr.sync import sync_rule_sets

    sync_rule_sets()
    page = admin_page
    create_machine(page, "Flowr example", "Clicked example")
    machine = Machine.objects.get(name="Clicked example")
    # A second tab opened now goes stale: it still offers "Add B" under A.
    stale = page.context.new_page()
    stale.goto(page.url)

    click_and_expect(page, row(page, "A").get_by_role("button", name="Add C"),
                     "Added state 'C' under 'A'.")
    # "Add B" is gone, and the row says why.
    assert row(page, "A").get_by_role("button", name="Add B").count() == 0
    expect(row(page, "A").locator(".flowr-reason")).to_have_text(
        "Cannot add B: 'A' allows one child (its rule's multiple_paths is off) and already "
        "has 'C'.")
    # From the diagram: select C, add D and E from its panel.
    c = machine.states.get(name="C")
    select(page, c.key)
    click_and_expect(page, panel(page).get_by_role("button", name="Add D"),
                     "Added state 'D' under 'C'.")
    select(page, c.key)
    click_and_expect(page, panel(page).get_by_role("button", name="Add E"),
                     "Added state 'E' under 'C'.")
    # Under E, "Add A" offers the loop back to the existing A next to adding another.
    expect(row(page, "E").get_by_role("button", name="Add another A")).to_be_visible()
    click_and_expect(page, row(page, "E").get_by_role("button", name="Connect to A"),
                     "Connected 'E' → 'A'.")
    assert edges_of(machine) == [("A", "C"), ("C", "D"), ("C", "E"), ("E", "A")]

    # Forbidden: a second child under A (multiple_paths is off), from the stale tab.
    click_and_expect(stale, row(stale, "A").get_by_role("button", name="Add B"),
                     "allows at most 1 (multiple_paths is off)")
    assert stale.locator("ul.grp-messagelist li.grp-error").count() == 1
    stale.close()
    # Refused removal is disabled, with its reason in the row and in the panel.
    remove_c = row(page, "C").get_by_role("button", name="Remove", exact=True)
    assert remove_c.is_disabled()
    expect(row(page, "C").locator(".flowr-reason")).to_contain_text(
        "it would leave 'D' and 'E' unreachable")
    select(page, c.key)
    expect(panel(page).get_by_text("it would leave 'D' and 'E' unreachable")).to_be_visible()
    assert panel(page).get_by_role("button", name="Remove", exact=True).is_disabled()
    page.keyboard.press("Escape")
    expect(panel(page)).to_have_count(0)

    # An arrow is selectable: remove the loop E → A from its panel, then connect it again.
    e, a = machine.states.get(name="E"), machine.states.get(name="A")
    select_arrow(page, e.key, a.key)
    click_and_expect(page, panel(page).get_by_role("button", name="Remove → A"),
                     "Removed the transition 'E' → 'A'.")
    click_and_expect(page, row(page, "E").get_by_role("button", name="Connect to A"),
                     "Connected 'E' → 'A'.")
    # An arrow that would strand states says why instead.
    select_arrow(page, a.key, c.key)
    expect(panel(page)).to_contain_text("Removing A → C would leave 'C', 'D' and 'E' "
                                        "unreachable from the root.")
    assert panel(page).get_by_role("button", name="Remove → C").is_disabled()
    screenshot(page, os.path.join(artifacts_dir, "builder_example_arrow.png"))
    page.keyboard.press("Escape")

    diagram = page.locator("#flowr-diagram svg.flowr-diagram")
    assert diagram.locator("g.fd-node").count() == 4
    assert diagram.locator("path.fd-back").count() == 1
    screenshot(page, os.path.join(artifacts_dir, "builder_machine.png"))

    click(page.get_by_role("button", name="Publish"))  # the publish preview, then publish
    page.wait_for_url("**/builder/publish/preview/**")
    click_and_expect(page, page.get_by_role("button", name="Publish version 1"),
                     "Published version 1 of 'Clicked example'.")
    assert "v1" in page.locator("#flowr-versions").inner_text()
    click(page.get_by_role("button", name="Start instance"))
    page.wait_for_url("**/admin/flowr/instance/**")
    assert Instance.objects.filter(machine=machine).count() == 1


def _fixture_graph(name):
    from flowr.demo.setup import demo_documents

    doc = next(d for d in demo_documents() if d["name"] == name)
    names = {s["key"]: s["name"] for s in doc["graph"]["states"]}
    states = sorted((s["name"], s["rule"], s["settings"]) for s in doc["graph"]["states"])
    edges = sorted((names[p], names[c]) for p, c in doc["graph"]["transitions"])
    return states, edges


def test_build_order_approval_by_clicking(admin_page, artifacts_dir):
    from django.contrib.auth.models import Group

    from flowr.models import Machine
    from flowr.sync import sync_rule_sets

    sync_rule_sets()
    Group.objects.create(name="Reviewers")
    page = admin_page
    create_machine(page, "Order approval", "Clicked orders")
    machine = Machine.objects.get(name="Clicked orders")
    click_and_expect(page, row(page, "Draft").get_by_role("button", name="Add Submitted"),
                     "Added state 'Submitted' under 'Draft'.")
    # Approved has settings: its form opens inline, filled with the initial values.
    submitted = row(page, "Submitted")
    click(submitted.get_by_role("link", name="Add Approved…"))
    form = submitted.locator(".flowr-inline form")
    expect(form.locator("input[name='settings-max_amount']")).to_have_value("1000")
    expect(form.locator("input[name='name']")).to_have_value("Approved")
    screenshot(page, os.path.join(artifacts_dir, "builder_add_with_settings.png"))
    form.locator("input[name='settings-max_amount']").fill("5000")
    click_and_expect(page, form.get_by_role("button", name="Add Approved"),
                     "Added state 'Approved' under 'Submitted'.")
    click_and_expect(page, row(page, "Submitted").get_by_role("button", name="Add Rejected"),
                     "Added state 'Rejected' under 'Submitted'.")
    click_and_expect(page, row(page, "Submitted").get_by_role("button",
                                                               name="Add Needs rework"),
                     "Added state 'Needs rework' under 'Submitted'.")
    click_and_expect(page, row(page, "Needs rework").get_by_role("button",
                                                                  name="Connect to Submitted"),
                     "Connected 'Needs rework' → 'Submitted'.")
    click_and_expect(page, row(page, "Approved").get_by_role("button", name="Add Shipped"),
                     "Added state 'Shipped' under 'Approved'.")
    states = sorted((s.name, s.rule_key, s.settings) for s in machine.states.all())
    assert (states, edges_of(machine)) == _fixture_graph("Order approval")

    # Options next to the settings: from the diagram, Edit… opens the form in the panel.
    select(page, machine.states.get(name="Submitted").key)
    click(panel(page).get_by_role("link", name="Edit…"))
    form = panel(page).locator(".flowr-inline form")
    form.get_by_label("Reviewers").check()
    form.locator("input[name='options-due_after']").fill("2 days")
    form.locator("select[name='options-timeout_to']").select_option(label="Rejected")
    screenshot(page, os.path.join(artifacts_dir, "builder_options_in_panel.png"))
    click_and_expect(page, form.get_by_role("button", name="Save state"),
                     "Saved state 'Submitted'.")
    rejected = machine.states.get(name="Rejected")
    assert machine.states.get(name="Submitted").options == {
        "groups": ["Reviewers"], "due_after": 172800, "timeout_to": rejected.key}
    summary = "Reviewers · due 2 days → Rejected"
    expect(row(page, "Submitted").locator(".flowr-options")).to_have_text(summary)
    tooltip = node(page, machine.states.get(name="Submitted").key).locator("title")
    assert tooltip.text_content() == f"Submitted · {summary}"

    click(page.get_by_role("button", name="Publish"))  # the publish preview, then publish
    page.wait_for_url("**/builder/publish/preview/**")
    click_and_expect(page, page.get_by_role("button", name="Publish version 1"),
                     "Published version 1 of 'Clicked orders'.")
    click(page.get_by_role("button", name="Start instance"))
    page.wait_for_url("**/admin/flowr/instance/**")
    page.goto(f"/admin/flowr/machine/{machine.pk}/change/")
    badge = page.locator("#flowr-diagram a.fd-count")
    expect(badge).to_have_count(1)
    assert badge.get_attribute("aria-label") == "1 active instance in Draft"
    screenshot(page, os.path.join(artifacts_dir, "builder_orders_clicked.png"))
    with page.expect_navigation():
        badge.dispatch_event("click")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)


def test_edit_with_refusal_and_prune_by_clicking(admin_page, artifacts_dir):
    from flowr.demo.setup import load_demo
    from flowr.models import Machine
    from flowr.sync import sync_rule_sets

    sync_rule_sets()
    load_demo()
    page = admin_page
    machine = Machine.objects.get(name="Order approval")
    page.goto(f"/admin/flowr/machine/{machine.pk}/change/")
    approved = row(page, "Approved")
    click(approved.get_by_role("link", name="Edit…"))
    form = approved.locator(".flowr-inline form")
    form.locator("input[name=name]").fill("Rejected")  # taken: refused on the form page
    click_and_expect(page, form.get_by_role("button", name="Save state"),
                     "A state named 'Rejected' already exists")
    expect(page.locator("input[name=name]")).to_have_value("Rejected")  # nothing lost
    page.fill("input[name=name]", "Manager approval")
    page.fill("input[name=settings-max_amount]", "750")
    click_and_expect(page, page.get_by_role("button", name="Save state"),
                     "Saved state 'Manager approval'.")
    assert machine.states.get(name="Manager approval").settings == {"max_amount": 750}

    click(row(page, "Manager approval").get_by_role("button", name="Prune…"))
    assert page.locator("#flowr-prune-list li").all_inner_texts() == [
        "Manager approval (orders.Approved)", "Shipped (orders.Shipped)"]
    screenshot(page, os.path.join(artifacts_dir, "builder_prune.png"))
    click_and_expect(page, page.get_by_role("button", name="Yes, prune 2 states"),
                     "Pruned 'Manager approval': removed Manager approval, Shipped.")
    assert not machine.states.filter(name="Shipped").exists()
    screenshot(page, os.path.join(artifacts_dir, "builder_orders.png"))


def test_rule_set_diagram_shows_a_rule_when_clicked(admin_page, artifacts_dir):
    from flowr.models import RuleSetRecord
    from flowr.sync import sync_rule_sets

    sync_rule_sets()
    page = admin_page
    record = RuleSetRecord.objects.get(key="orders")
    page.goto(f"/admin/flowr/rulesetrecord/{record.pk}/change/")
    assert page.locator("#flowr-diagram svg g.fd-node").count() == 6
    assert page.locator("tr.flowr-rule-row").count() == 6
    select(page, "orders.Approved")
    box = panel(page)
    expect(box).to_contain_text("Approved by a manager.")
    expect(box).to_contain_text("Shipped")
    expect(box).to_contain_text("Max amount")
    expect(box).to_contain_text("Largest order amount this step may approve.")
    screenshot(page, os.path.join(artifacts_dir, "builder_rule_set.png"))
    # Keyboard: tab to a rule, Enter opens it, Escape closes it.
    page.keyboard.press("Escape")
    page.locator('#flowr-diagram g.fd-node[data-key="orders.Rejected"]').focus()
    page.keyboard.press("Enter")
    expect(panel(page)).to_contain_text("Why the order is rejected.")
    page.keyboard.press("Escape")
    expect(panel(page)).to_have_count(0)



def test_add_with_settings_without_javascript(_browser, chromium_path, live_server,
                                              admin_user, artifacts_dir):
    """The same buttons are plain links and POST forms when scripts are off."""
    from flowr import builder
    from flowr.sync import sync_rule_sets

    sync_rule_sets()
    machine = builder.create_machine("orders", "No script")
    builder.add_child(machine.root_state, "orders.Submitted")
    context = _browser.new_context(viewport={"width": 1366, "height": 900},
                                   base_url=live_server.url, java_script_enabled=False)
    page = context.new_page()
    page.goto("/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.goto(f"/admin/flowr/machine/{machine.pk}/change/")
    with page.expect_navigation():
        row(page, "Submitted").get_by_role("link", name="Add Approved…").click()
    expect(page.locator("input[name='settings-max_amount']")).to_have_value("1000")
    screenshot(page, os.path.join(artifacts_dir, "builder_add_without_script.png"))
    click_and_expect(page, page.get_by_role("button", name="Add Approved"),
                     "Added state 'Approved' under 'Submitted'.")
    assert machine.states.get(name="Approved").settings == {"max_amount": 1000}
    context.close()
