"""The only code that changes a machine's graph. Admin, importer and programs call it.

Every function checks the rules first (flowr.graph) and raises GraphError naming the
states and rules involved; nothing is written when it raises.
"""
import json
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from . import graph as _graph
from ._values import clean_label
from . import options as _options
from .exceptions import GraphError, RuleNotRegistered, SettingsInvalid
from .models import Machine, RuleSetRecord, State, Transition
from .rules import get_rule_set


@dataclass
class MachineGraph:
    """A machine's states and transitions loaded in two queries, with rule checks."""

    machine: Machine
    states: list
    edges: list  # (parent_key, child_key)
    by_key: dict = field(init=False)

    def __post_init__(self):
        self.by_key = {s.key: s for s in self.states}

    @classmethod
    def load(cls, machine):
        states = list(machine.states.all().order_by("id"))
        by_id = {s.id: s.key for s in states}
        edges = [
            (by_id[p], by_id[c])
            for p, c in machine.transitions.order_by("id").values_list("parent_id", "child_id")
        ]
        return cls(machine, states, edges)

    @property
    def rule_set(self):
        return get_rule_set(self.machine.rule_set.key)

    @property
    def root(self):
        return next((s for s in self.states if s.is_root), None)

    @property
    def rule_map(self):
        return {s.key: s.rule_key for s in self.states}

    @property
    def names(self):
        return {s.key: s.name for s in self.states}

    def children(self, state):
        return [self.by_key[c] for p, c in self.edges if p == state.key]

    def parents(self, state):
        return [self.by_key[p] for p, c in self.edges if c == state.key]

    def addable_rules(self, state):
        """Rule keys a new child of `state` may use now (allowed, unused, capacity left)."""
        try:
            rule_set = self.rule_set
            allowed = rule_set.children_keys(state.rule_key)
            limit = rule_set.max_children(state.rule_key)
        except RuleNotRegistered:
            return []
        used = {c.rule_key for c in self.children(state)}
        if len(used) >= limit:
            return []
        return [key for key in allowed if key not in used]

    def connectable(self, state):
        """Existing states `state` may be connected to now."""
        try:
            rules = self.rule_set.graph_rules()
        except RuleNotRegistered:
            return []
        rule_map = self.rule_map
        if state.rule_key not in rules:
            return []
        return [
            other for other in self.states
            if _graph.edge_error(rule_map, self.edges, rules, state.key, other.key) is None
        ]

    def removal_error(self, state):
        return _graph.removal_error(self.rule_map, self.edges, self.root.key, state.key, self.names)

    def prune_preview(self, state):
        keys = _graph.prune_set(self.rule_map, self.edges, self.root.key, state.key)
        return [s for s in self.states if s.key in keys]

    @property
    def options(self):
        return {s.key: s.options for s in self.states if s.options}

    def child_choices(self, state):
        """(key, name) of the state's children: what its timeout may step to."""
        return [(c.key, c.name) for c in self.children(state)]

    def timeout_refusal(self, edges, doing, gone=()):
        """Why a change leaving only `edges` (and removing `gone` states) would break a
        remaining state's timeout, or None."""
        kept = {key: options for key, options in self.options.items() if key not in gone}
        errors = _options.timeout_errors(kept, edges, self.names)
        if errors:
            return f"{doing} is refused: {errors[0]}"
        return None

    def errors(self):
        """Every rule violation of the current graph (e.g. after rules changed in code)."""
        try:
            rule_set = self.rule_set
        except RuleNotRegistered as exc:
            return [str(exc)]
        root = self.root
        return _graph.validate(self.rule_map, self.edges, rule_set.graph_rules(),
                               root.key if root else None, rule_set.root_key, self.names) + \
            _options.timeout_errors(self.options, self.edges, self.names)


@contextmanager
def revision(user=None, comment=""):
    """Group builder calls into one django-reversion revision with user and comment."""
    import reversion

    with transaction.atomic(), reversion.create_revision():
        if user is not None and getattr(user, "pk", None):
            reversion.set_user(user)
        if comment:
            reversion.set_comment(comment)
        yield


def _locked(machine):
    """Lock the machine row so concurrent graph edits apply one after the other."""
    Machine.objects.select_for_update().filter(pk=machine.pk).exists()
    return MachineGraph.load(machine)


