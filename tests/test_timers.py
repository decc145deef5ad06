"""Deadlines: scheduling in the step's transaction, firing once, stale timers, reminders."""
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from flowr import engine, signals, taskqueue
from flowr.exceptions import HookFailed
from flowr.models import HistoryEntry, Instance
from tests.timer_support import queued, run_due_tasks, timed_example, timed_machine

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
LATER = timedelta(days=2)  # run tasks as if this much time had passed


def _position(instance):
    instance.refresh_from_db()
    return engine.replay(instance.history.all()), engine.position_of(instance)


def test_entering_a_timed_state_sets_due_time_and_schedules_in_the_same_transaction():
    machine = timed_machine(due_after=2 * 86400, remind_after=86400)
    before = timezone.now()
    instance = machine.start()
    assert before + timedelta(days=2) <= instance.due_at <= timezone.now() + timedelta(days=2)
    timeout, = queued("fire_timeout")
    reminder, = queued("send_reminder")
    assert timeout.run_after == instance.due_at
    assert reminder.run_after == instance.state_entered_at + timedelta(days=1)
    escalated = machine.states.get(name="Escalated").key
    assert timeout.args_kwargs["args"] == [str(instance.pk), 0, machine.root_state.key,
                                           escalated, 2 * 86400]


def test_a_rolled_back_or_failed_step_schedules_nothing():
    machine = timed_machine(due_after=60)
    waiting = machine.root_state.key
    instance = machine.start()
    instance.step(to="Escalated")
    count = queued().count()
    with pytest.raises(RuntimeError), transaction.atomic():
        instance.step(to=waiting)
        assert queued().count() == count + 1
        raise RuntimeError("an outer transaction rolls back")
    assert queued().count() == count
    instance = Instance.objects.get(pk=instance.pk)
    engine.save_task_state(instance, {"explode": True})
    with pytest.raises(HookFailed):
        instance.step(to=waiting)
    assert queued().count() == count
    instance.refresh_from_db()
    assert instance.state_name == "Escalated" and instance.due_at is None


def test_the_timeout_steps_once_as_system_with_a_note():
    machine = timed_machine(due_after=2 * 86400)
    instance = machine.start()
    assert run_due_tasks() == []  # not due yet
    done = run_due_tasks(ahead=LATER)
    assert [row.return_value["result"] for row in done] == ["fired"]
    instance.refresh_from_db()
    assert instance.state_name == "Escalated" and instance.due_at is None
    entry = instance.history.get(seq=1)
    assert (entry.kind, entry.user, entry.note) == (HistoryEntry.TIMEOUT, None,
                                                   "timeout after 2 days")
    assert engine.replay(instance.history.all())[1] == instance.state_key
    # The same task run again (a worker crashed after stepping) changes nothing.
    row = done[0]
    from flowr import tasks

    again = tasks.fire_timeout.call(*row.args_kwargs["args"])
    assert again["result"] == "stale"
    instance.refresh_from_db()
    assert instance.step_count == 1 and instance.history.count() == 2


def test_a_timer_is_stale_after_a_manual_step_even_back_in_the_same_state():
    machine = timed_machine(due_after=60)
    done_state = machine.states.get(name="Done")
    instance = machine.start()
    instance.step(to="Escalated")
    instance.step(to=done_state.key)
    results = [row.return_value for row in run_due_tasks(ahead=LATER)]
    assert [r["result"] for r in results] == ["stale"]
    assert "moved on" in results[0]["reason"]
    instance.refresh_from_db()
    assert instance.history.filter(kind=HistoryEntry.TIMEOUT).count() == 0


@pytest.mark.parametrize("status", [Instance.CANCELLED, Instance.SUSPENDED])
def test_a_timer_is_stale_after_cancel_or_suspend(status):
    machine = timed_machine(due_after=60)
    instance = machine.start()
    # Set through the row (as flowr.controls does: a new position, status changed).
    Instance.objects.filter(pk=instance.pk).update(status=status, step_count=1)
    result, = [row.return_value for row in run_due_tasks(ahead=LATER)]
    assert result["result"] == "stale"
    instance.refresh_from_db()
    assert instance.state_name == "Waiting" and instance.status == status


