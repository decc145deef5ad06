"""Operator controls from programs: cancel, suspend/resume, move to any state, undo."""
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from flowr import builder, controls, engine
from flowr.exceptions import (
    AlreadyMoved, ControlError, ControlPermissionDenied, HookFailed, InstanceNotActive,
    ReasonRequired, StatusForbids, UndoRefused, UnknownState,
)
from flowr.models import HistoryEntry, Instance
from flowr.rules import Rule, RuleSet, register
from flowr.statestore import get_store
from flowr.sync import sync_rule_sets
from flowr.taskstate import task_id
from tests.test_statestore import DJANGO_STORE, STORES

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def fresh(instance):
    return Instance.objects.get(pk=instance.pk)


def assert_replays(instance):
    """The row's position equals the replay of its history, seqs chain 0..last_seq."""
    row = fresh(instance)
    entries = list(row.history.all())
    assert sorted(e.seq for e in entries) == list(range(row.last_seq + 1))
    assert engine.replay(entries) == engine.position_of(row)
    return row


def perm_user(django_user_model, name, *codenames):
    user = django_user_model.objects.create_user(name, password="pw", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(content_type__app_label="flowr",
                                                         codename=codename))
    return django_user_model.objects.get(pk=user.pk)


@pytest.fixture
def ticket(demo_machines):
    """A support ticket at Open (times_opened = 1)."""
    instance = demo_machines["support"].start(business_key="T-1", title="Printer on fire",
                                              task_state={"customer": "Acme"})
    instance.step()
    return instance


# -- cancel, suspend, resume ------------------------------------------------------------

def test_cancel_is_final_and_recorded_once(ticket, admin_user):
    position = ticket.step_count
    entry = controls.cancel(ticket, reason="Duplicate of T-0", user=admin_user,
                            expected_position=position)
    row = assert_replays(ticket)
    assert (row.status, row.step_count, row.state_name) == ("cancelled", position + 1, "Open")
    assert (entry.kind, entry.note, entry.user, entry.status) == (
        "cancel", "Duplicate of T-0", admin_user, "cancelled")
    assert ticket.status == "cancelled"  # the caller's object is updated too
    with pytest.raises(InstanceNotActive, match="T-1.* was cancelled; it cannot step"):
        fresh(ticket).step(to="Resolved")
    for control in (controls.cancel, controls.suspend, controls.resume):
        with pytest.raises(StatusForbids, match="is cancelled; only .* instances can be"):
            control(fresh(ticket), reason="again")
    assert row.history.count() == row.last_seq + 1 == 3


def test_suspend_refuses_steps_and_resume_restarts_the_deadline(ticket, admin_user):
    graph = engine.compiled(ticket.version)
    graph.options[ticket.state_key] = {"due_after": 3600}  # Open is due an hour after entry
    entered = timezone.now() - timedelta(minutes=50)
    Instance.objects.filter(pk=ticket.pk).update(due_at=entered + timedelta(hours=1))
    controls.suspend(fresh(ticket), reason="Customer on holiday", user=admin_user)
    row = fresh(ticket)
    assert (row.status, row.due_at) == ("suspended", None)
    assert row.allowed_steps(admin_user) == []
    with pytest.raises(InstanceNotActive, match="is suspended; resume it first"):
        row.step(to="Resolved")
    with pytest.raises(StatusForbids, match="only active instances can be suspended"):
        controls.suspend(row, reason="twice")
    before = timezone.now()
    controls.resume(row, reason="Back", user=admin_user)
    row = assert_replays(ticket)
    assert row.status == "active"
    # The full due-after period starts again from the resume.
    assert before + timedelta(seconds=3600) <= row.due_at <= timezone.now() + \
        timedelta(seconds=3600)
    row.step(to="Resolved")
    kinds = list(row.history.order_by("seq").values_list("kind", flat=True))
    assert kinds == ["start", "step", "suspend", "resume", "step"]
    assert_replays(ticket)


