"""Shared set-up of the operations-desk tests: a review machine with candidate groups, users."""
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from flowr import builder
from flowr.rules import Rule, RuleSet, is_registered, register
from flowr.sync import sync_rule_sets

STEPPER = ("flowr.view_instance", "flowr.step_instance")


def register_review_rules(key="review"):
    """Todo → Review → (Done | Todo): Review is where the Reviewers group works."""
    if is_registered(key):
        return

    class Todo(Rule):
        children = ["Review"]

    class Review(Rule):
        children = ["Done", "Todo"]
        multiple_paths = True

    class Done(Rule):
        outcome = "done"

    register(RuleSet(key, "Review", root=Todo, rules=[Todo, Review, Done]))
    sync_rule_sets()


def review_machine(name="Review desk", review_options=None, todo_options=None):
    """A published machine Todo → Review → (Done | Todo); Review's candidates: Reviewers."""
    register_review_rules()
    for group in ("Reviewers", "Shipping"):
        Group.objects.get_or_create(name=group)
    machine = builder.create_machine("review", name)
    todo = machine.root_state
    review = builder.add_child(todo, "review.Review", options=(
        {"groups": ["Reviewers"]} if review_options is None else review_options))
    builder.add_child(review, "review.Done")
    builder.connect(review, todo)
    if todo_options:
        builder.update_state(todo, options=todo_options)
    machine.publish()
    return machine


def make_user(name, *codenames, groups=(), staff=True, active=True, superuser=False,
              password=None):
    """A user with the given permissions ("app.codename") and groups.

    No password unless given (hashing one costs a noticeable fraction of a second).
    """
    user = get_user_model().objects.create_user(name, password=password, is_staff=staff,
                                                is_active=active, is_superuser=superuser)
    for codename in codenames:
        app, _, code = codename.rpartition(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app,
                                                         codename=code))
    for group in groups:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    return get_user_model().objects.get(pk=user.pk)  # fresh: no cached permissions
