"""Failing timed steps: nothing changes, retries with backoff, then exactly one incident."""
from datetime import timedelta

import pytest

from flowr import engine, incidents, timers
from flowr.models import HistoryEntry, Incident, Instance
from tests import flaky_store
from tests.timer_support import queued, run_due_tasks, timed_machine

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
LATER = timedelta(days=1)


def snapshot(instance):
    """Everything a failed step must leave as it was."""
    row = Instance.objects.get(pk=instance.pk)
    steps = list(row.history.exclude(kind=HistoryEntry.INCIDENT)
                 .values_list("seq", "kind", "to_key"))
    return (row.state_key, row.status, row.step_count, row.version_id, row.due_at,
            row.task_state_version, engine.task_state_of(row), steps)


def fail_until_incident(instance):
    results = [row.return_value for row in run_due_tasks(ahead=LATER)]
    assert [r["result"] for r in results] == ["retry", "retry", "retry", "incident"]
    return results


@pytest.fixture
def refusing(db):
    machine = timed_machine(due_after=3600)
    return engine.start(machine, task_state={"refuse": "the manager is on holiday"})


def test_a_refused_timed_step_is_retried_with_backoff_then_becomes_one_incident(refusing):
    before = snapshot(refusing)
    results = fail_until_incident(refusing)
    assert [r.get("retry_in_s") for r in results[:3]] == [30, 60, 120]
    assert snapshot(refusing) == before
    incident = Incident.objects.get()
    assert (incident.instance_id, incident.position, incident.attempts, incident.status) == \
        (refusing.pk, 0, 4, Incident.OPEN)
    assert incident.action == "Timed step from 'Waiting' to 'Escalated' (due after 1 hour)"
    assert "the manager is on holiday" in incident.error
    assert results[3]["incident"] == incident.pk
    note = Instance.objects.get(pk=refusing.pk).history.get(kind=HistoryEntry.INCIDENT)
    assert note.note.startswith(f"Incident #{incident.pk}: the timed step to 'Escalated' "
                                f"failed 4 times:")
    assert queued("fire_timeout").count() == 0  # no more automatic attempts


def test_retry_delays_follow_the_settings(refusing, settings):
    settings.FLOWR_TIMER_RETRIES, settings.FLOWR_TIMER_RETRY_DELAY = 1, 5
    run_due_tasks(limit=0)
    first, = run_due_tasks(ahead=LATER, limit=1)
    retry, = queued("fire_timeout")
    assert retry.args_kwargs["args"][5] == 2  # the second attempt
    assert timedelta(seconds=4) < retry.run_after - first.finished_at <= timedelta(seconds=5)
    assert [r.return_value["result"] for r in run_due_tasks(ahead=LATER)] == ["incident"]


def test_a_raising_hook_changes_nothing_and_becomes_an_incident():
    machine = timed_machine(due_after=60)
    instance = machine.start()
    engine.save_task_state(instance, {"explode": True, "kept": [1, 2]})
    before = snapshot(instance)
    fail_until_incident(instance)
    assert snapshot(instance) == before
    incident = Incident.objects.get()
    assert "RuntimeError: the escalation service is down" in incident.error
    assert "Nothing was changed" in incident.error


def test_a_store_that_is_down_changes_nothing_and_retry_works_once_it_is_back(settings,
                                                                             admin_user):
    settings.FLOWS_STATE_STORE = "tests.flaky_store"
    machine = timed_machine(due_after=60)
    instance = engine.start(machine, task_state={"customer": "ACME"})
    before = snapshot(instance)
    flaky_store.DOWN = True
    try:
        fail_until_incident(instance)
    finally:
        flaky_store.DOWN = False
    assert snapshot(instance) == before
    incident = Incident.objects.get()
    assert "down" in incident.error
    outcome, message = incidents.retry(incident, admin_user)
    assert outcome == incidents.RETRIED, message
    instance = Instance.objects.get(pk=instance.pk)
    assert instance.state_name == "Escalated"
    assert engine.task_state_of(instance) == {"customer": "ACME", "escalated": True}


