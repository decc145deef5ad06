"""The builder's forms, rendered on demand for one state (never once per state).

GET .../builder/state/<pk>/ shows a state's forms: edit (name, settings), add a child
(name and the rule's settings, filled with their initial values, before the state is
created) and connect to an existing state. ?do=edit|add|connect (&rule=<key>) picks
one; &fragment=1 answers only that form, which the page's script shows inline. Without
JavaScript the same page is a plain form page; every form POSTs to the action views.
"""
from dataclasses import dataclass, field

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from .. import builder
from .. import options as _options
from ..exceptions import RuleNotRegistered, SettingsInvalid
from ..rules import is_registered

ACTIONS = ("edit", "add", "connect")
CHOICE_LIMIT = 8  # add forms on the full state page; more rules: "Add…" lists buttons


class StateNameForm(forms.Form):
    name = forms.CharField(max_length=200, label="Name")


class ConnectForm(forms.Form):
    """Choose an existing state to connect to."""

    child = forms.ChoiceField(label="Connect to")

    def __init__(self, *args, states=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["child"].choices = [(s.pk, s.name) for s in states]


def settings_form_for(rule_set, rule_key, data=None, initial=None, auto_id="id_%s"):
    """The rule's settings form (prefix "settings"), or None when the rule has none."""
    try:
        rule = rule_set.get(rule_key)
    except RuleNotRegistered:
        return None
    if rule.settings_form is None:
        return None
    return rule.settings_form(data=data, prefix="settings", initial=initial, auto_id=auto_id)


def options_form_for(state, children, data=None, choices=None, auto_id="id_%s"):
    """The common state options (flowr.options) of a state (prefix "options")."""
    form = _options.StateOptionsForm(
        data, prefix="options", children=children, choices=choices, auto_id=auto_id,
        initial=_options.initial(state.options) if state is not None else None)
    if not form.fields["groups"].choices:
        form.fields["groups"].help_text = ("There are no groups yet: add them under "
                                           "Authentication and Authorization › Groups.")
    return form


def posted_options(post):
    """The posted options as the raw dict builder.add_child/update_state validate."""
    return {key: (post.getlist(f"options-{key}") if key == "groups"
                  else post.get(f"options-{key}", "")) for key in _options.KEYS}


def posted_settings(form):
    """The raw posted settings of a settings form, for builder.clean_settings to validate."""
    if form is None:
        return None
    return {name: form[name].data for name in form.fields}


@dataclass
class FormBox:
    """One form on the state page: what it does, where it posts, its Django forms."""

    kind: str  # edit | add | connect
    title: str
    action: str
    forms: list
    options: object = None  # the StateOptionsForm, shown in its own fieldset
    choices: list = field(default_factory=list)  # (rule key, name): one button each
    rule_key: str = ""
    submit: str = "Save"
    note: str = ""


def _action_url(machine, state, name):
    return reverse(f"admin:flowr_machine_state_{name}", args=[machine.pk, state.pk])


def edit_box(machine, rule_set, graph, state, data=None, choices=None):
    """The edit form of a state: its name, its rule's settings and its common options."""
    auto_id = f"id_edit{state.pk}_%s"
    name_form = StateNameForm(data, initial={"name": state.name}, auto_id=auto_id)
    settings = settings_form_for(rule_set, state.rule_key, data, state.settings or None,
                                 auto_id)
    options = options_form_for(state, graph.child_choices(state), data, choices, auto_id)
    note = "" if settings else "This rule takes no settings of its own."
    return FormBox("edit", f"Edit “{state.name}”", _action_url(machine, state, "edit"),
                   [f for f in (name_form, settings) if f], options=options,
                   submit="Save state", note=note)


def add_box(machine, rule_set, graph, parent, rule_key, data=None, choices=None):
    """The form adding a child of `rule_key` under `parent`: its name, its rule's settings
    at their initial values and its common options (no timeout yet: it has no children)."""
    rule = rule_set.get(rule_key)
    auto_id = f"id_add{parent.pk}_{rule_key.rpartition('.')[2]}_%s"
    suggested = builder._unique_name(graph, rule.get_display_name())
    name_form = StateNameForm(data, initial={"name": suggested}, auto_id=auto_id)
    settings = settings_form_for(rule_set, rule_key, data, None, auto_id)
    options = options_form_for(None, (), data, choices, auto_id)
    del options.fields["timeout_to"]  # a new state has no next states to time out to yet
    options.fields["due_after"].help_text += (" To step on automatically when due, add its "
                                              "next states, then edit it.")
    return FormBox("add", f"New “{rule.get_display_name()}” state under “{parent.name}”",
                   _action_url(machine, parent, "add"), [f for f in (name_form, settings) if f],
                   options=options, rule_key=rule_key, submit=f"Add {rule.get_display_name()}")


def choose_box(machine, rule_set, parent, addable):
    """One button per rule a child of `parent` may use (for states that may add many)."""
    names = [(key, rule_set.get(key).get_display_name()) for key in addable]
    return FormBox("choose", f"Add a state under “{parent.name}”",
                   _action_url(machine, parent, "add"), [], choices=names,
                   note="" if names else "No more states can be added under this one now.")


def connect_box(machine, graph, parent, rule_key="", data=None):
    """The form connecting `parent` to an existing state (of `rule_key` only, if given)."""
    allowed = set(graph.addable_rules(parent))
    if rule_key:
        allowed &= {rule_key}
    states = [s for s in graph.states if s.rule_key in allowed]
    form = ConnectForm(data, states=states, auto_id=f"id_connect{parent.pk}_%s")
    note = "" if states else "No existing state can follow this one now."
    return FormBox("connect", f"Connect “{parent.name}” to an existing state",
                   _action_url(machine, parent, "connect"), [form] if states else [],
                   submit="Connect", note=note)


def boxes_for(machine, graph, state, do=None, rule_key="", data=None):
    """The form boxes the state page shows for `do` (all of them when None)."""
    rule_set = graph.rule_set
    addable = graph.addable_rules(state)
    choices = _options.Choices.load() if do in (None, "edit", "add") else None
    boxes = []
    if do in (None, "edit"):
        boxes.append(edit_box(machine, rule_set, graph, state, data if do == "edit" else None,
                              choices))
    if do in (None, "add"):
        boxes += _add_boxes(machine, rule_set, graph, state, addable, do, rule_key,
                            data if do == "add" else None, choices)
    if do in (None, "connect"):
        boxes.append(connect_box(machine, graph, state, rule_key if do == "connect" else ""))
    return boxes


def _add_boxes(machine, rule_set, graph, state, addable, do, rule_key, data, choices):
    """The add form of the rule asked for; else one form per rule, or one button per rule
    when there are many (each button then opens its form if the rule has settings)."""
    if do == "add" and rule_key:
        keys = [rule_key] if rule_key in addable else []
        return [add_box(machine, rule_set, graph, state, k, data, choices) for k in keys]
    if do == "add" or len(addable) > CHOICE_LIMIT:
        return [choose_box(machine, rule_set, state, addable)]
    return [add_box(machine, rule_set, graph, state, k, None, choices) for k in addable]


def render_state_page(model_admin, request, machine, state, do=None, rule_key="", data=None,
                      error=None):
    """The state page (or only its form, for the page's script); with `data` and `error`,
    the refused form again, as posted, with its errors."""
    graph = builder.MachineGraph.load(machine)
    state = graph.by_key.get(state.key, state)
    boxes = boxes_for(machine, graph, state, do, rule_key, data)
    for box in boxes if data is not None else ():
        for form in [*box.forms, box.options]:
            if form is not None:
                form.is_valid()  # show the field errors of what was posted
    if error is not None and not isinstance(error, SettingsInvalid) and boxes:
        boxes[0].forms[0].add_error(None, str(error))
    if do == "add" and not boxes:
        messages.warning(request, f"A '{rule_key}' state cannot be added under "
                                  f"'{state.name}' now; the page was out of date.")
    context = {**model_admin.admin_site.each_context(request), "opts": model_admin.opts,
               "machine": machine, "original": machine, "state": state, "boxes": boxes,
               "title": f"State “{state.name}”", "rule_name": state.rule_name}
    template = ("admin/flowr/machine/includes/state_forms.html"
                if request.GET.get("fragment") else "admin/flowr/machine/state_page.html")
    return TemplateResponse(request, template, context)


def state_page(model_admin, request, object_id, state_id):
    """GET: the forms of one state (see the module docstring)."""
    from django.contrib.admin.utils import unquote

    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    machine = model_admin.get_object(request, unquote(object_id))
    if machine is None:
        messages.warning(request, f"Machine with ID “{object_id}” doesn’t exist.")
        return HttpResponseRedirect(reverse("admin:flowr_machine_changelist"))
    if not model_admin.has_change_permission(request, machine):
        raise PermissionDenied
    back = HttpResponseRedirect(reverse("admin:flowr_machine_change", args=[machine.pk]))
    if not is_registered(machine.rule_set.key):
        messages.error(request, f"Rule set '{machine.rule_set.key}' is no longer registered "
                                f"in code; machine '{machine}' cannot be changed.")
        return back
    state = machine.states.filter(pk=state_id).first()
    if state is None:
        messages.error(request, "That state no longer exists; the page was out of date.")
        return back
    do = request.GET.get("do")
    return render_state_page(model_admin, request, machine, state,
                             do if do in ACTIONS else None, request.GET.get("rule", "")[:200])
