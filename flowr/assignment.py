"""Who has an instance: claim, assign and unassign (reassign is assign when someone has it).

The only code that changes an instance's assignee outside entering a state (entering a
state applies its assign-on-entry policy, flowr.engine). Each change runs like a step:
one transaction with the instance row locked (`engine.lock`), refused unless the
instance is active or suspended, and recorded as one history row of kind "assign"
(`engine.record`) whose data is {"assignee": username or None, "previous": username or
None}. It is not a change of position: `step_count` stays, replay skips the row.

The rules (the `*_problem` functions give the reason a change is refused, or None; the
admin disables its buttons with the same words):

- claim: take an unassigned instance when you are a candidate of its current state
  (`access.is_candidate`) or hold `flowr.step_any_instance`;
- assign(to_user, by): `by` holds `flowr.assign_instance` (or assigns themself an
  instance they may claim); the target is an active staff user with
  `flowr.step_instance` and a candidate of the current state;
- unassign(by): the assignee themself, or a holder of `flowr.assign_instance`.

Two people claiming at once: the row lock orders them; the second sees the first's
claim and gets AlreadyAssigned naming who has it.
"""
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from . import access, engine, signals
from .exceptions import AlreadyAssigned, AssignmentError, NotACandidate
from .models import HistoryEntry, Instance, MachineVersion

STEP = "flowr.step_instance"
#: Statuses whose assignee may change (a suspended instance may change hands).
ALLOWED = (Instance.ACTIVE, Instance.SUSPENDED)
FIELDS = ("assignee", "last_seq", "last_activity")


def _state(instance, graph):
    return graph.names.get(instance.state_key, instance.state_name)


def _groups_text(graph, key):
    return ", ".join(access.candidate_groups(graph, key))


# -- the rules ------------------------------------------------------------------------

def claim_problem(instance, graph, user):
    """Why `user` may not claim the instance where it is now, or None."""
    if instance.assignee_id == user.pk:
        return None
    if instance.assignee_id:
        return (f"Instance {instance.label} is already assigned to "
                f"{access.assignee_name(instance)}; ask them to unassign it, or someone who "
                f"may assign instances to reassign it.")
    if access.is_candidate(graph, instance.state_key, user) or user.has_perm(access.STEP_ANY):
        return None
    return (f"Only members of {_groups_text(graph, instance.state_key)} may claim instances "
            f"at '{_state(instance, graph)}'; you are in none of these groups.")


def target_problem(instance, graph, user):
    """Why `user` cannot be the instance's assignee where it is now, or None."""
    name = user.get_username()
    if not (user.is_active and user.is_staff):
        return f"{name} is not an active staff user; choose someone who can log in."
    if not user.has_perm(STEP):
        return f"{name} may not step instances (they lack “Can step instances”)."
    if not access.is_candidate(graph, instance.state_key, user):
        return (f"{name} is in none of the candidate groups of '{_state(instance, graph)}' "
                f"({_groups_text(graph, instance.state_key)}).")
    return None


def assign_problem(instance, graph, by, to_user):
    """Why `by` may not assign the instance to `to_user`, or None."""
    own_claim = to_user.pk == by.pk and claim_problem(instance, graph, by) is None
    if not (own_claim or by.has_perm(access.ASSIGN)):
        return ("Assigning instances to others needs the permission "
                f"'{access.ASSIGN}' (“Can assign instances to other users”).")
    return target_problem(instance, graph, to_user)


def unassign_problem(instance, by):
    """Why `by` may not unassign the instance, or None."""
    if not instance.assignee_id or instance.assignee_id == by.pk or by.has_perm(access.ASSIGN):
        return None
    return (f"Instance {instance.label} is assigned to {access.assignee_name(instance)}; only "
            f"they, or someone who may assign instances, can unassign it.")


# -- the changes ------------------------------------------------------------------------

