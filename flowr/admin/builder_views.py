"""The machine builder's buttons: one POST-only admin view per action.

Every view answers 405 to GET, checks the model permission (403 otherwise), makes
exactly one builder or engine call inside one reversion revision, and redirects back
to the machine page with a message saying what happened or why it was refused. A
refused form (add with settings, edit) comes back on the state page with its errors.
The page itself is built by builder_page.py; the on-demand forms by builder_forms.py.
"""
from functools import wraps
from urllib.parse import urlencode

import reversion
from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from .. import builder, engine
from ..exceptions import FlowrError, GraphError
from ..rules import get_rule_set, is_registered
from . import builder_forms
from ._ids import parse_pk


# -- the action views -------------------------------------------------------------------

def _change_url(machine):
    return reverse("admin:flowr_machine_change", args=[machine.pk])


def _builder_action(needs="change", state=True):
    """POST only, load machine (and state), check permission, turn FlowrError into a message."""
    def decorate(func):
        @wraps(func)
        def view(model_admin, request, object_id, state_id=None):
            if request.method != "POST":
                return HttpResponseNotAllowed(["POST"])
            machine = model_admin.get_object(request, unquote(object_id))
            if machine is None:
                messages.warning(request, f"Machine with ID “{object_id}” doesn’t exist.")
                return HttpResponseRedirect(reverse("admin:flowr_machine_changelist"))
            if not _permitted(model_admin, request, machine, needs):
                raise PermissionDenied
            back = HttpResponseRedirect(_change_url(machine))
            if needs == "change" and not is_registered(machine.rule_set.key):
                messages.error(request, f"Rule set '{machine.rule_set.key}' is no longer "
                               f"registered in code; machine '{machine}' cannot be changed.")
                return back
            target = None
            if state:
                target = machine.states.filter(pk=state_id).first()
                if target is None:
                    messages.error(request, "That state no longer exists; the page was out "
                                   "of date. Nothing was changed.")
                    return back
            try:
                response = func(model_admin, request, machine, target)
            except FlowrError as exc:
                messages.error(request, str(exc))
                return back
            return response or back
        return view
    return decorate


def _done(model_admin, request, machine, text):
    """Say what happened, and record it in the admin's log (its "Recent actions")."""
    from django.contrib.admin.models import CHANGE, LogEntry

    messages.success(request, text)
    # Not model_admin.log_change(): reversion's VersionAdmin would make this text the
    # comment of the request's revision, replacing the builder's own.
    LogEntry.objects.log_actions(request.user.pk, [machine], CHANGE, change_message=text,
                                 single_object=True)


def _permitted(model_admin, request, machine, needs):
    if needs == "start":
        return (model_admin.has_view_permission(request, machine)
                and request.user.has_perm("flowr.add_instance"))
    return model_admin.has_change_permission(request, machine)


def _other_state(machine, request, name="child"):
    pk = parse_pk(machine.states.model, request.POST.get(name))
    other = machine.states.filter(pk=pk).first() if pk is not None else None
    if other is None:
        raise GraphError("Choose an existing state of this machine; the chosen one does not "
                         "exist (any more). Nothing was changed.")
    return other


def _settings_form_needed(request, rule_set, rule_key):
    """A one-click add of a rule that has settings: its form comes first."""
    if request.POST.get("form"):
        return False
    try:
        return rule_set.get(rule_key).settings_form is not None
    except FlowrError:
        return False


@_builder_action()
def add_child(model_admin, request, machine, parent):
    rule_key = request.POST.get("rule", "")[:200]
    rule_set = get_rule_set(machine.rule_set.key)
    if _settings_form_needed(request, rule_set, rule_key):
        messages.info(request, "Fill in the new state's settings, then add it.")
        return HttpResponseRedirect(
            reverse("admin:flowr_machine_state_page", args=[machine.pk, parent.pk])
            + "?" + urlencode({"do": "add", "rule": rule_key}))
    settings_form = builder_forms.settings_form_for(rule_set, rule_key, request.POST)
    with_form = bool(request.POST.get("form"))
    name = request.POST.get("name") if with_form else None
    options = builder_forms.posted_options(request.POST) if with_form else None
    try:
        with builder.revision(user=request.user, comment=f"Added a {rule_key} state under "
                                                         f"{parent.name}"):
            child = builder.add_child(parent, rule_key, name=name, options=options,
                                      settings=builder_forms.posted_settings(settings_form))
            reversion.set_comment(f"Added state {child.name} under {parent.name}")
    except GraphError as exc:
        if not request.POST.get("form"):
            raise
        messages.error(request, str(exc))
        return builder_forms.render_state_page(model_admin, request, machine, parent, "add",
                                               rule_key, request.POST, exc)
    _done(model_admin, request, machine,
          f"Added state '{child.name}' under '{parent.name}'.")


@_builder_action()
def connect(model_admin, request, machine, parent):
    child = _other_state(machine, request)
    with builder.revision(user=request.user, comment=f"Connected {parent.name} to {child.name}"):
        builder.connect(parent, child)
    _done(model_admin, request, machine, f"Connected '{parent.name}' → '{child.name}'.")


