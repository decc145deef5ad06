"""Who may work on an instance: rule permissions, candidate groups, the assignee.

The step permission is: the model permission `flowr.step_instance` (checked by the
admin views), the target rule's own `permission`, and one of: the user is the
instance's assignee; the instance is unassigned and the user is a candidate of its
current state (a member of one of the state's candidate groups, or anyone when the
state names no groups); the user holds `flowr.step_any_instance`. Programs that pass
no user (user=None) are not checked.
"""
from . import options as _options
from .exceptions import RuleNotRegistered

STEP_ANY = "flowr.step_any_instance"
ASSIGN = "flowr.assign_instance"


def user_groups(user):
    """The names of the user's groups (one query, cached on the user object)."""
    cached = getattr(user, "_flowr_groups", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True)) if user.pk else frozenset()
        user._flowr_groups = cached
    return cached


def candidate_groups(graph, state_key):
    return (graph.options.get(state_key) or {}).get("groups") or ()


def is_candidate(graph, state_key, user):
    """May `user` claim and step instances at `state_key` (ignoring any assignee)?"""
    groups = candidate_groups(graph, state_key)
    return not groups or bool(user_groups(user) & set(groups))


def assignee_name(instance):
    """The assignee's username (from the select_related cache when there is one)."""
    if not instance.assignee_id:
        return ""
    cached = instance._state.fields_cache.get("assignee")
    if cached is not None:
        return cached.get_username()
    from django.contrib.auth import get_user_model

    found = (get_user_model().objects.filter(pk=instance.assignee_id)
             .values_list("username", flat=True).first())
    return found or f"user #{instance.assignee_id}"


def work_problem(instance, graph, user):
    """Why `user` may not work on the instance where it is now (a message), or None."""
    if user is None or user.has_perm(STEP_ANY):
        return None
    if instance.assignee_id:
        if instance.assignee_id == user.pk:
            return None
        return f"Assigned to {assignee_name(instance)}; only they may step it."
    if is_candidate(graph, instance.state_key, user):
        return None
    groups = ", ".join(candidate_groups(graph, instance.state_key))
    return (f"Only members of {groups} may work on '{graph.names[instance.state_key]}'; "
            f"you are in none of these groups.")


def rule_problem(graph, key, user):
    """Why `user` may not step into state `key` by its rule's permission, or None."""
    try:
        rule = graph.rule(key)
    except RuleNotRegistered as exc:
        return str(exc)
    if rule.permission and user is not None and not user.has_perm(rule.permission):
        return (f"Stepping into '{graph.names[key]}' needs the permission "
                f"'{rule.permission}'.")
    return None


def step_problem(instance, graph, key, user):
    """Why `user` may not step the instance into `key`, or None."""
    return work_problem(instance, graph, user) or rule_problem(graph, key, user)


def assignee_on_entry(instance, graph, key, user):
    """The assignee id an instance gets on entering `key` (its assign-on-entry policy)."""
    policy = (graph.options.get(key) or {}).get("assign")
    if policy == _options.ASSIGN_STARTER:
        return instance.started_by_id
    if policy == _options.ASSIGN_STEPPER:
        return getattr(user, "pk", None)
    if policy == _options.ASSIGN_USER:
        return graph.assign_user_id(key)
    return None
