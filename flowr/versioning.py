"""Machine history for programs and the admin: snapshots of revisions, diffs, revert, recover.

A *definition* is the plain dict a published version freezes (flowr.engine.definition_of):
``{"rule_set", "root", "states": [{"key", "name", "rule", "settings"}], "transitions":
[[parent_key, child_key]]}``, optionally with the machine's ``"name"``. Versions,
django-reversion revisions and the live machine all turn into one, so a single pure
function, diff_definitions(), compares any two of them.
"""
from collections import Counter
from dataclasses import dataclass, field

from django.db import transaction

from . import graph as _graph
from . import options as _options
from .exceptions import FlowrError, GraphError, MoveError, RuleNotRegistered
from .models import Machine, RuleSetRecord, State, Transition


class RevisionError(FlowrError):
    """A revision cannot be reverted or recovered; nothing was changed."""


def register_models():
    """Register machines with django-reversion (following states and transitions); idempotent.

    Called by the machine admin before reversion's VersionAdmin would auto-register the
    Machine model alone (admin autodiscovery runs before flowr's AppConfig.ready()).
    """
    import reversion

    for model in (State, Transition):
        if not reversion.is_registered(model):
            reversion.register(model)
    options = reversion.is_registered(Machine) and reversion.revisions._get_options(Machine)
    if options and set(options.follow) != {"states", "transitions"}:
        reversion.unregister(Machine)
        options = None
    if not options:
        reversion.register(Machine, follow=["states", "transitions"])


# -- the pure difference ------------------------------------------------------------

@dataclass
class DefinitionDiff:
    """What changed from one definition to another, matched by each state's stable key."""

    added: list = field(default_factory=list)  # {"key", "name", "rule"}
    removed: list = field(default_factory=list)
    renamed: list = field(default_factory=list)  # {"key", "old", "new"}
    rule_changed: list = field(default_factory=list)  # {"key", "name", "old", "new"}
    settings_changed: list = field(default_factory=list)  # {"key", "name", "old", "new", "changes"}
    options_changed: list = field(default_factory=list)  # same shape, for flowr.options
    transitions_added: list = field(default_factory=list)  # (parent name, child name)
    transitions_removed: list = field(default_factory=list)
    root_changed: tuple = None  # (old root name, new root name)
    machine_renamed: tuple = None  # (old name, new name)

    @property
    def has_changes(self):
        return any([self.added, self.removed, self.renamed, self.rule_changed,
                    self.settings_changed, self.options_changed, self.transitions_added,
                    self.transitions_removed,
                    self.root_changed, self.machine_renamed])

    def lines(self):
        """The difference as readable sentences, one per change."""
        out = []
        if self.machine_renamed:
            out.append("Renamed the machine from '%s' to '%s'." % self.machine_renamed)
        # A state pruned and added again has its name twice: the key tells them apart.
        seen = Counter(s["name"] for s in self.added + self.removed)
        key = lambda s: f", key {s['key']}" if seen[s["name"]] > 1 else ""  # noqa: E731
        out += [f"Added state '{s['name']}' ({s['rule']}{key(s)})." for s in self.added]
        out += [f"Removed state '{s['name']}' ({s['rule']}{key(s)})." for s in self.removed]
        out += [f"Renamed state '{s['old']}' to '{s['new']}'." for s in self.renamed]
        out += [f"Changed the rule of '{s['name']}' from {s['old']} to {s['new']}."
                for s in self.rule_changed]
        out += [f"Changed settings of '{s['name']}': {'; '.join(s['changes'])}."
                for s in self.settings_changed]
        out += [f"Changed options of '{s['name']}': {'; '.join(s['changes'])}."
                for s in self.options_changed]
        out += ["Added transition '%s' → '%s'." % t for t in self.transitions_added]
        out += ["Removed transition '%s' → '%s'." % t for t in self.transitions_removed]
        if self.root_changed:
            out.append("The root changed from '%s' to '%s'." % self.root_changed)
        return out