def test_retry_succeeds_once_the_cause_is_gone(refusing, admin_user):
    fail_until_incident(refusing)
    incident = Incident.objects.get()
    outcome, message = incidents.retry(incident, admin_user)
    assert outcome == incidents.STILL_FAILING and "on holiday" in message
    incident.refresh_from_db()
    assert incident.attempts == 5 and incident.is_open
    engine.save_task_state(refusing, {})  # the cause is gone
    outcome, message = incidents.retry(incident, admin_user)
    assert outcome == incidents.RETRIED
    assert message == f"Incident #{incident.pk}: retried; the instance stepped to 'Escalated'."
    incident.refresh_from_db()
    assert (incident.status, incident.closed_by) == (Incident.RESOLVED, admin_user)
    instance = Instance.objects.get(pk=refusing.pk)
    assert instance.state_name == "Escalated"
    step = instance.history.get(kind=HistoryEntry.TIMEOUT)
    assert step.user is None
    assert step.note == f"timeout after 1 hour (retried by admin, incident #{incident.pk})"
    notes = list(instance.history.filter(kind=HistoryEntry.INCIDENT).values_list("note", "user"))
    assert notes[0] == (f"Incident #{incident.pk} retried by admin: still failing: Step to "
                        f"'Escalated' refused: the manager is on holiday", admin_user.pk)
    assert engine.replay(instance.history.all())[1] == instance.state_key
    with pytest.raises(incidents.IncidentClosed, match="no longer open"):
        incidents.retry(incident, admin_user)


def test_retry_after_the_instance_moved_on_closes_the_incident(refusing, admin_user):
    fail_until_incident(refusing)
    incident = Incident.objects.get()
    refusing.refresh_from_db()
    refusing.step(to="Done", user=admin_user)
    outcome, message = incidents.retry(incident, admin_user)
    assert outcome == incidents.OBSOLETE and "moved on" in message
    incident.refresh_from_db()
    assert incident.status == Incident.RESOLVED
    instance = Instance.objects.get(pk=refusing.pk)
    assert instance.state_name == "Done" and not instance.history.filter(
        kind=HistoryEntry.TIMEOUT).exists()


def test_dismiss_closes_the_incident_and_leaves_the_instance(refusing, admin_user):
    fail_until_incident(refusing)
    incident = Incident.objects.get()
    before = snapshot(refusing)
    message = incidents.dismiss(incident, admin_user, "handled by phone")
    assert "dismissed" in message and "stays at 'Waiting'" in message
    incident.refresh_from_db()
    assert (incident.status, incident.resolution) == (Incident.DISMISSED,
                                                      "Dismissed by admin: handled by phone")
    assert snapshot(refusing) == before
    note = Instance.objects.get(pk=refusing.pk).history.filter(
        kind=HistoryEntry.INCIDENT).first()
    assert note.note == f"Incident #{incident.pk} dismissed by admin: handled by phone"
    with pytest.raises(incidents.IncidentClosed):
        incidents.dismiss(incident, admin_user)


def test_duplicate_retry_chains_make_one_incident(refusing):
    args = queued("fire_timeout").get().args_kwargs["args"]
    first = timers.fire_timeout(*args, attempt=4)
    second = timers.fire_timeout(*args, attempt=5)
    assert first["result"] == second["result"] == "incident"
    assert first["incident"] == second["incident"]
    incident = Incident.objects.get()
    assert incident.attempts == 5
    assert refusing.history.filter(kind=HistoryEntry.INCIDENT).count() == 1


def test_no_retries_setting_makes_the_first_failure_an_incident(refusing, settings):
    settings.FLOWR_TIMER_RETRIES = 0
    assert [r.return_value["result"] for r in run_due_tasks(ahead=LATER)] == ["incident"]
    assert Incident.objects.get().attempts == 1
