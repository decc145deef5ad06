"""Comparing two published versions of a machine (or its draft with the latest version).

States are matched by their stable key, so a renamed state shows as a rename, and two
states that share a name across the versions (one removed, another added) are told apart
by their key. `compare_definitions` is pure: two definitions in (flowr.compiled), rows
and sentences out. `compare_versions` and `compare_draft` add how many running instances
of the older side sit in each state (one aggregate query).
"""
from dataclasses import dataclass, field

from django.db.models import Count

from . import options as _options
from .models import Instance

#: Statuses of instances that still run (and so sit in a state a new version may lack).
RUNNING = (Instance.ACTIVE, Instance.SUSPENDED)

OPTION_LABELS = {
    "groups": "Candidate groups", "assign": "Assign on entry", "assign_user": "Fixed user",
    "due_after": "Due after", "timeout_to": "On timeout step to", "remind_after": "Remind after",
}


@dataclass
class StateChange:
    """One state key of either side: its definition on each side and what changed."""

    key: str
    old: dict = None  # the state as the older definition holds it (None: added)
    new: dict = None  # as the newer one holds it (None: removed)
    old_label: str = ""  # its name, with the key when another state shares the name
    new_label: str = ""
    settings: list = field(default_factory=list)  # "max_amount: 500 → 900"
    options: list = field(default_factory=list)  # "Due after: — → 2 days"
    running: int = 0  # running instances of the older version sitting in it

    @property
    def kind(self):
        """added, removed, changed or unchanged."""
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        return "changed" if self.what else "unchanged"

    @property
    def renamed(self):
        return bool(self.old and self.new and self.old["name"] != self.new["name"])

    @property
    def rule_changed(self):
        return bool(self.old and self.new and self.old["rule"] != self.new["rule"])

    @property
    def what(self):
        """What changed in a state both sides have: ["renamed", "rule", "settings", …]."""
        flags = [("renamed", self.renamed), ("rule", self.rule_changed),
                 ("settings", self.settings), ("options", self.options)]
        return [name for name, flag in flags if flag]

    @property
    def label(self):
        return self.new_label or self.old_label


@dataclass
class Comparison:
    """The difference from an older definition to a newer one, state by state."""

    old: dict
    new: dict
    states: list  # StateChange, old order then added ones
    transitions_added: list  # (parent label, child label, parent key, child key)
    transitions_removed: list
    root_changed: tuple = None  # (old root label, new root label)
    old_label: str = "A"  # "v3" or "draft": how sentences name the sides
    new_label: str = "B"

    def of_kind(self, kind):
        return [s for s in self.states if s.kind == kind]

    @property
    def has_changes(self):
        return bool(self.transitions_added or self.transitions_removed or self.root_changed
                    or any(s.kind != "unchanged" for s in self.states))

    @property
    def affected(self):
        """Removed or changed states with running instances sitting in them."""
        return [s for s in self.states if s.kind in ("removed", "changed") and s.running]

    def lines(self):
        """The difference as sentences, one per change (the golden text of the tests)."""
        out = [f"Added state '{s.new_label}' ({s.new['rule']})." for s in self.of_kind("added")]
        out += [f"Removed state '{s.old_label}' ({s.old['rule']})."
                for s in self.of_kind("removed")]
        for s in self.of_kind("changed"):
            if s.renamed:
                out.append(f"Renamed state '{s.old_label}' to '{s.new_label}'.")
            if s.rule_changed:
                out.append(f"Changed the rule of '{s.new_label}' from {s.old['rule']} to "
                           f"{s.new['rule']}.")
            if s.settings:
                out.append(f"Changed settings of '{s.new_label}': {'; '.join(s.settings)}.")
            if s.options:
                out.append(f"Changed options of '{s.new_label}': {'; '.join(s.options)}.")
        out += ["Added transition '%s' → '%s'." % t[:2] for t in self.transitions_added]
        out += ["Removed transition '%s' → '%s'." % t[:2] for t in self.transitions_removed]
        if self.root_changed:
            out.append("The root changed from '%s' to '%s'." % self.root_changed)
        return out

    def impact_lines(self):
        """Sentences about running instances: "v4 removes 'E', where 12 … on v3 sit."."""
        out = []
        for s in self.affected:
            verb = "removes" if s.kind == "removed" else f"changes ({', '.join(s.what)})"
            many = "s" if s.running != 1 else ""
            out.append(f"{self.new_label} {verb} '{s.label}', where {s.running} running "
                       f"instance{many} on {self.old_label} sit{'s' if not many else ''}.")
        return out

    def marks(self, side):
        """Diagram marks of one side ("old" or "new"): changed states and transitions."""
        marks = {}
        for s in self.states:
            if s.kind == "changed" or (s.kind, side) in (("added", "new"), ("removed", "old")):
                marks[s.key] = s.kind
        edges = self.transitions_removed if side == "old" else self.transitions_added
        for *_, parent, child in edges:
            marks[(parent, child)] = "removed" if side == "old" else "added"
        return marks