def test_a_timer_of_an_expired_instance_is_stale(settings):
    machine = timed_machine(due_after=60)
    instance = machine.start()
    Instance.objects.filter(pk=instance.pk).update(
        last_activity=timezone.now() - timedelta(hours=1))
    settings.FLOWS_TASK_IDLE_TIMEOUT = 600
    result, = [row.return_value for row in run_due_tasks(ahead=LATER)]
    assert result["result"] == "stale" and "expired" in result["reason"]


def test_a_version_move_makes_the_old_timer_stale_and_schedules_the_new_deadline():
    from flowr import builder

    machine = timed_machine(due_after=3600)
    instance = machine.start()
    builder.update_state(machine.root_state, options={
        "due_after": 7200, "timeout_to": machine.states.get(name="Escalated").key})
    v2 = machine.publish()
    engine.move(instance, v2)
    instance.refresh_from_db()
    assert instance.due_at == instance.state_entered_at + timedelta(hours=2)
    old, new = queued("fire_timeout")
    assert (old.args_kwargs["args"][1], new.args_kwargs["args"][1]) == (0, 1)
    assert new.run_after == instance.due_at
    results = [row.return_value["result"] for row in run_due_tasks(ahead=LATER)]
    assert results == ["stale", "fired"]
    instance.refresh_from_db()
    assert instance.state_name == "Escalated" and instance.step_count == 2


def test_no_timing_no_tasks():
    from tests.factories import cycle_machine

    instance = cycle_machine(3).start()
    instance.step()
    assert instance.due_at is None and queued().count() == 0


def test_the_reminder_writes_a_note_and_sends_instance_due_after_commit():
    machine = timed_example(due_after=7200, remind_after=3600)
    instance = machine.start()
    received = []

    def receiver(sender, instance, entry, user, **kwargs):
        received.append((instance.pk, entry.kind, user))
    signals.instance_due.connect(receiver)
    try:
        with transaction.atomic():
            results = [row.return_value["result"]
                       for row in run_due_tasks(ahead=timedelta(minutes=61))]
            assert received == []  # not before COMMIT
    finally:
        signals.instance_due.disconnect(receiver)
    assert results == ["reminded"]
    instance.refresh_from_db()
    note = instance.history.get(kind=HistoryEntry.REMIND)
    assert note.note.startswith("reminder after 1 hour; due ")
    assert instance.step_count == 0 and instance.last_seq == 1
    assert engine.replay(instance.history.all())[1] == instance.state_key


def test_a_reminder_after_the_instance_moved_on_is_stale():
    machine = timed_example(due_after=7200, remind_after=3600)
    instance = machine.start()
    instance.step()
    results = [row.return_value["result"] for row in run_due_tasks(ahead=LATER)]
    assert results == ["stale", "stale"]
    assert not instance.history.filter(kind=HistoryEntry.REMIND).exists()


def test_the_sweep_requeues_abandoned_flowr_tasks_only(settings):
    settings.FLOWR_TIMER_LEASE = 60
    machine = timed_example(due_after=1)
    instance = machine.start()
    row, = queued("fire_timeout")
    row.claim("killed-worker")  # claimed, then the worker was killed
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.filter(pk=row.pk).update(
        started_at=timezone.now() - timedelta(minutes=5))
    assert taskqueue.abandoned_report()["abandoned"] == 1
    assert taskqueue.requeue_abandoned() == 1
    assert [r.return_value["result"] for r in run_due_tasks(ahead=LATER)] == ["fired"]
    instance.refresh_from_db()
    assert instance.state_name == "B"


def test_ensure_sweep_keeps_exactly_one_sweep_waiting():
    assert taskqueue.ensure_sweep() is True
    assert taskqueue.ensure_sweep() is False
    from flowr import tasks

    tasks.sweep.enqueue()  # a duplicate (e.g. two chains after a crash)
    taskqueue.ensure_sweep()
    assert queued("sweep").count() == 1
    done = run_due_tasks(ahead=timedelta(hours=1), limit=1, sweep=True)
    assert done[0].return_value == {"result": "swept", "requeued": 0}
    assert queued("sweep").count() == 1  # it scheduled its successor


