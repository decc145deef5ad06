"""Browser: build the flowr example machine only by clicking the builder's buttons."""
import os

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def row(page, name):
    return page.locator(f'tr.flowr-state[data-state="{name}"]')


def click(button):
    """Click with the button mid-screen: grappelli's fixed Save footer covers the bottom."""
    button.evaluate("b => b.scrollIntoView({block: 'center'})")
    button.click()


def click_and_expect(page, button, message):
    click(button)
    page.wait_for_load_state()
    messages = page.locator("ul.grp-messagelist li")
    assert message in messages.first.inner_text(), messages.all_inner_texts()


def screenshot(page, path):
    """Full-page screenshot with the viewport as tall as the page, so the fixed footer sits
    at the bottom instead of across the middle."""
    height = page.evaluate("document.body.scrollHeight")
    page.set_viewport_size({"width": 1366, "height": max(height, 900)})
    page.screenshot(path=path, full_page=True)
    page.set_viewport_size({"width": 1366, "height": 900})
    assert os.path.getsize(path) > 20_000


def edges_of(machine):
    return sorted((t.parent.name, t.child.name) for t in machine.transitions.all()
                  .select_related("parent", "child"))


def create_machine(page):
    page.goto("/admin/flowr/machine/add/")
    page.select_option("#id_rule_set", label="Flowr example")
    page.fill("#id_name", "Clicked example")
    page.fill("#id_description", "Built in the browser.")
    page.click("input[name=_continue]")
    page.wait_for_url("**/change/")


def test_build_flowr_example_by_clicking(admin_page, artifacts_dir):
    from flowr.models import Instance, Machine
    from flowr.sync import sync_rule_sets

    sync_rule_sets()
    page = admin_page
    create_machine(page)
    machine = Machine.objects.get(name="Clicked example")
    assert [s.name for s in machine.states.all()] == ["A"]
    # A second tab opened now goes stale: it still offers "Add B" under A.
    stale = page.context.new_page()
    stale.goto(page.url)

    click_and_expect(page, row(page, "A").get_by_role("button", name="Add C"),
                     "Added state 'C' under 'A'.")
    assert row(page, "A").get_by_role("button", name="Add B").count() == 0
    click_and_expect(page, row(page, "C").get_by_role("button", name="Add D"),
                     "Added state 'D' under 'C'.")
    click_and_expect(page, row(page, "C").get_by_role("button", name="Add E"),
                     "Added state 'E' under 'C'.")
    row(page, "E").locator("select[name=child]").select_option(label="A")
    click_and_expect(page, row(page, "E").get_by_role("button", name="Connect to…"),
                     "Connected 'E' → 'A'.")
    assert edges_of(machine) == [("A", "C"), ("C", "D"), ("C", "E"), ("E", "A")]

    # Forbidden: a second child under A (multiple_paths is off), from the stale tab.
    click_and_expect(stale, row(stale, "A").get_by_role("button", name="Add B"),
                     "allows at most 1 (multiple_paths is off)")
    assert stale.locator("ul.grp-messagelist li.grp-error").count() == 1
    stale.close()
    # Refused removal is disabled with its reason on the page.
    remove_c = row(page, "C").get_by_role("button", name="Remove", exact=True)
    assert remove_c.is_disabled()
    assert "would leave" in remove_c.get_attribute("title")
    assert edges_of(machine) == [("A", "C"), ("C", "D"), ("C", "E"), ("E", "A")]

    diagram = page.locator("#flowr-diagram svg.flowr-diagram")
    expect(diagram).to_be_visible()
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


def test_edit_state_with_refusal_and_prune_by_clicking(admin_page, artifacts_dir):
    from flowr.demo.setup import load_demo
    from flowr.models import Machine
    from flowr.sync import sync_rule_sets

    sync_rule_sets()
    load_demo()
    page = admin_page
    machine = Machine.objects.get(name="Order approval")
    page.goto(f"/admin/flowr/machine/{machine.pk}/change/")
    approved = row(page, "Approved")
    click(approved.locator("summary", has_text="Edit"))
    approved.locator("input[name=name]").fill("Rejected")  # taken: refused
    click_and_expect(page, approved.get_by_role("button", name="Save state"),
                     "A state named 'Rejected' already exists")
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


def test_rule_set_page_shows_rules_and_diagram(admin_page, artifacts_dir):
    from flowr.models import RuleSetRecord
    from flowr.sync import sync_rule_sets

    sync_rule_sets()
    page = admin_page
    record = RuleSetRecord.objects.get(key="orders")
    page.goto(f"/admin/flowr/rulesetrecord/{record.pk}/change/")
    assert page.locator("#flowr-diagram svg g.fd-node").count() == 6
    assert page.locator("tr.flowr-rule-row").count() == 6
    assert "An order waiting for review." in page.locator("#flowr-rules").inner_text()
    screenshot(page, os.path.join(artifacts_dir, "builder_rule_set.png"))