@_builder_action()
def disconnect(model_admin, request, machine, parent):
    child = _other_state(machine, request)
    with builder.revision(user=request.user,
                          comment=f"Removed transition {parent.name} → {child.name}"):
        builder.disconnect(parent, child)
    _done(model_admin, request, machine,
          f"Removed the transition '{parent.name}' → '{child.name}'.")


@_builder_action()
def remove(model_admin, request, machine, state):
    with builder.revision(user=request.user, comment=f"Removed state {state.name}"):
        builder.remove_state(state)
    _done(model_admin, request, machine, f"Removed state '{state.name}'.")


@_builder_action()
def prune(model_admin, request, machine, state):
    graph = builder.MachineGraph.load(machine)
    if state.is_root:
        raise GraphError(f"State '{state}' is the root; the root cannot be pruned.")
    if request.POST.get("confirm") != "yes":
        doomed = graph.prune_preview(graph.by_key[state.key])
        context = {**model_admin.admin_site.each_context(request), "opts": model_admin.opts,
                   "machine": machine, "original": machine, "state": state, "doomed": doomed,
                   "title": f"Prune state '{state.name}'?"}
        return TemplateResponse(request, "admin/flowr/machine/prune_confirmation.html", context)
    with builder.revision(user=request.user, comment=f"Pruned state {state.name}"):
        removed = builder.prune_state(state)
        reversion.set_comment(f"Pruned state {state.name} (removed {', '.join(removed)})")
    _done(model_admin, request, machine,
          f"Pruned '{state.name}': removed {', '.join(removed)}.")


@_builder_action()
def edit(model_admin, request, machine, state):
    rule_set = get_rule_set(machine.rule_set.key)
    settings_form = builder_forms.settings_form_for(rule_set, state.rule_key, request.POST)
    old_name = state.name
    try:
        with builder.revision(user=request.user, comment=f"Edited state {state.name}"):
            state = builder.update_state(
                state, name=request.POST.get("name", ""),
                settings=builder_forms.posted_settings(settings_form),
                options=(builder_forms.posted_options(request.POST)
                         if request.POST.get("form") else None))
            reversion.set_comment(_edit_comment(old_name, state))
    except GraphError as exc:
        messages.error(request, str(exc))
        return builder_forms.render_state_page(model_admin, request, machine, state, "edit",
                                               data=request.POST, error=exc)
    _done(model_admin, request, machine, f"Saved state '{state.name}'.")


def _edit_comment(old_name, state):
    if old_name != state.name:
        return f"Renamed state {old_name} to {state.name} and saved its settings and options"
    return f"Edited state {state.name}"


def publish_recorded(request, machine):
    """engine.publish() recorded in the machine's history (a revision with its graph) and in
    the admin log; returns the version (`is_new` False when nothing changed)."""
    from django.contrib.admin.models import CHANGE, LogEntry

    with builder.revision(user=request.user, comment=f"Published {machine.name}"):
        version = engine.publish(machine, user=request.user)
        if version.is_new:
            reversion.add_to_revision(builder.with_graph(machine.pk))
            reversion.set_comment(f"Published version {version.number}")
            LogEntry.objects.log_actions(
                request.user.pk, [machine], CHANGE, single_object=True,
                change_message=f"Published version {version.number} of '{machine}'.")
    return version


@_builder_action(state=False)
def publish(model_admin, request, machine, _state):
    version = publish_recorded(request, machine)
    if version.is_new:
        messages.success(request, f"Published version {version.number} of '{machine}'.")
    else:
        messages.info(request, f"Nothing changed since version {version.number}; no new "
                      f"version was created.")


@_builder_action(needs="start", state=False)
def start(model_admin, request, machine, _state):
    instance = engine.start(machine, user=request.user)
    messages.success(request, f"Started instance {instance} on version "
                     f"{instance.version.number}; it is at '{instance.state_name}'.")
    return HttpResponseRedirect(reverse("admin:flowr_instance_change", args=[instance.pk]))


def urls(model_admin):
    """URL patterns of the builder buttons (prepend them to the admin's own)."""
    def wrap(view):
        def bound(request, *args, **kwargs):
            return view(model_admin, request, *args, **kwargs)
        return model_admin.admin_site.admin_view(wraps(view)(bound))

    state_views = [("add", add_child), ("connect", connect), ("disconnect", disconnect),
                   ("edit", edit), ("remove", remove), ("prune", prune)]
    patterns = [
        path("<path:object_id>/builder/publish/", wrap(publish), name="flowr_machine_publish"),
        path("<path:object_id>/builder/start/", wrap(start), name="flowr_machine_start"),
        path("<path:object_id>/builder/state/<int:state_id>/",
             wrap(builder_forms.state_page), name="flowr_machine_state_page"),
    ]
    for name, view in state_views:
        patterns.append(path(f"<path:object_id>/builder/state/<int:state_id>/{name}/",
                             wrap(view), name=f"flowr_machine_state_{name}"))
    return patterns