def _settings_changes(old, new):
    return [f"{key}: {old.get(key, '—')!r} → {new.get(key, '—')!r}"
            for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def diff_definitions(old, new):
    """The DefinitionDiff from definition `old` to definition `new` (pure)."""
    old_states = {s["key"]: s for s in old["states"]}
    new_states = {s["key"]: s for s in new["states"]}
    diff = DefinitionDiff()
    for key, state in new_states.items():
        before = old_states.get(key)
        if before is None:
            diff.added.append({"key": key, "name": state["name"], "rule": state["rule"]})
            continue
        if before["name"] != state["name"]:
            diff.renamed.append({"key": key, "old": before["name"], "new": state["name"]})
        if before["rule"] != state["rule"]:
            diff.rule_changed.append({"key": key, "name": state["name"],
                                      "old": before["rule"], "new": state["rule"]})
        for part, changes in (("settings", diff.settings_changed),
                              ("options", diff.options_changed)):
            old_value, new_value = before.get(part) or {}, state.get(part) or {}
            if old_value != new_value:
                changes.append({"key": key, "name": state["name"], "old": old_value,
                                "new": new_value,
                                "changes": _settings_changes(old_value, new_value)})
    diff.removed = [{"key": k, "name": s["name"], "rule": s["rule"]}
                    for k, s in old_states.items() if k not in new_states]
    old_edges = [tuple(t) for t in old["transitions"]]
    new_edges = [tuple(t) for t in new["transitions"]]
    old_names = {k: s["name"] for k, s in old_states.items()}
    new_names = {k: s["name"] for k, s in new_states.items()}
    diff.transitions_added = [(new_names.get(p, p), new_names.get(c, c))
                              for p, c in new_edges if (p, c) not in old_edges]
    diff.transitions_removed = [(old_names.get(p, p), old_names.get(c, c))
                                for p, c in old_edges if (p, c) not in new_edges]
    if old.get("root") != new.get("root"):
        diff.root_changed = (old_names.get(old.get("root"), "—"),
                             new_names.get(new.get("root"), "—"))
    if old.get("name") and new.get("name") and old["name"] != new["name"]:
        diff.machine_renamed = (old["name"], new["name"])
    return diff


def diagram_input(definition):
    """(nodes, edges) for flowr.diagrams.render_graph from a definition."""
    nodes = [(s["key"], s["name"], s["rule"]) for s in definition["states"]]
    return nodes, [tuple(t) for t in definition["transitions"]]


def transition_names(definition):
    """The definition's transitions as (parent name, child name) pairs."""
    names = {s["key"]: s["name"] for s in definition["states"]}
    return [(names.get(p, p), names.get(c, c)) for p, c in definition["transitions"]]


# -- snapshots of revisions -----------------------------------------------------------

@dataclass
class Snapshot:
    """One machine as a django-reversion revision recorded it: field dicts, ordered by id."""

    revision: object
    machine: dict
    states: list
    transitions: list
    rule_set_key: str

    def definition(self):
        """The snapshot as a definition (with the machine's name)."""
        from .engine import DEFINITION_FORMAT

        keys = {s["id"]: s["key"] for s in self.states}
        root = next((s["key"] for s in self.states if s["is_root"]), None)
        return {
            "format": DEFINITION_FORMAT, "rule_set": self.rule_set_key, "name": self.machine["name"], "root": root,
            "states": [_snapshot_state(s) for s in self.states],
            "transitions": [[keys.get(t["parent_id"], f"#{t['parent_id']}"),
                             keys.get(t["child_id"], f"#{t['child_id']}")]
                            for t in self.transitions],
        }


def _snapshot_state(fields):
    """A state's recorded fields as a definition holds them (options only when set)."""
    item = {"key": fields["key"], "name": fields["name"], "rule": fields["rule_key"],
            "settings": fields["settings"] or {}}
    if fields.get("options"):
        item["options"] = fields["options"]
    return item


def snapshot(revision, machine_id):
    """The Snapshot of machine `machine_id` held by a reversion Revision."""
    from django.contrib.contenttypes.models import ContentType

    types = ContentType.objects.get_for_models(Machine, State, Transition)
    by_type = {types[Machine].pk: [], types[State].pk: [], types[Transition].pk: []}
    for version in revision.version_set.filter(content_type__in=list(by_type)):
        by_type[version.content_type_id].append(version.field_dict)
    machine_id = int(machine_id)
    machine = next((m for m in by_type[types[Machine].pk] if m["id"] == machine_id), None)
    if machine is None:
        raise RevisionError(f"Revision {revision.pk} does not record machine {machine_id}.")
    states = sorted((s for s in by_type[types[State].pk] if s["machine_id"] == machine_id),
                    key=lambda s: s["id"])
    transitions = sorted((t for t in by_type[types[Transition].pk]
                          if t["machine_id"] == machine_id), key=lambda t: t["id"])
    record = RuleSetRecord.objects.filter(pk=machine["rule_set_id"]).first()
    return Snapshot(revision, machine, states, transitions, record.key if record else "")


def current_definition(machine):
    """The live machine's graph as a definition (with its name)."""
    from .builder import MachineGraph
    from .engine import definition_of

    graph = MachineGraph.load(machine)
    if graph.root is None:
        from .compiled import state_definition

        definition = {"format": 1, "rule_set": machine.rule_set.key, "root": None,
                      "transitions": graph.edges,
                      "states": [state_definition(s) for s in graph.states]}
    else:
        definition = definition_of(graph)
    definition["name"] = machine.name
    return definition


def _children_of(definition, key):
    names = {s["key"]: s["name"] for s in definition["states"]}
    return [(c, names.get(c, c)) for p, c in definition["transitions"] if p == key]


def snapshot_errors(snap):
    """Why the snapshot no longer obeys the current rules (messages; empty when it does)."""
    from .builder import clean_settings
    from .rules import get_rule_set

    try:
        rule_set = get_rule_set(snap.rule_set_key)
    except RuleNotRegistered as exc:
        return [str(exc)]
    definition = snap.definition()
    states = {s["key"]: s["rule"] for s in definition["states"]}
    names = {s["key"]: s["name"] for s in definition["states"]}
    errors = _graph.validate(states, [tuple(t) for t in definition["transitions"]],
                             rule_set.graph_rules(), definition["root"], rule_set.root_key, names)
    errors += _options.timeout_errors({s["key"]: s.get("options") for s in definition["states"]},
                                      [tuple(t) for t in definition["transitions"]], names)
    choices = None
    for state in definition["states"]:
        if state["rule"] not in rule_set.graph_rules():
            continue  # already reported by validate()
        try:
            clean_settings(state["rule"], state["settings"])
            if state.get("options"):
                choices = choices or _options.Choices.load()
                _options.clean_options(state["options"], choices=choices,
                                       children=_children_of(definition, state["key"]))
        except GraphError as exc:
            errors.append(f"State '{state['name']}': {exc}")
    taken = Machine.objects.exclude(pk=snap.machine["id"]).filter(name=snap.machine["name"])
    if taken.exists():
        errors.append(f"Another machine is now called '{snap.machine['name']}'; rename it "
                      f"first.")
    return errors


# -- revert and recover -----------------------------------------------------------------

def _when(revision):
    from django.utils import timezone

    return timezone.localtime(revision.date_created).strftime("%Y-%m-%d %H:%M:%S")


def _restore(snap, archived):
    """Make the machine's rows equal to the snapshot (same primary keys and state keys)."""
    import reversion

    machine_id = snap.machine["id"]
    State.objects.filter(machine_id=machine_id).delete()  # cascades to its transitions
    machine = Machine(**dict(snap.machine, archived=archived))
    machine.save()
    State.objects.bulk_create([State(**s) for s in snap.states])
    Transition.objects.bulk_create([Transition(**t) for t in snap.transitions])
    machine = Machine.objects.get(pk=machine_id)
    if reversion.is_active():
        reversion.add_to_revision(machine)  # follows the restored states and transitions
    return machine


def _refuse_if_invalid(snap, doing):
    errors = snapshot_errors(snap)
    if errors:
        raise RevisionError(f"Cannot {doing}: it no longer obeys the current rules. "
                            + " ".join(errors) + " Nothing was changed.", errors=errors)


def revert(machine, version, user=None):
    """Revert `machine` to the reversion Version `version`; the revert is a new revision.

    Refused with RevisionError (nothing changed) when that graph breaks today's rules.
    The machine keeps its current archived flag.
    """
    from .builder import revision

    snap = snapshot(version.revision, machine.pk)
    when = _when(version.revision)
    _refuse_if_invalid(snap, f"revert machine '{machine}' to the revision of {when}")
    with revision(user, f"Reverted to the revision of {when} (#{version.revision_id})."):
        locked = Machine.objects.select_for_update().get(pk=machine.pk)
        return _restore(snap, archived=locked.archived)


def recover(version, user=None):
    """Recover a deleted machine (a reversion Version of it) with its states and transitions."""
    from .builder import revision

    snap = snapshot(version.revision, version.object_id)
    if Machine.objects.filter(pk=snap.machine["id"]).exists():
        raise RevisionError(f"Machine '{snap.machine['name']}' exists; there is nothing to "
                            f"recover.")
    _refuse_if_invalid(snap, f"recover machine '{snap.machine['name']}'")
    with revision(user, f"Recovered deleted machine '{snap.machine['name']}'."):
        return _restore(snap, archived=snap.machine.get("archived", False))


# -- moving instances between versions ---------------------------------------------------

@dataclass
class MovePlan:
    """A dry run of moving instances to `target`: per instance, None or why it cannot move."""

    target: object
    rows: list  # [(instance, problem or None)]
    diffs: list  # [(source version, DefinitionDiff)]

    @property
    def movable(self):
        return [instance for instance, problem in self.rows if problem is None]

    @property
    def refused(self):
        return [(instance, problem) for instance, problem in self.rows if problem]


def plan_move(instances, target):
    """The MovePlan for `instances` (of one machine) and the MachineVersion `target`."""
    from .engine import move_problem

    instances = list(instances)
    machines = {i.machine_id for i in instances}
    if len(machines) > 1:
        raise MoveError("The selected instances belong to different machines; select "
                        "instances of one machine to move them between its versions.")
    sources = {i.version_id: i.version for i in instances}
    diffs = [(source, diff_definitions(source.definition, target.definition))
             for _, source in sorted(sources.items(), key=lambda kv: kv[1].number)
             if source.pk != target.pk]
    return MovePlan(target, [(i, move_problem(i, target)) for i in instances], diffs)


def move_instances(instances, target, user=None):
    """Move every movable instance to `target`; returns (history entries, [(instance, why)])."""
    from .engine import move

    moved, refused = [], []
    for instance in instances:
        try:
            with transaction.atomic():
                moved.append(move(instance, target, user=user))
        except MoveError as exc:
            refused.append((instance, str(exc)))
    return moved, refused