def _current(graph, state):
    """The locked graph's copy of `state`, or GraphError if it was removed meanwhile."""
    found = graph.by_key.get(state.key)
    if found is None:
        raise GraphError(f"State '{state}' no longer exists in machine '{graph.machine}'; "
                         f"nothing was changed.", state=state)
    return found


def _unique_name(graph, wanted):
    taken = {s.name for s in graph.states}
    if wanted not in taken:
        return wanted
    n = 2
    while f"{wanted} {n}" in taken:
        n += 1
    return f"{wanted} {n}"


def clean_settings(rule_key, settings):
    """Validate settings with the rule's settings form; return JSON-safe cleaned data."""
    rule = get_rule_set(rule_key.rpartition(".")[0]).get(rule_key)
    settings = settings or {}
    if not isinstance(settings, dict):
        raise SettingsInvalid(f"Settings for rule {rule_key} must be an object (a dict).")
    if rule.settings_form is None:
        if settings:
            raise SettingsInvalid(f"Rule {rule_key} takes no settings; got {sorted(settings)}.")
        return {}
    form = rule.settings_form(data=settings)
    if not form.is_valid():
        details = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
        raise SettingsInvalid(f"Settings for rule {rule_key} are invalid: {details}",
                              errors=form.errors.get_json_data())
    return json.loads(json.dumps(form.cleaned_data, cls=DjangoJSONEncoder))


def create_machine(rule_set, name, description=""):
    """Create a machine of a rule set (key or record) with its root state."""
    if not isinstance(rule_set, RuleSetRecord):
        record = RuleSetRecord.objects.filter(key=rule_set).first()
        if record is None:
            code = get_rule_set(rule_set)  # raises RuleNotRegistered for an unknown key
            raise RuleNotRegistered(f"Rule set '{code.key}' is registered in code but not "
                                    f"synced to the database; run `manage.py syncrulesets`.",
                                    rule_set_key=code.key)
        rule_set = record
    code = get_rule_set(rule_set.key)
    with transaction.atomic():
        machine = Machine.objects.create(name=name, description=description, rule_set=rule_set)
        # The root starts without settings; staff fill them in with the rule's form.
        State.objects.create(machine=machine, name=code.get(code.root_key).get_display_name(),
                             rule_key=code.root_key, is_root=True, settings={})
    return machine


def add_child(parent, rule_key, name=None, settings=None, key=None, options=None):
    """Add a new state of `rule_key` as a child of `parent`; returns the new State.

    `settings` are validated by the rule's settings form, `options` by flowr.options
    (a new state has no children yet, so it cannot time out to one).
    """
    with transaction.atomic():
        graph = _locked(parent.machine)
        parent = _current(graph, parent)
        rule_set = graph.rule_set
        rules = rule_set.graph_rules()
        if rule_key not in rules:
            raise GraphError(f"Rule {rule_key} is not a rule of rule set {rule_set.key}.")
        rule = rule_set.get(rule_key)
        probe = dict(graph.rule_map, __new__=rule_key)
        problem = _graph.edge_error(probe, graph.edges, rules, parent.key, "__new__",
                                    dict(graph.names, __new__=name or rule.get_display_name()))
        if problem:
            raise GraphError(problem, parent=parent, rule_key=rule_key)
        clean = clean_settings(rule_key, settings) if (settings or rule.settings_form) else {}
        name = (name or "").strip() or _unique_name(graph, rule.get_display_name())
        state_options = _options.clean_options(options, state_name=name)
        if name in graph.names.values():
            raise GraphError(f"A state named '{name}' already exists in machine "
                             f"'{graph.machine}'; choose another name.")
        extra = {"key": key} if key else {}
        child = State.objects.create(machine=parent.machine, name=name, rule_key=rule_key,
                                     settings=clean, options=state_options, **extra)
        Transition.objects.create(machine=parent.machine, parent=parent, child=child)
        _touch(parent.machine)
    return child


