"""Publishing, starting and stepping instances (spec §2–§3)."""
import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from flowr import builder, engine
from flowr.exceptions import (
    AlreadyMoved, ChoiceRequired, FlowrError, GraphError, HookFailed, InstanceFinished, InvalidStep,
    InstanceNotActive, MoveError, NotPublished, StepError, StepPermissionDenied, StepRefused,
)
from flowr.models import HistoryEntry, Instance, MachineVersion
from flowr.rules import Rule, RuleSet, register, unregister
from flowr.sync import sync_rule_sets
from tests.factories import cycle_machine

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def replay(instance):
    """Position reached by replaying the history from the start."""
    entries = list(instance.history.order_by("seq"))
    assert [e.seq for e in entries] == list(range(len(entries)))
    for before, after in zip(entries, entries[1:], strict=False):
        assert after.from_key == before.to_key
    return entries[-1].to_key


def test_publish_freezes_a_numbered_version_and_skips_unchanged(example_machine):
    v1 = example_machine.latest_version()
    assert v1.number == 1 and len(v1.checksum) == 64
    assert {s["name"] for s in v1.definition["states"]} == {"A", "C", "D", "E"}
    again = example_machine.publish()
    assert again.pk == v1.pk and again.is_new is False
    builder.update_state(example_machine.states.get(name="D"), name="Done")
    v2 = example_machine.publish()
    assert (v2.number, v2.is_new) == (2, True)
    assert MachineVersion.objects.filter(machine=example_machine).count() == 2


def test_publish_refuses_a_graph_that_breaks_the_rules(example_machine):
    unregister("flowr_example")
    with pytest.raises(GraphError, match="cannot be published"):
        example_machine.publish()


def test_start_needs_a_published_version():
    machine = builder.create_machine("flowr_example", "Draft only")
    with pytest.raises(NotPublished, match="no published version; publish it first"):
        machine.start()


def test_start_then_step_through_the_example(example_machine, admin_user):
    instance = example_machine.start(user=admin_user)
    assert (instance.state_name, instance.status, instance.started_by) == ("A", "active",
                                                                        admin_user)
    assert [o.name for o in instance.allowed_steps()] == ["C"]
    instance.step(user=admin_user, note="go")  # one child: no choice needed
    assert instance.state_name == "C"
    with pytest.raises(ChoiceRequired, match="has 2 next steps; choose one of: D, E"):
        instance.step()
    instance.step(to="E")
    instance.step()  # E→A loop
    assert instance.state_name == "A"
    instance.step()
    d_key = example_machine.states.get(name="D").key
    instance.step(to=d_key)  # by stable key
    assert (instance.state_name, instance.status) == ("D", Instance.FINISHED)
    with pytest.raises(InstanceFinished):
        instance.step()
    stored = Instance.objects.get(pk=instance.pk)
    assert replay(stored) == stored.state_key == d_key
    first = stored.history.get(seq=1)
    assert (first.from_name, first.to_name, first.user, first.note) == ("A", "C", admin_user,
                                                                        "go")


def test_step_to_a_state_that_is_not_a_child_is_refused(example_machine):
    instance = example_machine.start()
    with pytest.raises(InvalidStep, match="cannot step from 'A' to 'D'; the next steps are: C"):
        instance.step(to="D")
    assert Instance.objects.get(pk=instance.pk).state_name == "A"


def test_double_submission_steps_once(example_machine):
    instance = example_machine.start()
    root = instance.state_key
    instance.step(expected_state=root)
    with pytest.raises(AlreadyMoved, match="already moved on: it is now at 'C'"):
        engine.step(Instance.objects.get(pk=instance.pk), expected_state=root)
    assert instance.history.count() == 2