# -- the pure comparison -----------------------------------------------------------------

def _labels(old, new):
    """State key -> display name per side, with the key added to names shared by two keys."""
    keys_by_name = {}
    for definition in (old, new):
        for s in definition["states"]:
            keys_by_name.setdefault(s["name"], set()).add(s["key"])

    def label(s):
        return f"{s['name']} [{s['key']}]" if len(keys_by_name[s["name"]]) > 1 else s["name"]
    return ({s["key"]: label(s) for s in old["states"]},
            {s["key"]: label(s) for s in new["states"]})


def _text(value):
    return "—" if value in (None, "", [], {}) else repr(value)


def settings_changes(old, new):
    """Per-key changes of two settings dicts: "max_amount: 500 → 900"."""
    return [f"{key}: {_text(old.get(key))} → {_text(new.get(key))}"
            for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def _option_text(key, value, names):
    if value in (None, "", []):
        return "—"
    if key in ("due_after", "remind_after"):
        return _options.format_duration(value)
    if key == "groups":
        return ", ".join(value)
    if key == "timeout_to":
        return f"'{names.get(value, value)}'"
    return str(value)


def options_changes(old, new, old_names, new_names):
    """Per-option changes of two options dicts, in the order of flowr.options.KEYS."""
    return [f"{OPTION_LABELS.get(key, key)}: {_option_text(key, old.get(key), old_names)} → "
            f"{_option_text(key, new.get(key), new_names)}"
            for key in (*_options.KEYS, *sorted((set(old) | set(new)) - set(_options.KEYS)))
            if old.get(key) != new.get(key)]


def _state_change(key, before, after, old_labels, new_labels):
    change = StateChange(key, before, after, old_labels.get(key, ""), new_labels.get(key, ""))
    if before is not None and after is not None:
        change.settings = settings_changes(before.get("settings") or {},
                                           after.get("settings") or {})
        change.options = options_changes(before.get("options") or {},
                                         after.get("options") or {}, old_labels, new_labels)
    return change


def compare_definitions(old, new, old_label="A", new_label="B"):
    """The Comparison from definition `old` to definition `new` (pure)."""
    old_labels, new_labels = _labels(old, new)
    old_states = {s["key"]: s for s in old["states"]}
    new_states = {s["key"]: s for s in new["states"]}
    keys = list(old_states) + [k for k in new_states if k not in old_states]
    states = [_state_change(k, old_states.get(k), new_states.get(k), old_labels, new_labels)
              for k in keys]
    old_edges = [tuple(t) for t in old["transitions"]]
    new_edges = [tuple(t) for t in new["transitions"]]

    def named(edges, labels, other):
        return [(labels[p], labels[c], p, c) for p, c in edges if (p, c) not in other]

    root_changed = None
    if old.get("root") != new.get("root"):
        root_changed = (old_labels.get(old.get("root"), "—"),
                        new_labels.get(new.get("root"), "—"))
    return Comparison(old, new, states, named(new_edges, new_labels, set(old_edges)),
                      named(old_edges, old_labels, set(new_edges)), root_changed,
                      old_label, new_label)


# -- with the running instances ------------------------------------------------------------

def running_counts(version):
    """{state key: running instances of `version` sitting there} (one aggregate query)."""
    rows = (Instance.objects.filter(version=version, status__in=RUNNING).order_by()
            .values_list("state_key").annotate(n=Count("pk")))
    return dict(rows)


def _count(comparison, version):
    counts = running_counts(version)
    for state in comparison.states:
        state.running = counts.get(state.key, 0)
    return comparison


def compare_versions(old, new):
    """The Comparison from MachineVersion `old` to `new`, with `old`'s running instances."""
    comparison = compare_definitions(old.definition, new.definition, f"v{old.number}",
                                     f"v{new.number}")
    return _count(comparison, old)


def compare_draft(machine, latest=None):
    """(latest version, Comparison from it to the machine's draft graph) or (None, None)."""
    from .versioning import current_definition

    latest = latest or machine.versions.order_by("-number").first()
    if latest is None:
        return None, None
    comparison = compare_definitions(latest.definition, current_definition(machine),
                                     f"v{latest.number}", f"v{latest.number + 1}")
    return latest, _count(comparison, latest)