@pytest.mark.parametrize("name, value", [("FLOWR_TIMER_RETRIES", 1.5),
                                         ("FLOWR_TIMER_LEASE", -1),
                                         ("FLOWR_TIMERS_LATE_AFTER", "soon")])
def test_bad_timer_settings_are_system_check_errors(settings, name, value):
    from flowr.checks import check_timer_settings

    assert check_timer_settings(None) == []
    setattr(settings, name, value)
    errors = check_timer_settings(None)
    assert [e.id for e in errors] == ["flowr.E003"] and name in errors[0].msg


def test_entering_a_timed_state_costs_one_insert_per_task():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from flowr import builder

    machine = timed_machine(due_after=600, remind_after=60)
    timed_version = machine.latest_version()
    builder.update_state(machine.root_state, options={})
    plain_version = machine.publish()

    def back_to_waiting(version):
        instance = machine.start(version=version)
        instance.step(to="Escalated")
        with CaptureQueriesContext(connection) as queries:
            instance.step(to=machine.root_state.key)
        return [q["sql"] for q in queries.captured_queries]
    plain, timed = back_to_waiting(plain_version), back_to_waiting(timed_version)
    assert len(timed) == len(plain) + 2  # the timeout and the reminder
    inserts = [q for q in timed if q.startswith('INSERT INTO "django_tasks_database_dbtaskresult"')]
    assert len(inserts) == 2


def test_the_timers_command_reports_and_recovers(capsys):
    from django.core.management import call_command

    machine = timed_machine(due_after=60)
    machine.start()
    run_due_tasks(ahead=LATER)
    machine.start()
    call_command("timers", "--ensure-sweep", "--requeue-abandoned")
    out = capsys.readouterr().out
    for line in ("Sweep task queued.", "Re-queued 0 abandoned tasks.", "timers_fired: 1",
                 "fire_timeout_ready: 1", "fire_timeout_successful: 1", "open_incidents: 0"):
        assert line in out.splitlines(), out


def test_instance_stepped_receivers_see_the_instance_after_a_timed_step(
        django_capture_on_commit_callbacks):
    seen = []

    def receiver(sender, instance, entry, user, **kwargs):
        seen.append((instance.pk, instance.state_name, instance.step_count, entry.kind, user))
    machine = timed_machine(due_after=60)
    instance = machine.start()
    signals.instance_stepped.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            run_due_tasks(ahead=LATER)
        with django_capture_on_commit_callbacks(execute=True):
            Instance.objects.get(pk=instance.pk).step(to="Done")
    finally:
        signals.instance_stepped.disconnect(receiver)
    assert seen == [(instance.pk, "Escalated", 1, HistoryEntry.TIMEOUT, None),
                    (instance.pk, "Done", 2, HistoryEntry.STEP, None)]


def test_a_migration_keeping_the_state_reschedules_its_deadline_from_entry(admin_user):
    from flowr import builder
    from flowr import migrations_api as migrations

    machine = timed_machine(due_after=3600, remind_after=60)
    instance = machine.start()
    Instance.objects.filter(pk=instance.pk).update(  # entered 10 minutes ago
        state_entered_at=timezone.now() - timedelta(minutes=10))
    builder.update_state(machine.root_state, options={
        "due_after": 7200, "timeout_to": machine.states.get(name="Escalated").key})
    v2 = machine.publish()
    plan = migrations.plan_migration(machine, v2, instances=Instance.objects.all())
    migrations.migrate(plan, user=admin_user)
    instance.refresh_from_db()
    assert (instance.version, instance.step_count) == (v2, 1)
    assert instance.due_at == instance.state_entered_at + timedelta(hours=2)
    reminders = queued("send_reminder")
    assert [r.args_kwargs["args"][1] for r in reminders] == [0]  # its time passed: not again
    results = [row.return_value["result"] for row in run_due_tasks(ahead=LATER)]
    assert sorted(results) == ["fired", "stale", "stale"]
    instance.refresh_from_db()
    assert instance.state_name == "Escalated"
    assert instance.history.filter(kind=HistoryEntry.TIMEOUT).count() == 1
