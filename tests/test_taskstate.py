"""Versioned task state (flowr.taskstate): the committed row alone decides, in every store."""
import pytest
from django.db import transaction

from flowr import engine, taskstate
from flowr.exceptions import AlreadyMoved, TaskStateGone
from flowr.models import HistoryEntry, Instance
from flowr.statestore import StateNotFound, get_store

pytestmark = [pytest.mark.postgres]


@pytest.fixture(params=["django", "redis"])
def store(request, settings):
    request.getfixturevalue("db")
    if request.param == "redis":
        request.getfixturevalue("redis_db")
    else:
        settings.FLOWS_STATE_STORE = "flowr.statestore.django_store"
    settings.FLOWS_TASK_IDLE_TIMEOUT = 600
    return get_store()


def fresh(instance):
    return Instance.objects.get(pk=instance.pk)


def stored(store, instance, version):
    try:
        return store.get_state(taskstate.task_id(instance.pk, version))
    except StateNotFound:
        return None


@pytest.mark.django_db(transaction=True)
def test_each_write_is_a_new_version_the_previous_is_kept_the_older_retired(store,
                                                                           demo_machines):
    ticket = demo_machines["support"].start()
    versions = []
    for to in ("Open", "Waiting on customer", "Open", "Waiting on customer", "Open"):
        ticket.step(to=to)
        versions.append(fresh(ticket).task_state_version)
    # A version is the seq of the entry that wrote it; entering Waiting changes nothing.
    assert versions == [1, 1, 3, 3, 5]
    row = fresh(ticket)
    assert row.task_state == {"times_opened": 3, "customer_confirmed": True}
    assert stored(store, row, row.task_state_previous) is not None  # kept for undo
    assert (row.task_state_version, row.task_state_previous) == (5, 3)
    assert stored(store, row, 1) is None  # retired after COMMIT


@pytest.mark.django_db(transaction=True)
def test_restore_makes_the_kept_version_current_and_retires_the_later(store, demo_machines):
    ticket = demo_machines["support"].start()
    ticket.step(to="Open")
    engine.save_task_state(fresh(ticket), {"times_opened": 1, "edited": True})
    row = fresh(ticket)
    later, kept = row.task_state_version, row.task_state_previous
    with transaction.atomic():
        locked = engine.lock(row.pk)
        fields = taskstate.restore(locked, kept)
        locked.save(update_fields=fields)
    row = fresh(ticket)
    assert (row.task_state_version, row.task_state) == (kept, {"times_opened": 1})
    assert stored(store, row, later) is None
    with transaction.atomic(), pytest.raises(TaskStateGone, match="no longer kept"):
        taskstate.restore(engine.lock(row.pk), later)


@pytest.mark.django_db(transaction=True)
def test_a_write_inside_an_outer_transaction_that_rolls_back_is_never_read(store,
                                                                           demo_machines):
    ticket = demo_machines["support"].start()
    ticket.step(to="Open")
    before = fresh(ticket)
    with pytest.raises(RuntimeError), transaction.atomic():
        fresh(ticket).step(to="Waiting on customer")
        engine.save_task_state(fresh(ticket), {"lost": True})
        raise RuntimeError("the caller's own transaction fails")
    assert fresh(ticket).task_state == before.task_state == {"times_opened": 1}
    assert fresh(ticket).task_state_version == before.task_state_version


def test_task_state_edits_are_history_and_stale_edits_are_refused(store, example_machine):
    instance = example_machine.start()
    engine.save_task_state(instance, {"a": 1})
    edit = fresh(instance).history.first()
    assert (edit.kind, edit.seq, edit.task_state_version) == (HistoryEntry.EDIT, 1, 1)
    first, second = fresh(instance), fresh(instance)
    first.task_state["a"] = 2
    second.task_state["a"] = 3
    engine.save_task_state(first)
    with pytest.raises(AlreadyMoved, match="changed meanwhile"):
        engine.save_task_state(second)
    assert fresh(instance).task_state == {"a": 2}


def deep(levels):
    value = {}
    for _ in range(levels):
        value = {"d": value}
    return value


@pytest.mark.parametrize("bad", [{"x": "nul\x00"}, {"x": "\ud800"}, deep(100)],
                         ids=["nul", "surrogate", "deep"])
def test_task_state_a_database_cannot_hold_is_refused(store, example_machine, bad):
    from flowr.statestore import StateNotSerialisable

    instance = example_machine.start()
    with pytest.raises(StateNotSerialisable):
        engine.save_task_state(fresh(instance), bad)
    assert fresh(instance).task_state == {} and fresh(instance).last_seq == 0


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_redis_round_trips_per_step(redis_db, settings, demo_machines, monkeypatch):
    """Unchanged task state: one EXPIRE. Changed: SET before COMMIT, one pipelined
    EXPIRE+DEL after it. Reading it in a hook: one GETEX."""
    from redis.connection import AbstractConnection

    settings.FLOWS_TASK_IDLE_TIMEOUT = 600
    sent = []
    real = AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return real(self, command, check_health)

    ticket = demo_machines["support"].start()
    ticket.step(to="Open")  # writes times_opened
    ticket.step(to="Waiting on customer")  # no hook: touch only
    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    fresh(ticket).step(to="Open")  # hooks read (GETEX) and write (SET); retire after COMMIT
    changed = len(sent)
    instance = fresh(ticket)
    assert instance.task_state  # loaded before the step: the step shares it (no re-read)
    sent.clear()
    engine.step(instance, to="Resolved")  # unchanged: one EXPIRE
    assert (changed, len(sent)) == (3, 1)


def idle_clock(store, task):
    """When the task state's idle timeout started (Django row) or how long is left (Redis)."""
    from flowr.models import TaskStateRecord
    from flowr.statestore import redis_store

    if store.transactional:
        return TaskStateRecord.objects.get(task_id=task).updated_at
    return -redis_store.client().pttl(redis_store.KEY_PREFIX + task)


def test_looking_at_an_instance_page_does_not_restart_the_idle_clock(store, example_machine,
                                                                     staff_client):
    from django.urls import reverse

    from tests.test_statestore import age

    instance = example_machine.start()
    engine.save_task_state(instance, {"kept": True})
    task = taskstate.task_id(instance.pk, fresh(instance).task_state_version)
    age(store, task, 300)  # as if last touched five minutes ago
    before = idle_clock(store, task)
    page = staff_client.get(reverse("admin:flowr_instance_change", args=[instance.pk]))
    assert "&quot;kept&quot;: true" in page.content.decode()
    assert idle_clock(store, task) >= before  # a GET changes nothing, not even the clock
    if store.transactional:
        assert idle_clock(store, task) == before
    assert fresh(instance).task_state == {"kept": True}  # a program's read is interaction
    assert idle_clock(store, task) < before if not store.transactional else \
        idle_clock(store, task) > before
