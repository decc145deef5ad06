"""Engine behaviour that state options and instance fields add: who may step, assignment
on entry, due times, outcomes, searchable task state, business keys, positions, replay."""
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission

from flowr import builder, engine
from flowr.engine import BusinessKeyTaken
from flowr.exceptions import AlreadyMoved, HookFailed, InstanceNotActive, StepPermissionDenied
from flowr.models import Instance
from flowr.rules import Rule, RuleSet, register
from flowr.sync import sync_rule_sets

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def state(machine, name):
    return machine.states.get(name=name)


@pytest.fixture
def staff(django_user_model):
    """alice and bob (Reviewers), carol (no group): staff with the step permission."""
    reviewers = Group.objects.create(name="Reviewers")
    step = Permission.objects.get(codename="step_instance")
    users = {}
    for name in ("alice", "bob", "carol"):
        user = django_user_model.objects.create_user(name, password="pw", is_staff=True)
        user.user_permissions.add(step)
        if name != "carol":
            user.groups.add(reviewers)
        users[name] = user
    return users


def fresh(instance):
    return Instance.objects.get(pk=instance.pk)


@pytest.fixture
def review(example_machine, staff):
    """The flowr example where C (after A) needs a Reviewer; v2 published."""
    builder.update_state(state(example_machine, "C"), options={"groups": ["Reviewers"]})
    example_machine.publish()
    return example_machine


def test_candidates_may_step_others_are_told_why(review, staff):
    instance = review.start()
    instance.step()  # A → C, no user: programs are not checked
    [d, e] = engine.allowed_steps(fresh(instance), staff["carol"])
    assert not d.allowed and d.reason.startswith("Only members of Reviewers may work on 'C'")
    with pytest.raises(StepPermissionDenied, match="Only members of Reviewers"):
        engine.step(fresh(instance), to="D", user=staff["carol"])
    engine.step(fresh(instance), to="E", user=staff["alice"])
    assert fresh(instance).state_name == "E"


def test_an_assignee_alone_may_step_unless_overridden(review, staff):
    instance = review.start()
    instance.step()
    Instance.objects.filter(pk=instance.pk).update(assignee=staff["alice"])
    with pytest.raises(StepPermissionDenied, match="Assigned to alice"):
        engine.step(fresh(instance), to="D", user=staff["bob"])
    staff["carol"].user_permissions.add(Permission.objects.get(codename="step_any_instance"))
    carol = type(staff["carol"]).objects.get(pk=staff["carol"].pk)  # fresh permission cache
    engine.step(fresh(instance), to="D", user=carol)
    assert (fresh(instance).status, fresh(instance).assignee_id) == ("finished", None)


@pytest.mark.parametrize("policy, expected", [("starter", "alice"), ("stepper", "bob"),
                                              ("user", "carol"), ("", None)])
def test_assign_on_entry(example_machine, staff, policy, expected):
    options = {"assign": policy} if policy else {}
    if policy == "user":
        options["assign_user"] = "carol"
    builder.update_state(state(example_machine, "C"), options=options)
    example_machine.publish()
    instance = example_machine.start(user=staff["alice"])
    engine.step(instance, user=staff["bob"])
    assignee = fresh(instance).assignee
    assert (assignee.username if assignee else None) == expected
    engine.step(instance, to="E", user=assignee or staff["bob"])  # no policy at E

    assert fresh(instance).assignee_id is None


def test_entering_a_state_with_timing_sets_its_due_time(example_machine):
    c, e = state(example_machine, "C"), state(example_machine, "E")
    builder.update_state(c, options={"due_after": "2 days", "timeout_to": e.key})
    example_machine.publish()
    instance = example_machine.start()
    assert instance.due_at is None
    instance.step()
    at_c = fresh(instance)
    assert at_c.due_at - at_c.state_entered_at == timedelta(days=2)
    instance.step(to="E")
    assert fresh(instance).due_at is None