def _register_hooked(calls, fail_on=None, guard=None):
    class Start(Rule):
        children = ["Middle"]

        def on_leave(self, instance):
            calls.append("leave Start")
            instance.task_state["left"] = True
            if fail_on == "leave":
                raise RuntimeError("leave hook broke")

    class Middle(Rule):
        children = ["Start"]

        def guard_enter(self, instance, source):
            return guard

        def on_enter(self, instance):
            calls.append("enter Middle")
            instance.task_state["entered"] = True
            if fail_on == "enter":
                raise ValueError("enter hook broke")

    register(RuleSet("hooked", root=Start, rules=[Start, Middle]))
    sync_rule_sets()
    machine = builder.create_machine("hooked", "Hooked")
    builder.connect(builder.add_child(machine.root_state, "hooked.Middle"), machine.root_state)
    machine.publish()
    return machine


def test_hooks_run_on_leave_then_on_enter_and_write_task_state():
    calls = []
    instance = _register_hooked(calls).start()
    instance.step()
    assert calls == ["leave Start", "enter Middle"]
    fresh = Instance.objects.get(pk=instance.pk)
    assert fresh.task_state == {"left": True, "entered": True}


@pytest.mark.postgres
@pytest.mark.parametrize("fail_on", ["leave", "enter"])
def test_a_failing_hook_changes_nothing(fail_on):
    instance = _register_hooked([], fail_on=fail_on).start()
    engine.save_task_state(instance, {"kept": 1})
    with pytest.raises(HookFailed, match="hook broke. Nothing was changed"):
        instance.step()
    fresh = Instance.objects.get(pk=instance.pk)
    assert (fresh.state_name, fresh.step_count) == ("Start", 0)
    assert list(fresh.history.values_list("kind", flat=True)) == ["edit", "start"]
    assert fresh.task_state == {"kept": 1}


def test_a_guard_refuses_with_its_reason():
    instance = _register_hooked([], guard="the form is incomplete").start()
    with pytest.raises(StepRefused, match="refused: the form is incomplete"):
        instance.step()
    assert Instance.objects.get(pk=instance.pk).state_name == "Start"


def test_rule_permission_is_needed_to_step_into_a_state(demo_machines, django_user_model):
    orders = demo_machines["orders"]
    instance = orders.start()
    instance.step()  # Draft → Submitted
    clerk = django_user_model.objects.create_user("clerk", is_staff=True)
    clerk.groups.add(Group.objects.get_or_create(name="Order reviewers")[0])  # Submitted's candidates
    options = {o.name: o for o in instance.allowed_steps(user=clerk)}
    assert not options["Approved"].allowed and "flowr_demo.approve_order" in \
        options["Approved"].reason
    assert options["Rejected"].allowed
    with pytest.raises(StepPermissionDenied, match="needs the permission"):
        instance.step(to="Approved", user=clerk)
    clerk.user_permissions.add(Permission.objects.get(codename="approve_order"))
    clerk = django_user_model.objects.get(pk=clerk.pk)  # fresh permission cache
    instance.step(to="Approved", user=clerk)
    assert instance.state_name == "Approved"
    assert Instance.objects.get(pk=instance.pk).task_state == {"approved_limit": 5000}


def test_support_guard_and_hooks(demo_machines):
    ticket = demo_machines["support"].start()
    ticket.step()  # New → Open
    ticket.step(to="Resolved")
    with pytest.raises(StepRefused, match="customer has not confirmed"):
        ticket.step(to="Closed")
    ticket.step(to="Open")
    ticket.step(to="Waiting on customer")
    ticket.step()  # back to Open; on_leave of Waiting confirms
    ticket.step(to="Resolved")
    ticket.step(to="Closed")
    fresh = Instance.objects.get(pk=ticket.pk)
    assert fresh.status == "finished"
    assert fresh.task_state == {"times_opened": 3, "customer_confirmed": True}
    assert replay(fresh) == fresh.state_key


def test_editing_the_machine_never_changes_a_running_instance(example_machine):
    instance = example_machine.start()
    instance.step()  # at C
    builder.prune_state(example_machine.states.get(name="E"))
    example_machine.publish()
    assert [o.name for o in Instance.objects.get(pk=instance.pk).allowed_steps()] == ["D", "E"]


