"""Assignment (flowr.assignment) and who may step (flowr.access): rules, history, statuses."""
from datetime import timedelta

import pytest
from django.utils import timezone

from flowr import assignment, engine, signals
from flowr.exceptions import (
    AlreadyAssigned, AlreadyMoved, AssignmentError, InstanceFinished, InstanceNotActive,
    NotACandidate, StepPermissionDenied,
)
from flowr.models import HistoryEntry, Instance
from tests.desk import STEPPER, make_user, review_machine

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture
def machine(db):
    return review_machine()


@pytest.fixture
def people(db):
    return {
        "rita": make_user("rita", *STEPPER, groups=["Reviewers"]),
        "rick": make_user("rick", *STEPPER, groups=["Reviewers"]),
        "sam": make_user("sam", *STEPPER, groups=["Shipping"]),
        "boss": make_user("boss", *STEPPER, "flowr.assign_instance"),
        "any": make_user("any", *STEPPER, "flowr.step_any_instance"),
        "viewer": make_user("viewer", "flowr.view_instance", groups=["Reviewers"]),
    }


def in_review(machine):
    instance = machine.start()
    engine.step(instance, to="Review")
    return Instance.objects.get(pk=instance.pk)


def fresh(instance):
    return Instance.objects.get(pk=instance.pk)


def assert_consistent(instance):
    """Positions replay from the history; seqs are gapless and last_seq is the last one."""
    instance = fresh(instance)
    entries = list(instance.history.order_by("seq"))
    assert [e.seq for e in entries] == list(range(len(entries)))
    assert instance.last_seq == entries[-1].seq
    assert engine.replay(entries) == engine.position_of(instance)


# -- claim --------------------------------------------------------------------------

def test_a_candidate_claims_an_unassigned_instance_with_one_history_row(machine, people):
    instance = in_review(machine)
    position, seq = instance.step_count, instance.last_seq
    entry = assignment.claim(instance, people["rita"])
    assert instance.assignee == people["rita"] and fresh(instance).assignee == people["rita"]
    assert entry.kind == HistoryEntry.ASSIGN and entry.user == people["rita"]
    assert entry.data == {"assignee": "rita", "previous": None}
    assert entry.from_name == entry.to_name == "Review" and entry.note == "Claimed."
    assert fresh(instance).step_count == position  # not a change of position
    assert fresh(instance).last_seq == seq + 1
    assert_consistent(instance)


def test_a_non_candidate_cannot_claim_and_nothing_changes(machine, people):
    instance = in_review(machine)
    with pytest.raises(NotACandidate, match="Only members of Reviewers may claim instances at "
                                            "'Review'"):
        assignment.claim(instance, people["sam"])
    assert fresh(instance).assignee is None and instance.history.count() == 2


def test_claiming_an_instance_someone_has_names_them(machine, people):
    instance = in_review(machine)
    assignment.claim(instance, people["rita"])
    with pytest.raises(AlreadyAssigned, match="already assigned to rita") as caught:
        assignment.claim(fresh(instance), people["rick"])
    assert caught.value.assignee == "rita" and fresh(instance).assignee == people["rita"]


def test_claiming_your_own_instance_changes_nothing(machine, people):
    instance = in_review(machine)
    assignment.claim(instance, people["rita"])
    assert assignment.claim(fresh(instance), people["rita"]) is None
    assert instance.history.count() == 3


def test_the_override_permission_claims_outside_the_groups(machine, people):
    instance = in_review(machine)
    assignment.claim(instance, people["any"])
    assert fresh(instance).assignee == people["any"]


def test_a_state_without_groups_is_claimable_by_anyone(machine, people):
    instance = machine.start()  # Todo names no groups
    assignment.claim(instance, people["sam"])
    assert fresh(instance).assignee == people["sam"]


# -- assign, reassign, unassign -------------------------------------------------------------

def test_assign_and_reassign_need_the_permission_and_a_candidate(machine, people):
    instance = in_review(machine)
    with pytest.raises(AssignmentError, match="needs the permission 'flowr.assign_instance'"):
        assignment.assign(instance, people["rick"], by=people["rita"])
    with pytest.raises(AssignmentError, match="sam is in none of the candidate groups of "
                                              "'Review' \\(Reviewers\\)"):
        assignment.assign(instance, people["sam"], by=people["boss"])
    entry = assignment.assign(instance, people["rita"], by=people["boss"])
    assert entry.data == {"assignee": "rita", "previous": None} and entry.user == people["boss"]
    entry = assignment.assign(fresh(instance), people["rick"], by=people["boss"])
    assert entry.data == {"assignee": "rick", "previous": "rita"}
    assert entry.note == "Assigned to rick (was rita)."
    assert fresh(instance).assignee == people["rick"]
    assert assignment.assign(fresh(instance), people["rick"], by=people["boss"]) is None
    assert_consistent(instance)


def test_assigning_yourself_is_a_claim(machine, people):
    instance = in_review(machine)
    assignment.assign(instance, people["rita"], by=people["rita"])
    assert fresh(instance).assignee == people["rita"]
    with pytest.raises(AssignmentError, match="needs the permission"):
        assignment.assign(fresh(instance), people["rick"], by=people["rick"])


@pytest.mark.parametrize("who, why", [
    ("inactive", "is not an active staff user"),
    ("outsider", "is not an active staff user"),
    ("viewer", "may not step instances"),
])
def test_the_target_must_be_active_staff_who_may_step(machine, people, who, why):
    if who != "viewer":
        people[who] = make_user(who, *STEPPER, groups=["Reviewers"],
                                active=who != "inactive", staff=who != "outsider")
    instance = in_review(machine)
    with pytest.raises(AssignmentError, match=why):
        assignment.assign(instance, people[who], by=people["boss"])
    assert fresh(instance).assignee is None