@pytest.fixture
def orders_like(db):
    """Start → Open (writes customer; Boom raises) → Won (outcome won) | Lost."""
    class Start(Rule):
        children = ["Open"]

    class Open(Rule):
        children = ["Won", "Lost", "Boom"]
        multiple_paths = True
        search_fields = ["customer", "amount"]

        def on_enter(self, instance):
            instance.task_state.update(customer="ACME Ltd", amount=120, secret="x")

    class Won(Rule):
        outcome = "won"

    class Lost(Rule):
        outcome = "lost"

    class Boom(Rule):
        def on_enter(self, instance):
            instance.task_state["customer"] = "never committed"
            raise RuntimeError("boom")

    register(RuleSet("work_orders", root=Start, rules=[Start, Open, Won, Lost, Boom]))
    sync_rule_sets()
    machine = builder.create_machine("work_orders", "Work orders")
    opened = builder.add_child(machine.root_state, "work_orders.Open")
    for rule in ("Won", "Lost", "Boom"):
        builder.add_child(opened, f"work_orders.{rule}")
    machine.publish()
    return machine


def test_declared_keys_are_projected_with_the_step_and_never_from_a_rollback(orders_like):
    instance = orders_like.start()
    instance.step()
    assert fresh(instance).search_data == {"customer": "ACME Ltd", "amount": 120}
    assert Instance.objects.filter(search_data__customer="ACME Ltd").count() == 1
    with pytest.raises(HookFailed):
        fresh(instance).step(to="Boom")
    assert not Instance.objects.filter(search_data__customer="never committed").exists()
    engine.save_task_state(fresh(instance), {"customer": "Umbrella", "amount": 7})
    assert fresh(instance).search_data == {"customer": "Umbrella", "amount": 7}


def test_finishing_records_the_rules_outcome(orders_like):
    won, lost = orders_like.start(), orders_like.start()
    won.step()
    won.step(to="Won")
    lost.step()
    lost.step(to="Lost")
    assert (fresh(won).status, fresh(won).outcome) == ("finished", "won")
    assert fresh(lost).outcome == "lost"
    assert fresh(won).history.first().status == "finished"


def test_business_key_and_title_name_the_instance(example_machine):
    instance = example_machine.start(business_key=" PO-1001 ", title="Paper for the office")
    assert (instance.business_key, instance.label) == ("PO-1001",
                                                       "Paper for the office (PO-1001)")
    with pytest.raises(BusinessKeyTaken, match="already has an instance with the business "
                                                "key 'PO-1001'"):
        example_machine.start(business_key="PO-1001")
    other = builder.create_machine("flowr_example", "Other")
    other.publish()
    assert other.start(business_key="PO-1001").business_key == "PO-1001"  # per machine
    assert example_machine.start().label.startswith("#")
    with pytest.raises(Exception, match="at most 200"):
        example_machine.start(title="x" * 201)


def test_a_stale_position_is_refused_even_after_a_cycle(demo_machines):
    ticket = demo_machines["support"].start()
    ticket.step()  # New → Open
    seen = fresh(ticket)  # a page showing Open, offering "Waiting on customer"
    ticket.step(to="Waiting on customer")
    ticket.step()  # back at Open: same state as the stale page
    with pytest.raises(AlreadyMoved, match="has already moved on: it is now at 'Open'"):
        engine.step(seen, to="Waiting on customer", expected_position=seen.step_count)
    assert fresh(ticket).step_count == seen.step_count + 2


@pytest.mark.parametrize("status, text", [("suspended", "is suspended; resume it first"),
                                          ("cancelled", "was cancelled")])
def test_suspended_and_cancelled_instances_refuse_steps(example_machine, status, text):
    instance = example_machine.start()
    Instance.objects.filter(pk=instance.pk).update(status=status)
    assert fresh(instance).allowed_steps() == []
    with pytest.raises(InstanceNotActive, match=text):
        fresh(instance).step()


def test_position_equals_the_replay_of_the_history(demo_machines, example_machine):
    ticket = demo_machines["support"].start()
    for to in ("Open", "Waiting on customer", "Open", "Resolved"):
        ticket.step(to=to)
    engine.save_task_state(fresh(ticket), {"note": "edited"})
    instance = example_machine.start()
    instance.step()
    builder.update_state(state(example_machine, "C"), name="Check")
    engine.move(fresh(instance), example_machine.publish())
    instance.step(to="E")
    for obj in (ticket, instance):
        row = fresh(obj)
        assert engine.replay(row.history.all()) == engine.position_of(row)
        assert row.history.count() == row.last_seq + 1