def test_an_unregistered_rule_refuses_to_step_clearly(example_machine):
    instance = example_machine.start()
    unregister("flowr_example")
    with pytest.raises(StepError, match="not registered"):
        instance.step()
    assert Instance.objects.get(pk=instance.pk).state_name == "A"
    assert [o.allowed for o in instance.allowed_steps()] == [False]


def test_idle_instances_expire(example_machine, settings):
    instance = example_machine.start()
    settings.FLOWS_TASK_IDLE_TIMEOUT = 60
    from datetime import timedelta

    Instance.objects.filter(pk=instance.pk).update(
        last_activity=instance.last_activity - timedelta(seconds=61))
    stale = Instance.objects.get(pk=instance.pk)
    assert stale.effective_status == "expired"
    assert stale.allowed_steps() == []
    with pytest.raises(InstanceNotActive, match="has expired"):
        stale.step()


def test_move_to_a_newer_version_keeps_the_state(example_machine):
    instance = example_machine.start()
    instance.step()  # at C
    builder.update_state(example_machine.states.get(name="C"), name="Check")
    v2 = example_machine.publish()
    engine.move(instance, v2)
    assert (instance.version, instance.state_name) == (v2, "Check")
    assert instance.history.order_by("-seq").first().kind == HistoryEntry.MOVE
    with pytest.raises(MoveError, match="already runs on version 2"):
        engine.move(instance, v2)
    builder.prune_state(example_machine.states.get(name="Check"))
    v3 = example_machine.publish()
    with pytest.raises(MoveError, match="does not exist in version 3"):
        engine.move(instance, v3)


def _queries(fn):
    with CaptureQueriesContext(connection) as ctx:
        fn()
    return len(ctx.captured_queries)


@pytest.mark.parametrize("size", [3, 500])
def test_queries_per_step_are_constant_and_few(size):
    machine = cycle_machine(size)
    instance = machine.start()
    instance.step()  # warms the compiled-version cache
    steps = [_queries(instance.step) for _ in range(3)]
    # BEGIN, locked read, update, history insert, COMMIT; PostgreSQL merges update+insert.
    assert steps == [4 if connection.vendor == "postgresql" else 5] * 3, steps
    assert _queries(machine.start) <= 5


def test_published_versions_are_immutable(example_machine):
    version = example_machine.latest_version()
    version.definition = {"tampered": True}
    with pytest.raises(FlowrError, match="immutable; publish a new version"):
        version.save()
    assert MachineVersion.objects.get(pk=version.pk).checksum == version.checksum


@pytest.mark.django_db(transaction=True)
def test_deleting_an_instance_deletes_its_task_state(example_machine):
    from flowr.models import TaskStateRecord

    instance = example_machine.start()
    engine.save_task_state(instance, {"x": 1})
    kept = example_machine.start()
    engine.save_task_state(kept, {"y": 2})
    instance.delete()
    # Only the kept instance's current version remains (task ids are "<pk>:<version>").
    assert list(TaskStateRecord.objects.values_list("task_id", flat=True)) == [f"{kept.pk}:1"]


def test_signals_are_sent_once_after_commit(example_machine, django_capture_on_commit_callbacks):
    from flowr import signals

    seen = []

    def receiver(signal, instance, entry, user, **kwargs):
        seen.append((signal, entry.kind, entry.to_name))

    for signal in (signals.instance_started, signals.instance_stepped, signals.instance_moved):
        signal.connect(receiver, weak=False)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            instance = example_machine.start()
            instance.step()
        with django_capture_on_commit_callbacks(execute=True):
            with pytest.raises(ChoiceRequired):
                instance.step()
        builder.update_state(example_machine.states.get(name="C"), name="Check")
        with django_capture_on_commit_callbacks(execute=True):
            engine.move(instance, example_machine.publish())
    finally:
        for signal in (signals.instance_started, signals.instance_stepped,
                       signals.instance_moved):
            signal.disconnect(receiver)
    assert seen == [(signals.instance_started, "start", "A"),
                    (signals.instance_stepped, "step", "C"),
                    (signals.instance_moved, "move", "Check")]
