"""Browser: operator controls (confirmation pages, bulk report) and finding instances."""
import os

import pytest
from playwright.sync_api import expect

from flowr.models import Instance

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def shot(page, artifacts_dir, name):
    page.screenshot(path=os.path.join(artifacts_dir, name), full_page=True)


def open_instance(page, business_key):
    instance = Instance.objects.get(business_key=business_key)
    page.goto(f"/admin/flowr/instance/{instance.pk}/change/")
    return instance


def test_cancel_and_move_through_their_confirmation_pages(admin_page, demo_machines,
                                                          artifacts_dir):
    page = admin_page
    open_instance(page, "ORD-1001")
    panel = page.locator("#operator-controls")
    expect(panel.get_by_role("button", name="Resume")).to_be_disabled()
    page.set_viewport_size({"width": 1366, "height": 2600})  # the fixed footer out of the way
    panel.screenshot(path=os.path.join(artifacts_dir, "controls_panel.png"))
    page.set_viewport_size({"width": 1366, "height": 900})
    with page.expect_navigation():
        panel.get_by_role("button", name="Cancel…").click()
    expect(page.get_by_role("heading", name="Cancel instance Office chairs (ORD-1001)")) \
        .to_be_visible()
    page.fill("#id_reason", "The customer ordered twice")
    shot(page, artifacts_dir, "controls_cancel_confirm.png")
    page.fill("#id_reason", " ")
    with page.expect_navigation():
        page.get_by_role("button", name="Cancel the instance").click()  # no reason
    expect(page.locator(".errornote")).to_be_visible()
    expect(page.locator(".grp-errors")).to_contain_text("This field is required.")
    page.fill("#id_reason", "The customer ordered twice")
    with page.expect_navigation():
        page.get_by_role("button", name="Cancel the instance").click()
    expect(page.locator(".grp-messagelist")).to_contain_text(
        "Office chairs (ORD-1001): Cancelled: The customer ordered twice")
    expect(page.locator("#next-steps")).to_contain_text("cancelled")
    expect(page.locator("table.flowr-history tbody tr").first).to_contain_text("Cancel at Draft")

    ticket = open_instance(page, "TCK-501")
    with page.expect_navigation():
        page.locator("#operator-controls").get_by_role("button", name="Move to state…").click()
    page.select_option("#id_target", label="Closed")
    page.get_by_label("Skip the hooks: only the position changes").check()
    page.fill("#id_reason", "Solved on the phone")
    with page.expect_navigation():
        page.get_by_role("button", name="Check the move").click()
    expect(page.locator(".flowr-guard-warnings")).to_contain_text(
        "Entering 'Closed': the customer has not confirmed the fix yet")
    shot(page, artifacts_dir, "controls_move_confirm.png")
    with page.expect_navigation():
        page.get_by_role("button", name="Move the instance").click()
    expect(page.locator(".grp-messagelist")).to_contain_text(
        "TCK-501): Moved from New to Closed (hooks skipped): Solved on the phone")
    ticket.refresh_from_db()
    assert (ticket.state_name, ticket.status, ticket.outcome) == ("Closed", "finished",
                                                                  "closed")


def test_bulk_suspend_ends_on_the_report(admin_page, demo_machines, artifacts_dir):
    page = admin_page
    machine = demo_machines["orders"]
    cancelled = Instance.objects.get(business_key="ORD-1003")
    from flowr import controls

    controls.cancel(cancelled, reason="gone")
    page.goto(f"/admin/flowr/instance/?machine__id__exact={machine.pk}")
    page.locator("#action-toggle").check()
    page.select_option("select[name=action]", "suspend_selected")
    with page.expect_navigation():
        page.locator(".grp-changelist-actions button, .grp-changelist-actions "
                     "input[type=submit]").first.click()
    expect(page.get_by_role("heading", name="Suspend 3 selected instances")).to_be_visible()
    expect(page.locator(".flowr-control-rows tbody tr")).to_have_count(3)
    page.fill("#id_reason", "Quarterly stock audit")
    shot(page, artifacts_dir, "controls_bulk_confirm.png")
    with page.expect_navigation():
        page.get_by_role("button", name="Suspend 2 instances").click()
    expect(page.locator(".grp-messagelist")).to_contain_text("Suspended 2 of 3 instances; "
                                                             "1 refused.")
    rows = page.locator(".flowr-report-table tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator(".flowr-report-refused")).to_contain_text("is cancelled")
    shot(page, artifacts_dir, "controls_bulk_report.png")
    assert Instance.objects.filter(status="suspended").count() == 2


def test_search_filter_and_columns(admin_page, demo_machines, artifacts_dir):
    page = admin_page
    machine = demo_machines["orders"]
    page.goto(f"/admin/flowr/instance/?machine__id__exact={machine.pk}")
    page.fill("#grp-changelist-search", "acme")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)
    expect(page.get_by_role("columnheader", name="Customer")).to_be_visible()
    shot(page, artifacts_dir, "search_results.png")
    page.goto("/admin/flowr/instance/")
    page.locator("#grp-filters .grp-pulldown-handler").click()
    page.fill("#flowr-data__customer", "Globex")
    page.locator("#grp-filters .grp-pulldown-content").screenshot(
        path=os.path.join(artifacts_dir, "search_filters.png"))
    with page.expect_navigation():
        page.locator(".flowr-data-filter-form button").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    assert "data__customer=Globex" in page.url
    # The date range (django-admin-rangefilter, grappelli's date picker) keeps that filter.
    page.locator("#grp-filters .grp-pulldown-handler").click()
    page.fill("input[name=started_at__range__lte]", "01/01/2000")
    with page.expect_navigation():
        page.locator("#start-date-form input[type=submit]").click()
    assert "data__customer=Globex" in page.url and "started_at__range__lte=" in page.url
    expect(page.locator("#result_list tbody tr")).to_have_count(0)
