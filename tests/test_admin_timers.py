"""Deadlines and incidents in the admin: list, buttons, permissions, instance page, health."""
from datetime import timedelta
from html import unescape

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from flowr import engine
from flowr.models import HistoryEntry, Incident, Instance
from tests.timer_support import run_due_tasks, timed_machine

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
LATER = timedelta(days=1)
INCIDENTS = "/admin/flowr/incident/"


def make_incident(title="Leave of Cleo"):
    machine = timed_machine(due_after=3600, name=f"Escalation of {title}")
    instance = engine.start(machine, title=title,
                            task_state={"refuse": "the manager is on holiday"})
    run_due_tasks(ahead=LATER)
    return Incident.objects.get(instance=instance)


@pytest.fixture
def viewer(django_user_model):
    """Staff who may view incidents and instances but not resolve incidents."""
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(
        codename__in=["view_incident", "view_instance"]))
    client = Client()
    client.force_login(user)
    return client


def test_the_list_shows_open_incidents_with_retry_and_dismiss(staff_client):
    incident = make_incident()
    page = staff_client.get(INCIDENTS).content.decode()
    assert "Leave of Cleo" in page and "the manager is on holiday" in page
    assert f'formaction="{INCIDENTS}{incident.pk}/retry/"' in page
    assert f'formaction="{INCIDENTS}{incident.pk}/dismiss/"' in page
    assert 'id="flowr-incident-forms"' in page and "csrfmiddlewaretoken" in page


def test_viewers_see_no_buttons_and_a_forged_post_is_403(viewer):
    incident = make_incident()
    page = viewer.get(INCIDENTS)
    assert page.status_code == 200 and "/retry/" not in page.content.decode()
    for action in ("retry", "dismiss"):
        assert viewer.post(f"{INCIDENTS}{incident.pk}/{action}/").status_code == 403
    incident.refresh_from_db()
    assert incident.is_open and incident.attempts == 4


def test_retry_and_dismiss_answer_get_with_405_and_need_csrf(admin_user):
    incident = make_incident()
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    for action in ("retry", "dismiss"):
        assert client.get(f"{INCIDENTS}{incident.pk}/{action}/").status_code == 405
        assert client.post(f"{INCIDENTS}{incident.pk}/{action}/").status_code == 403
    incident.refresh_from_db()
    assert incident.is_open


@pytest.mark.parametrize("bad", ["999999", "abc", "1%00", "x" * 300])
def test_malformed_or_unknown_incident_ids_are_404(staff_client, bad):
    assert staff_client.post(f"{INCIDENTS}{bad}/retry/").status_code == 404
    assert staff_client.get(f"{INCIDENTS}{bad}/change/").status_code in (302, 404)


def test_retry_button_still_failing_then_succeeding(staff_client, admin_user):
    incident = make_incident()
    back = f"{INCIDENTS}?status__exact=open"
    response = staff_client.post(f"{INCIDENTS}{incident.pk}/retry/", {"next": back},
                                 follow=True)
    assert response.redirect_chain[-1][0] == back
    assert f"Incident #{incident.pk}: still failing:" in response.content.decode()
    engine.save_task_state(incident.instance, {})  # the cause is gone
    response = staff_client.post(f"{INCIDENTS}{incident.pk}/retry/", follow=True)
    assert "retried; the instance stepped to" in response.content.decode()
    incident.refresh_from_db()
    assert incident.status == Incident.RESOLVED and incident.closed_by == admin_user
    instance = Instance.objects.get(pk=incident.instance_id)
    assert instance.state_name == "Escalated"
    assert instance.history.filter(kind=HistoryEntry.TIMEOUT).count() == 1
    logged = LogEntry.objects.filter(object_id=str(incident.pk)).values_list("change_message",
                                                                             flat=True)
    assert any("retried" in m for m in logged) and any("still failing" in m for m in logged)
    # A second click (a stale page) is refused with a message, not an error.
    response = staff_client.post(f"{INCIDENTS}{incident.pk}/retry/", follow=True)
    assert "is no longer open (resolved)" in response.content.decode()


def test_dismiss_with_a_reason_and_a_reason_too_long(staff_client):
    incident = make_incident()
    response = staff_client.post(f"{INCIDENTS}{incident.pk}/dismiss/", {"reason": "x" * 501},
                                 follow=True)
    assert "too long" in response.content.decode()
    incident.refresh_from_db()
    assert incident.is_open
    response = staff_client.post(f"{INCIDENTS}{incident.pk}/dismiss/",
                                 {"reason": "approved by phone"}, follow=True)
    assert "dismissed; instance Leave of Cleo stays at 'Waiting'" in unescape(
        response.content.decode())
    incident.refresh_from_db()
    assert incident.status == Incident.DISMISSED
    note = incident.instance.history.filter(kind=HistoryEntry.INCIDENT).first()
    assert note.note == f"Incident #{incident.pk} dismissed by admin: approved by phone"


