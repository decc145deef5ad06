"""The machine builder's buttons: one POST-only admin view per action.

Every view answers 405 to GET, checks the model permission (403 otherwise), makes
exactly one builder or engine call inside one reversion revision, and redirects back
to the machine page with a message saying what happened or why it was refused.
"""
from dataclasses import dataclass, field
from functools import wraps

import reversion
from django import forms
from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse

from .. import builder, engine
from .. import diagrams as _diagrams
from .. import graph as _graph
from ..exceptions import FlowrError, GraphError, RuleNotRegistered, SettingsInvalid
from ..rules import get_rule_set, is_registered
from ._ids import parse_pk


# -- page context ---------------------------------------------------------------------

class StateNameForm(forms.Form):
    name = forms.CharField(max_length=200, label="Name")


@dataclass
class StateRow:
    """One state on the machine page with what its buttons may do."""

    state: object
    rule_name: str
    children: list = field(default_factory=list)  # (child, refusal or None)
    addable: list = field(default_factory=list)  # (rule key, display name)
    connectable: list = field(default_factory=list)
    removal_error: str = ""
    name_form: object = None
    settings_form: object = None


def _rule_name(rule_set, rule_key):
    try:
        return rule_set.get(rule_key).get_display_name() if rule_set else rule_key
    except RuleNotRegistered:
        return f"{rule_key} (not registered)"


def settings_form_for(rule_set, state, data=None):
    """The rule's settings form for a state (prefixed), or None when the rule has none."""
    try:
        rule = rule_set.get(state.rule_key)
    except RuleNotRegistered:
        return None
    if rule.settings_form is None:
        return None
    return rule.settings_form(data=data, prefix="settings", initial=state.settings or None)


def _connectable(graph, addable):
    """The states `graph.connectable(state)` returns, in linear time.

    A connection is allowed exactly when the target's rule is one the state may still
    add (allowed, not used by another child, capacity left), so the per-pair rule check
    of MachineGraph.connectable need not run for every pair of states on the page.
    builder.connect re-checks on POST.
    """
    allowed = set(addable)
    return [other for other in graph.states if other.rule_key in allowed]


def _state_rows(graph, rule_set, editable):
    names = graph.names
    rows = []
    for state in graph.states:
        row = StateRow(state, _rule_name(rule_set, state.rule_key))
        for child in graph.children(state):
            refusal = _graph.disconnect_error(
                graph.rule_map, graph.edges, graph.root.key, state.key, child.key, names)
            row.children.append((child, refusal))
        if editable:
            addable = graph.addable_rules(state)
            row.addable = [(k, _rule_name(rule_set, k)) for k in addable]
            row.connectable = _connectable(graph, addable)
            row.removal_error = graph.removal_error(state) or ""
            row.name_form = StateNameForm(initial={"name": state.name},
                                          auto_id=f"id_state{state.pk}_%s")
            row.settings_form = settings_form_for(rule_set, state)
            if row.settings_form is not None:
                row.settings_form.auto_id = f"id_state{state.pk}_%s"
        rows.append(row)
    rows.sort(key=lambda r: not r.state.is_root)
    return rows


def _versions(machine):
    """Published versions, newest first, with how many instances run on each (one query)."""
    return list(machine.versions.select_related("published_by").defer("definition")
                .annotate(instance_count=Count("instances")).order_by("-number"))


def _draft_status(graph, latest):
    """(text, is_draft): does the graph differ from the latest published version?"""
    if graph.root is None:
        return "The machine has no root state.", True
    if latest is None:
        return "Draft: never published.", True
    if engine.checksum(engine.definition_of(graph)) == latest.checksum:
        return f"Published: no changes since version {latest.number}.", False
    return f"Draft changes since the last published version (v{latest.number}).", True


def builder_context(model_admin, request, machine):
    """Everything the machine page shows below the form, in a constant number of queries."""
    graph = builder.MachineGraph.load(machine)
    versions = _versions(machine)
    latest = versions[0] if versions else None
    registered = is_registered(machine.rule_set.key)
    rule_set = graph.rule_set if registered else None
    can_change = model_admin.has_change_permission(request, machine)
    editable = registered and can_change
    status, is_draft = _draft_status(graph, latest)
    return {
        "graph": graph,
        "registered": registered,
        "rule_set_key": machine.rule_set.key,
        "can_change": editable,
        "can_publish": editable,
        "can_start": (registered and request.user.has_perm("flowr.add_instance")
                      and latest is not None and not machine.archived),
        "start_refusal": ("Its rule set is not registered." if not registered else
                          "The machine is archived." if machine.archived else
                          "Publish the machine first." if latest is None else ""),
        "status": status,
        "is_draft": is_draft,
        "versions": versions,
        "rows": _state_rows(graph, rule_set, editable),
        "errors": graph.errors() if registered else [],
        "diagram": _diagrams.machine_svg(graph),
        "export_url": _export_url(machine),
        "state_count": len(graph.states),
        "transition_count": len(graph.edges),
    }