def test_a_stale_position_is_refused_and_changes_nothing(ticket):
    seen = ticket.step_count
    fresh(ticket).step(to="Resolved")
    for control in (controls.cancel, controls.suspend):
        with pytest.raises(AlreadyMoved, match="has already moved on"):
            control(fresh(ticket), reason="late", expected_position=seen)
    with pytest.raises(AlreadyMoved):
        controls.move_to_state(fresh(ticket), "New", run_hooks=False, reason="late",
                               expected_position=seen)
    with pytest.raises(AlreadyMoved):
        controls.undo_last_step(fresh(ticket), reason="late", expected_position=seen)
    row = fresh(ticket)
    assert (row.state_name, row.status, row.last_seq) == ("Resolved", "active", 2)


@pytest.mark.parametrize("reason", ["", "   ", None, "x" * 2001, "a\x00b", 42])
def test_a_reason_is_required(ticket, reason):
    with pytest.raises(ReasonRequired):
        controls.cancel(ticket, reason=reason)
    assert fresh(ticket).status == "active"


def test_each_control_needs_its_permission(ticket, django_user_model):
    nobody = perm_user(django_user_model, "nobody")
    suspender = perm_user(django_user_model, "suspender", "suspend_instance")
    for control, kwargs in ((controls.cancel, {}), (controls.suspend, {}),
                            (controls.undo_last_step, {}),
                            (controls.move_to_state, {"target": "New", "run_hooks": False})):
        with pytest.raises(ControlPermissionDenied, match="nobody may not"):
            control(fresh(ticket), reason="r", user=nobody, **kwargs)
    with pytest.raises(ControlPermissionDenied, match="flowr.cancel_instance"):
        controls.cancel(fresh(ticket), reason="r", user=suspender)
    controls.suspend(fresh(ticket), reason="r", user=suspender)
    controls.resume(fresh(ticket), reason="r", user=suspender)
    assert fresh(ticket).history.count() == 4


# -- move to any state ------------------------------------------------------------------------

def test_move_with_hooks_runs_them_and_records_the_guard_warnings(ticket, admin_user):
    assert controls.preview_move(ticket, "Closed")[2] == [
        "Entering 'Closed': the customer has not confirmed the fix yet; wait on the customer "
        "first (or set customer_confirmed in the task state)."]
    entry = controls.move_to_state(ticket, "New", run_hooks=True, reason="Reopen from scratch",
                                   user=admin_user)
    assert (entry.kind, entry.from_name, entry.to_name) == ("jump", "Open", "New")
    controls.move_to_state(ticket, "open", run_hooks=True, reason="Open again")
    assert fresh(ticket).task_state["times_opened"] == 2  # Open.on_enter ran
    entry = controls.move_to_state(ticket, "Closed", run_hooks=True, reason="Customer called")
    row = assert_replays(ticket)
    assert (row.status, row.outcome, row.state_name) == ("finished", "closed", "Closed")
    assert entry.data == {"run_hooks": True, "guard_warnings": [
        "Entering 'Closed': the customer has not confirmed the fix yet; wait on the customer "
        "first (or set customer_confirmed in the task state)."]}
    assert row.step_count == 4


def test_move_without_hooks_skips_them(ticket):
    controls.move_to_state(ticket, "New", run_hooks=False, reason="r")
    controls.move_to_state(ticket, "Open", run_hooks=False, reason="r")
    row = assert_replays(ticket)
    assert row.task_state["times_opened"] == 1
    assert row.history.first().data["run_hooks"] is False


def test_move_needs_an_explicit_hook_choice_and_a_known_state(ticket):
    with pytest.raises(TypeError):
        controls.move_to_state(ticket, "New", reason="r")  # run_hooks has no default
    with pytest.raises(ControlError, match="run_hooks=True or False"):
        controls.move_to_state(ticket, "New", run_hooks="yes", reason="r")
    with pytest.raises(UnknownState, match="'Nowhere' is not a state .* choose one of: Closed"):
        controls.move_to_state(ticket, "Nowhere", run_hooks=False, reason="r")
    controls.suspend(ticket, reason="wait")
    with pytest.raises(StatusForbids, match="suspended; only active .* Resume it first"):
        controls.move_to_state(ticket, "New", run_hooks=False, reason="r")
    assert fresh(ticket).history.count() == 3


