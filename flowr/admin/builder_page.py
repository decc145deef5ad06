"""The machine page below the machine's fields: diagram, states with their buttons, versions.

Built in time linear in the states and transitions and in a constant number of queries:
one pass finds what every remove/disconnect would strand (flowr.graph.StrandIndex), the
layout is shared through the cache (flowr.layout), and the forms that need a list of
states or a rule's settings are rendered on demand (builder_forms.py), never per state.
"""
from collections import defaultdict
from urllib.parse import quote
from dataclasses import dataclass, field

from django.db.models import Count
from django.urls import NoReverseMatch, reverse

from .. import builder, engine
from .. import diagrams as _diagrams
from .. import graph as _graph
from .. import options as _options
from ..exceptions import RuleNotRegistered
from ..models import Instance
from ..rules import is_registered
from .instance_filters import diagram_link, idle_q
from . import builder_rows


@dataclass
class AddOption:
    """One rule a state may add a child of; `existing` states of that rule may be connected."""

    rule_key: str
    name: str
    needs_form: bool
    existing: list = field(default_factory=list)


@dataclass
class StateRow:
    """One state on the machine page with what its buttons may do."""

    state: object
    rule_name: str  # "" when it says the same as the state's name
    children: list = field(default_factory=list)  # (child, refusal or "")
    adds: list = field(default_factory=list)  # AddOption
    blocked: str = ""  # why no (more) children can be added
    removal_error: str = ""
    count: int = 0  # active instances in this state
    count_url: str = ""
    summary: str = ""  # the state's common options, in words


class _Rules:
    """Rule facts of a registered rule set, looked up once per rule (not per state)."""

    def __init__(self, rule_set):
        self.rule_set = rule_set
        self._names, self._forms = {}, {}

    def name(self, rule_key):
        if rule_key not in self._names:
            try:
                rule = self.rule_set.get(rule_key) if self.rule_set else None
            except RuleNotRegistered:
                rule = None
            self._names[rule_key] = (rule.get_display_name() if rule else
                                     f"{rule_key} (not registered)" if self.rule_set
                                     else rule_key)
            self._forms[rule_key] = bool(rule and rule.settings_form)
        return self._names[rule_key]

    def needs_form(self, rule_key):
        self.name(rule_key)
        return self._forms[rule_key]

    def children(self, rule_key):
        try:
            return (self.rule_set.children_keys(rule_key),
                    self.rule_set.max_children(rule_key))
        except RuleNotRegistered:
            return [], 0


def _blocked(state, kids, limit, hidden, rules):
    """Why `hidden` (allowed but not offered) rules cannot be added under `state`."""
    if not hidden or len(kids) < limit:
        return ""
    listed = ", ".join(rules.name(k) for k in hidden[:3]) + (
        f" and {len(hidden) - 3} more" if len(hidden) > 3 else "")
    if limit == 1:
        return (f"Cannot add {listed}: '{state.name}' allows one child (its rule's "
                f"multiple_paths is off) and already has '{kids[0].name}'.")
    return (f"Cannot add {listed}: '{state.name}' already has {len(kids)} children, the "
            f"most its rule allows.")


def _adds(state, kids, rules, by_rule):
    """(AddOptions, blocked reason) of one state, like MachineGraph.addable_rules."""
    allowed, limit = rules.children(state.rule_key)
    used = {c.rule_key for c in kids}
    if len(used) >= limit:
        hidden = [k for k in allowed if k not in used]
        return [], _blocked(state, kids, limit, hidden, rules)
    return [AddOption(k, rules.name(k), rules.needs_form(k), by_rule.get(k, []))
            for k in allowed if k not in used], ""


def _removal_refusal(strands, state, names, timed_from):
    """Why Remove is disabled, short: the page has one per state."""
    few, count = strands.removal(state.key)
    source = timed_from.get(state.key)
    if not count and source not in (None, state.key):
        return (f"'{names[source]}' steps to it when due; change the timing of "
                f"'{names[source]}' first.")
    if not count:
        return ""
    return (f"it would leave {_graph.name_few(few, count, names)} unreachable from the "
            f"root; Prune… removes {'it' if count == 1 else 'them'} too.")


def _disconnect_refusal(strands, parent, child, names, timeouts):
    """Why a transition cannot be removed, short."""
    few, count = strands.disconnect(parent.key, child.key)
    if not count and (parent.key, child.key) in timeouts:
        return (f"'{parent.name}' steps to '{child.name}' when due; change the timing of "
                f"'{parent.name}' first.")
    if not count:
        return ""
    return (f"Removing {parent.name} → {child.name} would leave "
            f"{_graph.name_few(few, count, names)} unreachable from the root.")