def test_bulk_retry_ends_on_a_report(staff_client):
    first, second = make_incident("First"), make_incident("Second")
    engine.save_task_state(first.instance, {})
    response = staff_client.post(INCIDENTS, {"action": "retry_selected",
                                             "_selected_action": [first.pk, second.pk]},
                                 follow=True)
    page = response.content.decode()
    assert "Retried 1 of 2 instances; 1 refused." in page
    assert "still failing" in page and "Escalated" in page


def test_the_incident_page_offers_retry_and_dismiss_forms(staff_client, viewer):
    incident = make_incident()
    page = staff_client.get(f"{INCIDENTS}{incident.pk}/change/").content.decode()
    assert "Retry now" in page and 'name="reason"' in page
    assert "Retry now" not in viewer.get(f"{INCIDENTS}{incident.pk}/change/").content.decode()
    assert staff_client.post(f"{INCIDENTS}{incident.pk}/change/").status_code == 405


def test_the_instance_page_shows_the_deadline_and_the_open_incidents(staff_client):
    incident = make_incident()
    url = reverse("admin:flowr_instance_change", args=[incident.instance_id])
    page = staff_client.get(url).content.decode()
    assert "Deadline and incidents" in page and "1 open incident" in page
    assert "Due <strong" in page and "(in 59" in page and "overdue by" not in page
    assert f"/admin/flowr/incident/{incident.pk}/retry/" in page
    assert f"the automatic step to <strong>Escalated</strong> failed: <a href=\"/admin/flowr/" \
           f"incident/{incident.pk}/change/\">incident #{incident.pk}</a> (open)" in page
    page = staff_client.get(reverse("admin:flowr_instance_change",
                                    args=[timed_machine(name="Fine").start().pk]))
    assert "steps to <strong>Escalated</strong> by itself" in page.content.decode()


def test_the_instance_list_has_a_due_column_and_a_deadline_filter(staff_client):
    machine = timed_machine(due_after=3600)
    late, later = machine.start(), machine.start()
    Instance.objects.filter(pk=late.pk).update(due_at=timezone.now() - timedelta(minutes=5))
    page = staff_client.get("/admin/flowr/instance/?deadline=overdue").content.decode()
    assert late.label in page and later.label not in page
    assert "overdue 5" in page
    page = staff_client.get("/admin/flowr/instance/?deadline=later").content.decode()
    assert later.label in page and late.label not in page and "in 59" in page
    for bad in ("soon", "%00", "x" * 500):
        response = staff_client.get(f"/admin/flowr/instance/?deadline={bad}")
        assert response.status_code == 302 and "e=1" in response["Location"]


def test_the_instance_page_costs_one_query_more_for_incidents(staff_client):
    incident = make_incident()
    url = reverse("admin:flowr_instance_change", args=[incident.instance_id])
    staff_client.get(url)
    with CaptureQueriesContext(connection) as queries:
        staff_client.get(url)
    assert sum("flowr_incident" in q["sql"] for q in queries.captured_queries) == 1


def test_healthz_reports_waiting_timers_and_healthz_timers_fails_when_late(client, settings):
    machine = timed_machine(due_after=3600)
    machine.start()
    from tests.timer_support import queued

    queued("fire_timeout").update(run_after=timezone.now() - timedelta(minutes=10))
    body = client.get("/healthz").json()
    assert body["status"] == "ok"  # a late worker does not fail the web health check
    assert body["timers"]["waiting"] == 1 and body["timers"]["late"] is True
    assert 599 < body["timers"]["oldest_wait_s"] < 700
    response = client.get("/healthz/timers")
    assert response.status_code == 503 and response.json()["status"] == "late"
    settings.FLOWR_TIMERS_LATE_AFTER = 3600
    assert client.get("/healthz/timers").status_code == 200
    assert client.post("/healthz/timers").status_code == 405


def test_open_incidents_for_the_desk_cost_two_queries():
    from flowr.admin.desk_incidents import open_incidents

    first, second = make_incident("First"), make_incident("Second")
    incidents_dismissed = Incident.objects.filter(pk=first.pk)
    incidents_dismissed.update(status=Incident.DISMISSED)
    with CaptureQueriesContext(connection) as queries:
        total, rows = open_incidents()
    assert len(queries.captured_queries) == 2
    assert total == 1 and [row.pk for row in rows] == [second.pk]
    assert rows[0].instance == "Second" and rows[0].url.endswith(f"/{second.pk}/change/")


def test_the_panel_warns_when_the_idle_timeout_comes_before_the_deadline(staff_client,
                                                                       settings):
    instance = timed_machine(due_after=7200).start()
    url = reverse("admin:flowr_instance_change", args=[instance.pk])
    settings.FLOWS_TASK_IDLE_TIMEOUT = 3600
    assert "before its deadline: the timer will then do nothing" in \
        staff_client.get(url).content.decode()
    settings.FLOWS_TASK_IDLE_TIMEOUT = 0
    assert "before its deadline" not in staff_client.get(url).content.decode()


def test_the_desk_lists_open_incidents(staff_client):
    pytest.importorskip("flowr.admin.desk", reason="the desk (issue 13) has not landed yet")
    make_incident("Cleo")
    page = staff_client.get("/admin/").content.decode()
    assert "Incidents" in page and "1 open" in page and "Cleo" in page
    assert "just now" in page and "?status__exact=open" in page