def test_unassign_by_the_assignee_or_the_permission_holder_only(machine, people):
    instance = in_review(machine)
    assignment.claim(instance, people["rita"])
    with pytest.raises(AssignmentError, match="assigned to rita; only they"):
        assignment.unassign(fresh(instance), by=people["rick"])
    entry = assignment.unassign(fresh(instance), by=people["rita"])
    assert entry.data == {"assignee": None, "previous": "rita"}
    assert entry.note == "Unassigned (was rita)."
    assert assignment.unassign(fresh(instance), by=people["rita"]) is None
    assignment.claim(fresh(instance), people["rick"])
    assignment.unassign(fresh(instance), by=people["boss"])
    assert fresh(instance).assignee is None
    assert_consistent(instance)


# -- statuses and stale requests -----------------------------------------------------------

def test_finished_and_expired_instances_refuse_assignment(machine, people):
    finished = in_review(machine)
    engine.step(finished, to="Done")
    with pytest.raises(InstanceFinished, match="is finished; it cannot be claimed"):
        assignment.claim(finished, people["rita"])
    idle = in_review(machine)
    Instance.objects.filter(pk=idle.pk).update(
        last_activity=timezone.now() - timedelta(days=30))
    with pytest.raises(InstanceNotActive, match="has expired"):
        assignment.assign(fresh(idle), people["rita"], by=people["boss"])
    assert fresh(idle).assignee is None


def test_a_suspended_instance_may_change_hands(machine, people):
    instance = in_review(machine)
    Instance.objects.filter(pk=instance.pk).update(status=Instance.SUSPENDED)
    assignment.assign(fresh(instance), people["rita"], by=people["boss"])
    assert fresh(instance).assignee == people["rita"]


def test_a_stale_position_is_refused(machine, people):
    instance = in_review(machine)
    seen = instance.step_count
    engine.step(fresh(instance), to="Todo")
    with pytest.raises(AlreadyMoved, match="already moved on"):
        assignment.claim(instance, people["rita"], expected_position=seen)
    assert fresh(instance).assignee is None


def test_the_assigned_signal_is_sent_once_after_commit(machine, people,
                                                       django_capture_on_commit_callbacks):
    received = []

    def receiver(sender, instance, entry, user, **kwargs):
        received.append((entry.data["assignee"], user.username))
    signals.instance_assigned.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            assignment.claim(in_review(machine), people["rita"])
    finally:
        signals.instance_assigned.disconnect(receiver)
    assert received == [("rita", "rita")]


# -- who may step (flowr.access through engine.step / allowed_steps) ---------------------

@pytest.mark.parametrize("who, assignee, allowed", [
    ("rita", None, True),      # a candidate, unassigned
    ("sam", None, False),      # not a candidate
    ("rita", "rita", True),    # the assignee
    ("rick", "rita", False),   # a candidate, but someone has it
    ("any", "rita", True),     # the override permission
    ("any", None, True),
])
def test_step_permission_matrix(machine, people, who, assignee, allowed):
    instance = in_review(machine)
    if assignee:
        assignment.claim(instance, people[assignee])
    instance = fresh(instance)
    options = engine.allowed_steps(instance, people[who])
    assert {o.allowed for o in options} == {allowed}
    if allowed:
        engine.step(instance, to="Done", user=people[who])
        assert fresh(instance).state_name == "Done"
        return
    reason = "Assigned to rita" if assignee else "Only members of Reviewers"
    assert reason in options[0].reason
    with pytest.raises(StepPermissionDenied, match=reason):
        engine.step(instance, to="Done", user=people[who])
    assert fresh(instance).state_name == "Review"


@pytest.mark.parametrize("policy, expected", [
    ({"assign": "starter"}, "starter"),
    ({"assign": "stepper"}, "stepper"),
    ({"assign": "user", "assign_user": "rita", "groups": ["Reviewers"]}, "rita"),
    ({}, None),
])
def test_assign_on_entry_and_leaving_clears_the_assignee(db, people, policy, expected):
    starter = make_user("starter", *STEPPER)
    stepper = make_user("stepper", *STEPPER, groups=["Reviewers"])
    machine = review_machine("Policy", review_options=policy)
    instance = machine.start(user=starter)
    engine.step(instance, to="Review", user=stepper)
    assert getattr(fresh(instance).assignee, "username", None) == expected
    engine.step(fresh(instance), to="Todo", user=people["any"])
    assert fresh(instance).assignee is None  # Todo assigns nobody


# -- queries ---------------------------------------------------------------------------

def test_candidate_users_are_active_staff_steppers_in_the_groups(machine, people):
    make_user("retired", *STEPPER, groups=["Reviewers"], active=False)
    make_user("root", superuser=True, groups=["Reviewers"])
    graph = engine.compiled(machine.latest_version())
    review = graph.resolve("Review")
    names = list(assignment.candidate_users(graph, review).values_list("username", flat=True))
    assert names == ["rick", "rita", "root"]
    everyone = set(assignment.candidate_users().values_list("username", flat=True))
    assert everyone == {"any", "boss", "rick", "rita", "root", "sam"}


def test_claimable_by_my_groups(machine, people):
    waiting, taken, todo = in_review(machine), in_review(machine), machine.start()
    assignment.claim(taken, people["rick"])
    mine = Instance.objects.filter(assignment.claimable_q(people["rita"]))
    assert set(mine) == {waiting}
    assert todo not in mine  # Todo names no groups: nobody's group work
    assert assignment.claimable_q(people["boss"]) is None  # in no group
    assert assignment.claimable_q(people["sam"]) is None  # no state names Shipping
