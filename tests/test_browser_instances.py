"""Browser: start an order, step it through the rework loop to the end by clicking buttons."""
import os

import pytest
from playwright.sync_api import expect

from flowr.models import Instance

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def click_step(page, label, note=None):
    """Click the step button `label` on the instance page (filling its note)."""
    button = page.locator("form.flowr-step-form button[type=submit]", has_text=label)
    if note:
        button.locator("xpath=..").locator("textarea[name=note]").fill(note)
    with page.expect_navigation():
        button.click()


def test_start_and_step_an_order_to_the_end(admin_page, demo_machines, artifacts_dir):
    page = admin_page
    page.goto("/admin/flowr/instance/")
    assert page.locator("#result_list tbody tr").count() == 12  # 3 per demo machine
    page.get_by_role("link", name="Start instances").click()
    page.select_option("#id_machine", label="Order approval")
    page.fill("#id_count", "1")
    with page.expect_navigation():
        page.get_by_role("button", name="Start").click()
    assert "/change/" in page.url
    assert page.locator(".grp-messagelist").inner_text().startswith("Started instance")
    instance = Instance.objects.get(started_by__username="admin")

    click_step(page, "Next: Submitted")
    assert "stepped from Draft to Submitted" in page.locator(".grp-messagelist").inner_text()
    # Rejected asks for its step form's reason; Approved needs a permission the admin has.
    expect(page.locator("#id_" + _key(instance, "Rejected") + "_data-reason")).to_be_visible()
    page.screenshot(path=os.path.join(artifacts_dir, "instance_page_choices.png"),
                    full_page=True)
    click_step(page, "Needs rework", note="Missing the delivery address")
    click_step(page, "Next: Submitted")
    click_step(page, "Approved")
    click_step(page, "Next: Shipped")
    assert "stepped from Approved to Shipped" in page.locator(".grp-messagelist").inner_text()
    assert "it takes no more steps" in page.locator("#next-steps").inner_text()
    assert page.locator("form.flowr-step-form").count() == 0

    rows = page.locator("table.flowr-history tbody tr")
    assert [rows.nth(i).locator("td").nth(1).inner_text() for i in range(rows.count())] == [
        "Approved → Shipped", "Submitted → Approved", "Needs rework → Submitted",
        "Submitted → Needs rework", "Draft → Submitted", "Start: Draft"]
    assert "Missing the delivery address" in rows.nth(3).inner_text()
    assert rows.nth(0).locator("td").nth(2).inner_text() == "admin"

    current = page.locator("#diagram svg .fd-current")
    assert current.count() == 1
    assert current.get_attribute("data-key") == _key(instance, "Shipped")
    visited = page.locator("#diagram svg .fd-visited")
    keys = {visited.nth(i).get_attribute("data-key") for i in range(visited.count())}
    assert keys == {_key(instance, n) for n in ("Draft", "Submitted", "Needs rework",
                                                 "Approved")}
    path = os.path.join(artifacts_dir, "instance_page.png")
    page.screenshot(path=path, full_page=True)

    page.goto(f"/admin/flowr/instance/?machine__id__exact={instance.machine_id}")
    row = page.locator("#result_list tbody tr", has_text=str(instance.pk)[:8])
    assert "finished" in row.inner_text()
    page.screenshot(path=os.path.join(artifacts_dir, "instance_list.png"), full_page=True)


def test_list_buttons_step_rows_in_place(admin_page, demo_machines, artifacts_dir):
    page = admin_page
    machine = demo_machines["support"]
    page.goto(f"/admin/flowr/instance/?machine__id__exact={machine.pk}")
    buttons = page.locator("#result_list button", has_text="Next: Open")
    assert buttons.count() == 3
    with page.expect_navigation():
        buttons.first.click()
    assert f"machine__id__exact={machine.pk}" in page.url
    assert "stepped from New to Open" in page.locator(".grp-messagelist").inner_text()
    assert page.locator("#result_list button", has_text="Next: Open").count() == 2
    assert page.locator("#result_list button", has_text="Resolved").count() == 1
    page.screenshot(path=os.path.join(artifacts_dir, "instance_list_steps.png"), full_page=True)


def _key(instance, name):
    from flowr import engine

    return engine.compiled(instance.version).resolve(name)


def test_bulk_step_from_the_list(admin_page, demo_machines, artifacts_dir):
    page = admin_page
    machine = demo_machines["orders"]
    page.goto(f"/admin/flowr/instance/?machine__id__exact={machine.pk}")
    page.locator("#action-toggle").check()
    page.select_option("select[name=action]", "step_selected")
    with page.expect_navigation():
        page.locator("button[name=index], .grp-changelist-actions button, "
                     ".grp-changelist-actions input[type=submit]").first.click()
    assert page.locator("#flowr-bulk-step-form table tbody tr").count() == 3
    page.screenshot(path=os.path.join(artifacts_dir, "instance_bulk_step.png"), full_page=True)
    page.get_by_label("Submitted").check()
    page.fill("#id_note", "all at once")
    with page.expect_navigation():
        page.get_by_role("button", name="Step the selected instances").click()
    assert "Stepped 3 of 3 instances." in page.locator(".grp-messagelist").inner_text()
    rows = page.locator(".flowr-report-table tbody tr")
    assert rows.count() == 3 and "Draft" in rows.first.inner_text()
    page.screenshot(path=os.path.join(artifacts_dir, "instance_bulk_report.png"), full_page=True)
    page.get_by_role("link", name="Back to the instances").click()
    expect(page.locator("#result_list button", has_text="Approved")).to_have_count(3)
    page.get_by_role("link", name="Start instances").click()
    page.screenshot(path=os.path.join(artifacts_dir, "instance_start.png"), full_page=True)