def _export_url(machine):
    """The import/export mixin's download of this machine, else its export page, else None."""
    for name, args in (("admin:flowr_machine_export_json", [machine.pk]),
                       ("admin:flowr_machine_export", [])):
        try:
            return reverse(name, args=args)
        except NoReverseMatch:
            continue
    return None


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


@_builder_action()
def add_child(model_admin, request, machine, parent):
    rule_key = request.POST.get("rule", "")
    with builder.revision(user=request.user, comment=f"Added a {rule_key} state under "
                                                     f"{parent.name}"):
        child = builder.add_child(parent, rule_key)
        reversion.set_comment(f"Added state {child.name} under {parent.name}")
    messages.success(request, f"Added state '{child.name}' under '{parent.name}'.")


@_builder_action()
def connect(model_admin, request, machine, parent):
    child = _other_state(machine, request)
    with builder.revision(user=request.user, comment=f"Connected {parent.name} to {child.name}"):
        builder.connect(parent, child)
    messages.success(request, f"Connected '{parent.name}' → '{child.name}'.")


@_builder_action()
def disconnect(model_admin, request, machine, parent):
    child = _other_state(machine, request)
    with builder.revision(user=request.user,
                          comment=f"Removed transition {parent.name} → {child.name}"):
        builder.disconnect(parent, child)
    messages.success(request, f"Removed the transition '{parent.name}' → '{child.name}'.")


@_builder_action()
def remove(model_admin, request, machine, state):
    with builder.revision(user=request.user, comment=f"Removed state {state.name}"):
        builder.remove_state(state)
    messages.success(request, f"Removed state '{state.name}'.")


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
    messages.success(request, f"Pruned '{state.name}': removed {', '.join(removed)}.")


@_builder_action()
def edit(model_admin, request, machine, state):
    rule_set = get_rule_set(machine.rule_set.key)
    name_form = StateNameForm(request.POST, auto_id=f"id_state{state.pk}_%s")
    settings_form = settings_form_for(rule_set, state, data=request.POST)
    settings = None
    if settings_form is not None:
        settings = {name: settings_form[name].data for name in settings_form.fields}
    old_name = state.name
    try:
        with builder.revision(user=request.user, comment=f"Edited state {state.name}"):
            state = builder.update_state(state, name=request.POST.get("name", ""),
                                         settings=settings)
            reversion.set_comment(_edit_comment(old_name, state))
    except GraphError as exc:
        return _edit_refused(model_admin, request, machine, state, exc, name_form, settings_form)
    messages.success(request, f"Saved state '{state.name}'.")


def _edit_comment(old_name, state):
    if old_name != state.name:
        return f"Renamed state {old_name} to {state.name} and saved its settings"
    return f"Edited state {state.name}"


def _edit_refused(model_admin, request, machine, state, exc, name_form, settings_form):
    """Show the state form again with the refusal and the field errors."""
    messages.error(request, str(exc))
    name_form.is_valid()
    if isinstance(exc, SettingsInvalid) and settings_form is not None:
        settings_form.is_valid()
    elif not isinstance(exc, SettingsInvalid):
        name_form.add_error(None, str(exc))
    context = {**model_admin.admin_site.each_context(request), "opts": model_admin.opts,
               "machine": machine, "original": machine, "state": state, "name_form": name_form,
               "settings_form": settings_form, "title": f"Edit state '{state.name}'"}
    return TemplateResponse(request, "admin/flowr/machine/state_form.html", context)


@_builder_action(state=False)
def publish(model_admin, request, machine, _state):
    version = engine.publish(machine, user=request.user)
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
    ]
    for name, view in state_views:
        patterns.append(path(f"<path:object_id>/builder/state/<int:state_id>/{name}/",
                             wrap(view), name=f"flowr_machine_state_{name}"))
    return patterns