def connect(parent, child):
    """Add a transition between two existing states (cycles allowed)."""
    with transaction.atomic():
        graph = _locked(parent.machine)
        if child.machine_id != parent.machine_id:
            raise GraphError(f"States '{parent}' and '{child}' belong to different machines.")
        parent, child = _current(graph, parent), _current(graph, child)
        rules = graph.rule_set.graph_rules()
        problem = _graph.edge_error(graph.rule_map, graph.edges, rules, parent.key, child.key,
                                    graph.names)
        if problem:
            raise GraphError(problem, parent=parent, child=child)
        transition = Transition.objects.create(machine=parent.machine, parent=parent, child=child)
        _touch(parent.machine)
    return transition


def disconnect(parent, child):
    """Remove the transition parent→child, unless that strands states."""
    with transaction.atomic():
        graph = _locked(parent.machine)
        if (parent.key, child.key) not in graph.edges:
            raise GraphError(f"There is no transition '{parent}' → '{child}'.")
        rest = [e for e in graph.edges if e != (parent.key, child.key)]
        problem = _graph.disconnect_error(graph.rule_map, graph.edges, graph.root.key,
                                          parent.key, child.key, graph.names) or \
            graph.timeout_refusal(rest, f"Removing the transition '{parent}' → '{child}'")
        if problem:
            raise GraphError(problem, parent=parent, child=child)
        Transition.objects.filter(parent=parent, child=child).delete()
        _touch(parent.machine)


def remove_state(state):
    """Remove one state and its transitions, unless that strands other states."""
    with transaction.atomic():
        graph = _locked(state.machine)
        current = _current(graph, state)
        rest = [e for e in graph.edges if state.key not in e]
        problem = graph.removal_error(current) or \
            graph.timeout_refusal(rest, f"Removing state '{current}'", gone={state.key})
        if problem:
            raise GraphError(problem, state=state)
        State.objects.filter(pk=state.pk).delete()
        _touch(state.machine)


def prune_state(state):
    """Remove a state and everything only reachable through it; returns removed names."""
    with transaction.atomic():
        graph = _locked(state.machine)
        if state.key == graph.root.key:
            raise GraphError(f"State '{state}' is the root; the root cannot be pruned.")
        doomed = graph.prune_preview(_current(graph, state))
        gone = {s.key for s in doomed}
        rest = [(p, c) for p, c in graph.edges if p not in gone and c not in gone]
        problem = graph.timeout_refusal(rest, f"Pruning state '{state}'", gone=gone)
        if problem:
            raise GraphError(problem, state=state)
        State.objects.filter(pk__in=[s.pk for s in doomed]).delete()
        _touch(state.machine)
    return [s.name for s in doomed]


def update_state(state, name=None, settings=None, options=None):
    """Rename a state and/or replace its settings (validated by the rule's form) and/or
    its options (validated by flowr.options against its current children)."""
    with transaction.atomic():
        graph = _locked(state.machine)
        state = _current(graph, state)
        if name is not None:
            name = _valid_name(name, state)
            if name != state.name and name in graph.names.values():
                raise GraphError(f"A state named '{name}' already exists in machine "
                                 f"'{graph.machine}'; choose another name.")
            state.name = name
        if settings is not None:
            state.settings = clean_settings(state.rule_key, settings)
        if options is not None:
            state.options = _options.clean_options(options, graph.child_choices(state),
                                                   state_name=state.name)
        state.save(update_fields=["name", "settings", "options"])
        _touch(state.machine)
    return state


def _valid_name(name, state):
    """A state's new name, stripped; refused when empty, too long or holding NUL."""
    name = clean_label(name, f"name of state '{state}'",
                       State._meta.get_field("name").max_length, GraphError)
    if not name:
        raise GraphError(f"State '{state}' needs a name.")
    return name


def _touch(machine):
    """Mark the machine changed and, inside a revision, record its whole graph."""
    import reversion

    Machine.objects.filter(pk=machine.pk).update(updated_at=timezone.now())
    if reversion.is_active():
        reversion.add_to_revision(with_graph(machine.pk))


def with_graph(pk):
    """The machine with its states and transitions prefetched, transitions with their states:
    reversion records each transition as "A → B" (not "transition 24 → 25"), in 3 queries."""
    from django.db.models import Prefetch

    transitions = Transition.objects.select_related("parent", "child")
    return Machine.objects.prefetch_related(
        "states", Prefetch("transitions", queryset=transitions)).get(pk=pk)