@pytest.fixture
def breaking_machine(db):
    """Start → Middle → End, where Middle.on_enter writes the task state, then raises."""
    class Start(Rule):
        children = ["Middle"]

    class Middle(Rule):
        children = ["End"]

        def on_enter(self, instance):
            instance.task_state["half"] = True
            raise RuntimeError("middle is broken")

    class End(Rule):
        outcome = "done"

    register(RuleSet("controls_break", root=Start, rules=[Start, Middle, End]))
    sync_rule_sets()
    machine = builder.create_machine("controls_break", "Breaking")
    middle = builder.add_child(machine.root_state, "controls_break.Middle")
    builder.add_child(middle, "controls_break.End")
    machine.publish()
    return machine


def test_a_failing_hook_leaves_the_instance_as_it_was(breaking_machine):
    instance = breaking_machine.start()
    with pytest.raises(HookFailed, match="middle is broken"):
        controls.move_to_state(instance, "Middle", run_hooks=True, reason="r")
    row = fresh(instance)
    assert (row.state_name, row.last_seq, row.task_state) == ("Start", 0, {})
    controls.move_to_state(row, "Middle", run_hooks=False, reason="skip the broken hook")
    assert assert_replays(instance).state_name == "Middle"


# -- undo -------------------------------------------------------------------------------

def test_undo_restores_position_task_state_and_search_data(demo_machines, admin_user):
    order = demo_machines["orders"].start(task_state={"customer": "Acme", "amount": 5})
    order.step()  # Submitted
    order.step(to="Rejected", data={"reason": "too cheap"})
    row = fresh(order)
    assert (row.status, row.outcome) == ("finished", "rejected")
    assert row.search_data["rejection_reason"] == "too cheap"
    entry = controls.undo_last_step(row, reason="Rejected by mistake", user=admin_user,
                                    expected_position=row.step_count)
    row = assert_replays(order)
    assert (entry.kind, entry.from_name, entry.to_name, entry.data["undone_seq"]) == (
        "undo", "Rejected", "Submitted", 2)
    assert (row.state_name, row.status, row.outcome, row.step_count) == (
        "Submitted", "active", "", 3)
    assert row.task_state == {"customer": "Acme", "amount": 5}
    assert row.search_data == {"customer": "Acme", "amount": 5}
    assert row.history.count() == 4  # a new entry, nothing deleted
    with pytest.raises(UndoRefused, match="is an undo .Rejected → Submitted., not a step"):
        controls.undo_last_step(row, reason="again")


def test_undo_is_refused_after_anything_else_happened(ticket, admin_user):
    ticket.step(to="Waiting on customer")
    engine.save_task_state(fresh(ticket), {"customer": "Acme", "edited": True})
    with pytest.raises(UndoRefused, match="is a task state edited .*not a step"):
        controls.undo_last_step(fresh(ticket), reason="r")
    controls.suspend(fresh(ticket), reason="r")
    with pytest.raises(StatusForbids, match="is suspended"):
        controls.undo_last_step(fresh(ticket), reason="r")
    controls.resume(fresh(ticket), reason="r")
    with pytest.raises(UndoRefused, match="resume"):
        controls.undo_last_step(fresh(ticket), reason="r")
    fresh(ticket).step()  # back to Open: a step again, undoable
    controls.undo_last_step(fresh(ticket), reason="r")
    assert assert_replays(ticket).state_name == "Waiting on customer"


def test_undo_of_a_start_or_of_a_version_move_is_refused(example_machine):
    instance = example_machine.start()
    with pytest.raises(UndoRefused, match="has taken no step yet; there is nothing to undo"):
        controls.undo_last_step(instance, reason="r")


def test_undo_is_refused_when_the_earlier_task_state_is_gone(ticket):
    row = fresh(ticket)
    previous = row.task_state_previous
    get_store().delete_state(task_id(row.pk, previous))
    with pytest.raises(UndoRefused, match="Printer on fire .* no longer kept"):
        controls.undo_last_step(row, reason="r")
    assert fresh(ticket).last_seq == 1