def state_rows(graph, rule_set, editable, counts=None, count_url=None):
    """Every state's row, root first, in time linear in states and transitions."""
    rules, names = _Rules(rule_set), graph.names
    kids, by_rule = defaultdict(list), defaultdict(list)
    for parent, child in graph.edges:
        kids[parent].append(graph.by_key[child])
    for state in graph.states:
        by_rule[state.rule_key].append(state)
    root = graph.root
    strands = _graph.StrandIndex(graph.rule_map, graph.edges, root.key if root else None)
    counts = counts or {}
    timeouts = {(k, o["timeout_to"]) for k, o in graph.options.items() if o.get("timeout_to")}
    timed_from = {target: key for key, target in timeouts}
    rows = []
    for state in graph.states:
        rule_name = rules.name(state.rule_key)
        row = StateRow(state, "" if rule_name == state.name else rule_name)
        row.summary = _options.describe(state.options, names)
        row.children = [(child, _disconnect_refusal(strands, state, child, names, timeouts))
                        for child in kids[state.key]]
        row.count = counts.get(state.key, 0)
        row.count_url = count_url(state.key) if row.count and count_url else ""
        if editable:
            row.adds, row.blocked = _adds(state, kids[state.key], rules, by_rule)
            if not state.is_root:
                row.removal_error = _removal_refusal(strands, state, names, timed_from)
        rows.append(row)
    rows.sort(key=lambda r: not r.state.is_root)
    return rows


def active_counts(machine, version=None):
    """{state key: active instances} of a machine (or one version), in one query; exactly
    the rows the instance list shows for status=active (idle ones count as expired there)."""
    rows = Instance.objects.filter(machine=machine, status=Instance.ACTIVE)
    idle = idle_q()
    if idle is not None:
        rows = rows.exclude(idle)
    if version is not None:
        rows = rows.filter(version=version)
    return dict(rows.order_by().values_list("state_key").annotate(n=Count("pk")))


def instances_url(machine, version=None):
    """A function: state key -> the instance list filtered to its active instances."""
    base = reverse("admin:flowr_instance_changelist")
    version_id = version.pk if version is not None else None

    def url(key):
        return base + diagram_link(machine.pk, quote(key), version_id)
    return url


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


def _export_url(machine):
    """The import/export mixin's download of this machine, else its export page, else None."""
    for name, args in (("admin:flowr_machine_export_json", [machine.pk]),
                       ("admin:flowr_machine_export", [])):
        try:
            return reverse(name, args=args)
        except NoReverseMatch:
            continue
    return None


def download_links(url_name, *args):
    """[(label, url)] of one diagram's downloads (SVG, Mermaid, Graphviz DOT)."""
    from .diagram_views import links

    return links(url_name, *args)


def _hints(graph):
    """{state key: its options in words}, added to the diagram's tooltips."""
    names = graph.names
    return {s.key: _options.describe(s.options, names) for s in graph.states if s.options}


def _start_refusal(registered, machine, latest):
    return ("Its rule set is not registered." if not registered else
            "The machine is archived." if machine.archived else
            "Publish the machine first." if latest is None else "")


def builder_context(model_admin, request, machine):
    """Everything the machine page shows below the form, in a constant number of queries."""
    graph = builder.MachineGraph.load(machine)
    versions = _versions(machine)
    latest = versions[0] if versions else None
    registered = is_registered(machine.rule_set.key)
    rule_set = graph.rule_set if registered else None
    editable = registered and model_admin.has_change_permission(request, machine)
    status, is_draft = _draft_status(graph, latest)
    counts, count_url = active_counts(machine), instances_url(machine)
    return {
        "graph": graph, "registered": registered, "rule_set_key": machine.rule_set.key,
        "can_change": editable, "can_publish": editable,
        "can_start": (registered and request.user.has_perm("flowr.add_instance")
                      and latest is not None and not machine.archived),
        "start_refusal": _start_refusal(registered, machine, latest),
        "status": status, "is_draft": is_draft, "versions": versions,
        "rows_html": builder_rows.rows_html(
            state_rows(graph, rule_set, editable, counts, count_url), "../builder/state/",
            editable),
        "errors": graph.errors() if registered else [],
        "diagram": _diagrams.machine_svg(graph, counts=counts, count_url=count_url,
                                         interactive=True, hints=_hints(graph)),
        "active_total": sum(counts.values()),
        "export_url": _export_url(machine),
        "downloads": download_links("admin:flowr_machine_diagram", machine.pk),
        "state_count": len(graph.states), "transition_count": len(graph.edges),
    }