def claim(instance, user, note="", expected_position=None):
    """Make `user` the assignee; returns the HistoryEntry, or None if it was theirs already."""
    def decide(locked, graph):
        problem = claim_problem(locked, graph, user)
        if problem:
            error = AlreadyAssigned if locked.assignee_id else NotACandidate
            raise error(problem, assignee=access.assignee_name(locked))
        return user
    return _change(instance, user, "be claimed", decide, note or "Claimed.",
                   expected_position)


def assign(instance, to_user, by, note="", expected_position=None):
    """Make `to_user` the assignee (a reassignment when someone has it); None if unchanged."""
    def decide(locked, graph):
        problem = assign_problem(locked, graph, by, to_user)
        if problem:
            raise AssignmentError(problem, assignee=access.assignee_name(locked))
        return to_user
    return _change(instance, by, "be assigned", decide, note, expected_position)


def unassign(instance, by, note="", expected_position=None):
    """Clear the assignee; returns the HistoryEntry, or None if nobody had it."""
    def decide(locked, graph):
        problem = unassign_problem(locked, by)
        if problem:
            raise AssignmentError(problem, assignee=access.assignee_name(locked))
        return None
    return _change(instance, by, "be unassigned", decide, note, expected_position)


def _change(instance, user, verb, decide, note, expected_position):
    with transaction.atomic():
        locked = engine.lock(instance.pk)
        engine.check_expected(locked, expected_position=expected_position)
        engine.check_status(locked, verb, ALLOWED)
        graph = engine.compiled_by_id(locked.version_id)
        new = decide(locked, graph)
        if getattr(new, "pk", None) == locked.assignee_id:
            return None
        previous = access.assignee_name(locked) or None
        locked.assignee_id = getattr(new, "pk", None)
        data = {"assignee": new.get_username() if new else None, "previous": previous}
        entry = engine.record(locked, graph, HistoryEntry.ASSIGN, user=user,
                              now=timezone.now(), note=note or describe(data), data=data,
                              from_key=locked.state_key, from_name=locked.state_name,
                              fields=FIELDS)
        signals.send_on_commit(signals.instance_assigned, instance, entry, user)
    engine.copy_back(locked, instance)
    return entry


def describe(data):
    """An assignment history row's data in words: "Assigned to bob (was alice)."."""
    new, old = data.get("assignee"), data.get("previous")
    text = f"Assigned to {new}" if new else "Unassigned"
    return text + (f" (was {old})." if old else ".")


# -- who, and what is waiting ----------------------------------------------------------------

def candidate_users(graph=None, state_key=None):
    """Active staff who may step instances and, with a state, are its candidates (a queryset).

    Without `graph` and `state_key`: everyone who could be assigned somewhere.
    """
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    app_label, codename = STEP.split(".")
    perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename)
    user_model = get_user_model()
    users = user_model.objects.filter(is_active=True, is_staff=True).filter(
        Q(is_superuser=True) | Q(user_permissions__in=perm) | Q(groups__permissions__in=perm))
    groups = access.candidate_groups(graph, state_key) if graph is not None else ()
    if groups:
        users = users.filter(pk__in=user_model.objects.filter(groups__name__in=groups)
                             .values("pk"))
    return user_model.objects.filter(pk__in=users.values("pk")).order_by("username")


def claimable_q(user):
    """Q of unassigned instances waiting at states whose candidate groups include one of
    the user's groups (states naming no groups are everybody's and are left out)."""
    mine = access.user_groups(user)
    if not mine:
        return None
    versions = (MachineVersion.objects.defer("definition")
                .filter(Exists(Instance.objects.filter(version=OuterRef("pk"),
                                                       status=Instance.ACTIVE,
                                                       assignee__isnull=True))))
    where = Q()
    for graph in engine.compile_many(list(versions)):
        keys = [key for key, options in graph.options.items()
                if mine & set(options.get("groups") or ())]
        if keys:
            where |= Q(version_id=graph.version_id, state_key__in=keys)
    if not where:
        return None
    return Q(where, status=Instance.ACTIVE, assignee__isnull=True)
