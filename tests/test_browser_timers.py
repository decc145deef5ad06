"""Browser: the demo's leave requests time out; a failing one becomes an incident that is
retried from the incident list, another is dismissed from the instance page."""
import os
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from flowr import engine
from flowr.models import Incident, Instance
from tests.timer_support import run_due_tasks

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def messages(page):
    return page.locator(".grp-messagelist").inner_text()


def test_incident_list_retry_and_dismiss(admin_page, demo_machines, artifacts_dir):
    page = admin_page
    leave = demo_machines["leave"]
    dan = engine.start(leave, title="Dan: 20 days in a very long summer holiday " * 3,
                       task_state={"days": 20})
    run_due_tasks(ahead=timedelta(hours=1))  # every timer of the demo, as time passes
    assert Incident.objects.count() == 2  # Cleo (14 days) and Dan (20 days)
    assert Instance.objects.filter(machine=leave, state_name="Granted").count() == 2

    page.goto("/admin/flowr/incident/")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)
    cleo = rows.filter(has_text="Cleo: 14 days in August")
    expect(cleo.get_by_role("button", name="Retry")).to_be_visible()
    expect(cleo.get_by_role("button", name="Dismiss")).to_be_visible()
    assert "needs the manager's OK" in cleo.inner_text()
    page.screenshot(path=os.path.join(artifacts_dir, "incidents_list.png"), full_page=True)

    with page.expect_navigation():
        cleo.get_by_role("button", name="Retry").click()
    assert "still failing" in messages(page)
    assert page.url.endswith("/admin/flowr/incident/")
    page.screenshot(path=os.path.join(artifacts_dir, "incidents_still_failing.png"),
                    full_page=True)

    incident = Incident.objects.get(instance__title__startswith="Cleo")
    engine.save_task_state(incident.instance, {"days": 14, "manager_ok": True})
    cleo = page.locator("#result_list tbody tr").filter(has_text="Cleo: 14 days in August")
    with page.expect_navigation():
        cleo.get_by_role("button", name="Retry").click()
    assert "retried; the instance stepped to 'Granted'" in messages(page)
    expect(page.locator("#result_list tbody tr").filter(has_text="Cleo")
           .locator(".flowr-incident-resolved")).to_be_visible()
    assert Instance.objects.get(pk=incident.instance_id).state_name == "Granted"

    page.goto(f"/admin/flowr/incident/{Incident.objects.get(instance=dan).pk}/change/")
    expect(page.get_by_role("button", name="Retry now")).to_be_visible()
    expect(page.locator("#incident-actions textarea[name=reason]")).to_be_visible()
    page.screenshot(path=os.path.join(artifacts_dir, "incident_page.png"), full_page=True)

    page.goto(f"/admin/flowr/instance/{dan.pk}/change/")
    panel = page.locator("#deadline")
    expect(panel).to_contain_text("1 open incident")
    panel.scroll_into_view_if_needed()
    panel.screenshot(path=os.path.join(artifacts_dir, "instance_incident_panel.png"))
    with page.expect_navigation():
        panel.get_by_role("button", name="Dismiss").click()
    assert "dismissed" in messages(page) and "stays at 'Escalated to the manager'" in \
        messages(page)
    expect(page.locator("#deadline .flowr-incident-dismissed")).to_be_visible()
    expect(page.locator("table.flowr-history")).to_contain_text("dismissed by admin")
    page.screenshot(path=os.path.join(artifacts_dir, "instance_incident_dismissed.png"),
                    full_page=True)


def test_deadlines_in_the_instance_list(admin_page, demo_machines, artifacts_dir):
    page = admin_page
    leave = demo_machines["leave"]
    late = leave.instances.get(title__startswith="Ana")
    Instance.objects.filter(pk=late.pk).update(due_at=late.due_at - timedelta(minutes=10))
    page.goto("/admin/flowr/instance/?deadline=overdue")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".flowr-overdue")).to_contain_text("overdue 9 minutes")
    page.goto("/admin/flowr/instance/?machine__id__exact=%d" % leave.pk)
    expect(page.locator("#result_list thead")).to_contain_text("Due")
    page.screenshot(path=os.path.join(artifacts_dir, "instances_due_column.png"),
                    full_page=True)
    page.goto("/admin/flowr/instance/?deadline=nonsense")
    assert "e=1" in page.url