def test_undo_of_an_operator_move_and_of_a_step_that_kept_the_task_state(ticket):
    controls.move_to_state(ticket, "Closed", run_hooks=False, reason="r")
    controls.undo_last_step(ticket, reason="wrong move")
    fresh(ticket).step(to="Resolved")  # the task state is unchanged by this step
    controls.undo_last_step(fresh(ticket), reason="r")
    row = assert_replays(ticket)
    assert (row.state_name, row.status) == ("Open", "active")
    assert row.task_state == {"customer": "Acme", "times_opened": 1}


def test_replay_equals_position_after_any_mix(ticket, admin_user):
    ticket.step(to="Waiting on customer")
    controls.suspend(ticket, reason="a")
    controls.resume(ticket, reason="b")
    ticket.step()
    controls.undo_last_step(ticket, reason="c")
    controls.move_to_state(ticket, "Resolved", run_hooks=True, reason="d")
    controls.undo_last_step(ticket, reason="e")
    controls.move_to_state(ticket, "New", run_hooks=False, reason="f")
    ticket.step()
    controls.cancel(ticket, reason="g")
    row = assert_replays(ticket)
    assert (row.state_name, row.status) == ("Open", "cancelled")
    kinds = [e.kind for e in row.history.order_by("seq")]
    assert kinds == ["start", "step", "step", "suspend", "resume", "step", "undo", "jump",
                     "undo", "jump", "step", "cancel"]
    assert row.step_count == len(kinds) - 1


def test_replay_refuses_a_history_that_does_not_chain(ticket):
    controls.suspend(ticket, reason="r")
    entries = list(fresh(ticket).history.all())
    entries[0].from_key = "new"  # the suspend entry claims another state
    with pytest.raises(engine.ReplayError, match="suspend"):
        engine.replay(entries)


def test_controls_send_one_signal_after_commit(ticket, django_capture_on_commit_callbacks):
    from flowr import signals

    seen = []

    def receiver(sender, instance, entry, user, **kwargs):
        seen.append(entry.kind)

    signals.instance_controlled.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            controls.suspend(ticket, reason="r")
            controls.resume(ticket, reason="r")
    finally:
        signals.instance_controlled.disconnect(receiver)
    assert seen == ["suspend", "resume"]


def test_history_entries_name_the_control(ticket):
    controls.suspend(ticket, reason="r")
    entry = HistoryEntry.objects.get(instance=ticket, kind="suspend")
    assert str(entry) == "Suspend at Open"


# -- undo with each store (Django models, real Redis) -------------------------------------

@pytest.fixture(params=STORES)
def any_store(request, settings, db):
    """Each built-in store in turn (the Redis one on this checkout's test DB)."""
    if request.param == "redis":
        request.getfixturevalue("redis_db")
    else:
        settings.FLOWS_STATE_STORE = DJANGO_STORE
    settings.FLOWS_TASK_IDLE_TIMEOUT = 60
    return get_store()


def test_undo_restores_the_task_state_with_each_store(any_store, demo_machines):
    ticket = demo_machines["support"].start(task_state={"customer": "Initech"})
    ticket.step()  # Open counts times_opened
    ticket.step(to="Waiting on customer")
    ticket.step()  # Waiting confirms, Open counts again
    controls.undo_last_step(ticket, reason="r")
    row = assert_replays(ticket)
    assert row.task_state == {"customer": "Initech", "times_opened": 1}
    assert row.search_data == {"customer": "Initech"}
    # The first write of an empty task state is undone to an empty one.
    empty = demo_machines["support"].start()
    empty.step()
    assert fresh(empty).task_state == {"times_opened": 1}
    controls.undo_last_step(empty, reason="r")
    assert assert_replays(empty).task_state == {}


def test_undo_refuses_when_a_written_first_version_expired(any_store, demo_machines):
    ticket = demo_machines["support"].start(task_state={"customer": "Initech"})
    ticket.step()
    any_store.delete_state(task_id(ticket.pk, 0))  # as if it had expired
    with pytest.raises(UndoRefused, match="no longer kept"):
        controls.undo_last_step(fresh(ticket), reason="r")
    assert fresh(ticket).task_state == {"customer": "Initech", "times_opened": 1}
