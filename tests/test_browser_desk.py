"""Browser: a reviewer logs in to the desk, claims an order and steps it from the index."""
import os

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from flowr.demo.setup import load_demo, setup_team
from flowr import engine
from flowr.models import Instance, Machine

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo_team(db):
    load_demo()
    demo = get_user_model().objects.create_superuser("demo", "", "flowr-demo")
    setup_team(demo)
    return demo


def login(page, username, password):
    page.goto("/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")


def row(page, work, title):
    return page.locator(f"#flowr-work-{work} tr.flowr-work-row", has_text=title)


def message(page):
    return page.locator(".grp-messagelist").inner_text()


def test_a_reviewer_claims_and_steps_from_the_desk(page, live_server, demo_team, artifacts_dir):
    orders = Machine.objects.get(name="Order approval")
    engine.step(engine.start(orders, title="Quarterly" + "-office-supplies" * 11,
                             business_key="ORD-LONG"), to="Submitted")
    login(page, "reviewer", "flowr-reviewer")
    expect(page.locator("h2", has_text="My work")).to_be_visible()
    expect(row(page, "assigned", "Conference table")).to_be_visible()
    expect(row(page, "claimable", "Monitor arms")).to_be_visible()
    expect(row(page, "claimable", "Whiteboards")).to_be_visible()
    assert row(page, "claimable", "Laptop bags").count() == 0  # Shipping's work, not ours
    page.screenshot(path=os.path.join(artifacts_dir, "desk_reviewer.png"), full_page=True)
    # A long unbroken title wraps inside its cell: the list never gets wider than its box.
    widths = page.evaluate("""() => { const t = document.querySelector(
        '#flowr-work-claimable table'); return [t.scrollWidth, t.parentElement.clientWidth]; }""")
    assert widths[0] <= widths[1], widths

    with page.expect_navigation():
        row(page, "claimable", "Monitor arms").get_by_role("button", name="Claim").click()
    assert page.url.endswith("/admin/")
    assert "You claimed instance Monitor arms (ORD-2002)" in message(page)
    expect(row(page, "assigned", "Monitor arms")).to_be_visible()
    assert row(page, "claimable", "Monitor arms").count() == 0

    with page.expect_navigation():
        row(page, "assigned", "Monitor arms").get_by_role("button", name="Approved").click()
    assert "stepped from Submitted to Approved" in message(page)
    assert row(page, "assigned", "Monitor arms").count() == 0
    expect(row(page, "recent", "Monitor arms")).to_be_visible()
    page.screenshot(path=os.path.join(artifacts_dir, "desk_after_step.png"), full_page=True)
    instance = Instance.objects.get(business_key="ORD-2002")
    assert instance.state_name == "Approved" and instance.assignee is None
    assert [e.kind for e in instance.history.order_by("seq")] == ["start", "step", "assign",
                                                                  "step"]

    # The instance page: its Assignment panel (Shipping's state now; the reviewer may not claim).
    row(page, "recent", "Monitor arms").get_by_role("link", name="Monitor arms").click()
    panel = page.locator("#assignment")
    expect(panel).to_contain_text("Shipping")
    expect(panel.get_by_role("button", name="Claim")).to_be_disabled()
    panel.scroll_into_view_if_needed()
    page.screenshot(path=os.path.join(artifacts_dir, "instance_assignment_panel.png"),
                    full_page=True)


def test_the_demo_login_sees_machines_and_assigns(page, live_server, demo_team, artifacts_dir):
    login(page, "demo", "flowr-demo")
    machines = page.locator(".flowr-machines-table")
    expect(machines).to_contain_text("Order approval")
    submitted = machines.locator("tr.flowr-state-row", has_text="Submitted")
    expect(submitted.locator(".flowr-state-count")).to_have_text("3")
    page.screenshot(path=os.path.join(artifacts_dir, "desk_demo.png"), full_page=True)
    with page.expect_navigation():
        submitted.locator(".flowr-state-count").click()
    assert page.locator("#result_list tbody tr").count() == 3

    page.goto("/admin/flowr/instance/?assignee=mygroups")
    expect(page.locator("#result_list")).to_contain_text("Whiteboards")
    page.screenshot(path=os.path.join(artifacts_dir, "instance_list_claimable.png"),
                    full_page=True)
    page.locator("#result_list tbody tr", has_text="Whiteboards").locator(
        "input.action-select").check()
    page.select_option("select[name=action]", "assign_selected")
    with page.expect_navigation():
        page.locator("button[name=index], .grp-button[type=submit]", has_text="Go").first.click()
    page.select_option("#id_user", label="reviewer (Order reviewers)")
    page.screenshot(path=os.path.join(artifacts_dir, "bulk_assign.png"), full_page=True)
    with page.expect_navigation():
        page.get_by_role("button", name="Assign the selected instances").click()
    assert "Assigned 1 of 1 instance" in message(page)
    page.screenshot(path=os.path.join(artifacts_dir, "bulk_assign_report.png"), full_page=True)
    assert Instance.objects.get(business_key="ORD-2003").assignee.username == "reviewer"
