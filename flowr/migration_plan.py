"""Planning a migration of running instances to another version: the dry run.

A plan groups the selected instances by the state they sit in (matched across versions
by its stable key) and gives each occupied state a *choice*: migrate to a state of the
target version, leave the instances on their version, or cancel them. Choices start
pre-filled: the same key when the target still has the state, else the one target state
using the same rule (preferring states the sources lack); states with neither must be
chosen. Overrides replace these defaults; every choice is checked (`problems`). The plan
then tells, per instance, exactly what a confirmed migration will do. Planning reads only.
"""
import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field

from . import access
from .compiled import compile_many, compiled
from .engine import effective_status
from .exceptions import MappingInvalid, MigrationError, RuleNotRegistered
from .models import Instance, MachineVersion

MAP, LEAVE, CANCEL = "map", "leave", "cancel"
CANCEL_PERMISSION = "flowr.cancel_instance"
_FIELDS = ("id", "machine", "version", "state_key", "state_name", "status", "outcome",
           "title", "business_key", "last_activity", "step_count", "state_entered_at",
           "assignee", "started_by")


@dataclass(frozen=True)
class Choice:
    """What happens to the instances of one source state."""

    action: str = ""  # map | leave | cancel | "" (not chosen yet)
    to: str = ""  # the target state key when action is map
    how: str = "chosen"  # key (same state) | rule (pre-filled by rule) | chosen

    @property
    def token(self):
        """The form value: "to:<key>", "leave", "cancel" or ""."""
        return f"to:{self.to}" if self.action == MAP else self.action

    @classmethod
    def parse(cls, token):
        """The Choice a form value stands for (unknown values: not chosen)."""
        token = (token or "").strip()
        if token.startswith("to:") and len(token) > 3:
            return cls(MAP, token[3:])
        return cls(token) if token in (LEAVE, CANCEL) else cls()


@dataclass
class SourceState:
    """A state some selected instances sit in, with its choice and why that is refused."""

    key: str
    name: str
    rule: str
    versions: list = field(default_factory=list)  # numbers of the versions holding them
    count: int = 0
    target_name: str = ""  # its name in the target, when the target has the key
    default: Choice = Choice()
    choice: Choice = Choice()
    problem: str = ""

    @property
    def in_target(self):
        return bool(self.target_name)

    @property
    def needs_row(self):
        """Does the mapping step show it? (the target lacks it, or renamed it)"""
        return not self.in_target or self.target_name != self.name


@dataclass(frozen=True)
class Outcome:
    """What the migration will do to one instance."""

    action: str  # map | leave | cancel | refused
    to_key: str = ""
    to_name: str = ""
    finishes: bool = False
    reason: str = ""


class MigrationPlan:
    """The dry run of migrating `instances` (of one machine) to version `target`."""

    def __init__(self, instances, target, overrides=None, user=None):
        self.instances = list(instances)
        self.target, self.user = target, user
        if len({i.machine_id for i in self.instances}) > 1:
            raise MigrationError("The selected instances belong to different machines; select "
                                 "instances of one machine to migrate them between versions.")
        if self.instances and self.instances[0].machine_id != target.machine_id:
            raise MigrationError(f"Version {target.number} belongs to another machine than "
                                 f"the selected instances.")
        self.graph = compiled(target)
        self.sources = _sources(self.instances, target)
        self.graphs = {v.pk: g for v, g in zip(self.sources, compile_many(self.sources),
                                                strict=True)}
        self._refusals = {i.pk: self._refusal(i) for i in self.instances}
        self.states = self._source_states()
        self.apply(overrides or {})

    # -- building -------------------------------------------------------------------

    def _refusal(self, instance):
        if instance.version_id == self.target.pk:
            return f"It already runs on version {self.target.number}."
        status = effective_status(instance)
        if status != Instance.ACTIVE:
            what = {Instance.SUSPENDED: "suspended; resume it first"}.get(status, status)
            return f"It is {what}; only active instances are migrated."
        return ""

    def _source_states(self):
        states = OrderedDict()
        numbers = {v.pk: v.number for v in self.sources}
        for instance in self.instances:
            if self._refusals[instance.pk]:
                continue
            graph = self.graphs[instance.version_id]
            state = states.get(instance.state_key)
            if state is None:
                state = states[instance.state_key] = SourceState(
                    instance.state_key, graph.names[instance.state_key],
                    graph.rules[instance.state_key],
                    target_name=self.graph.names.get(instance.state_key, ""))
            state.count += 1
            if numbers[instance.version_id] not in state.versions:
                state.versions.append(numbers[instance.version_id])
        for state in states.values():
            state.versions.sort()
            state.default = self._default(state)
        return list(states.values())

    def _default(self, state):
        if state.in_target:
            return Choice(MAP, state.key, "key")
        same_rule = [k for k, rule in self.graph.rules.items() if rule == state.rule]
        fresh = [k for k in same_rule if not any(k in g.names for g in self.graphs.values())]
        for candidates in (fresh, same_rule):
            if len(candidates) == 1:
                return Choice(MAP, candidates[0], "rule")
        return Choice()

    def apply(self, overrides):
        """Set the choices: defaults, replaced by `overrides` {source key: Choice}; check them."""
        for state in self.states:
            override = overrides.get(state.key)
            same = override and (override.action, override.to) == (state.default.action,
                                                                   state.default.to)
            # An override equal to the default keeps the default's "how" (same state, rule).
            state.choice = override if override and override.action and not same \
                else state.default
            state.problem = self._problem(state, state.choice)
        self._by_key = {s.key: s for s in self.states}

    def _problem(self, state, choice):
        many = f"{state.count} instance{'s' if state.count != 1 else ''}"
        if not choice.action:
            return (f"Version {self.target.number} has no state '{state.name}' and no state "
                    f"of its rule; choose where its {many} go, leave them or cancel them.")
        if choice.action == CANCEL and self.user is not None \
                and not self.user.has_perm(CANCEL_PERMISSION):
            return f"Cancelling its {many} needs the permission '{CANCEL_PERMISSION}'."
        if choice.action != MAP:
            return ""
        if choice.to not in self.graph.names:
            return f"'{choice.to}' is not a state of version {self.target.number}."
        there = self.graph.names[choice.to]
        try:
            self.graph.rule(choice.to)
        except RuleNotRegistered as exc:
            return f"'{there}' cannot hold instances: {exc}"
        refused = choice.to != state.key and access.rule_problem(self.graph, choice.to,
                                                                 self.user)
        return f"'{state.name}' cannot be mapped to '{there}': {refused}" if refused else ""

    # -- reading ----------------------------------------------------------------------

    @property
    def rows(self):
        """The states the mapping step shows (the target lacks or renamed them)."""
        return [s for s in self.states if s.needs_row]

    @property
    def problems(self):
        """{source key: reason} of the refused choices (empty when the plan may run)."""
        return {s.key: s.problem for s in self.states if s.problem}

    def check(self):
        """Raise MappingInvalid naming every refused choice; nothing is written."""
        if self.problems:
            lines = [f"'{self._by_key[k].name}': {why}" for k, why in self.problems.items()]
            raise MappingInvalid("The mapping is invalid; nothing was migrated. "
                                 + " ".join(lines), errors=self.problems)

    def outcome(self, instance):
        """The Outcome of one instance of the plan."""
        refusal = self._refusals[instance.pk]
        if refusal:
            return Outcome("refused", reason=refusal)
        state = self._by_key[instance.state_key]
        if state.problem:
            return Outcome("refused", reason=state.problem)
        choice = state.choice
        if choice.action != MAP:
            return Outcome(choice.action)
        return Outcome(MAP, choice.to, self.graph.names[choice.to],
                       finishes=not self.graph.children[choice.to])

    def outcomes(self):
        """(instance, Outcome) of every selected instance, in selection order."""
        return [(instance, self.outcome(instance)) for instance in self.instances]

    def counts(self):
        """How many instances each action takes: {map, leave, cancel, refused}."""
        counts = dict.fromkeys((MAP, LEAVE, CANCEL, "refused"), 0)
        for instance in self.instances:
            counts[self.outcome(instance).action] += 1
        return counts

    def digest(self):
        """A fingerprint of every instance's position and outcome (a stale preview check)."""
        text = "|".join(f"{i.pk}:{i.step_count}:{o.action}:{o.to_key}"
                        for i, o in sorted(self.outcomes(), key=lambda pair: str(pair[0].pk)))
        return hashlib.sha256(f"{self.target.pk}|{text}".encode()).hexdigest()[:20]

    def mapping(self):
        """The choices as a migration records them: {source key: {...}}."""
        return {s.key: {"action": s.choice.action, "to": s.choice.to, "how": s.choice.how,
                        "name": s.name, "count": s.count,
                        "to_name": self.graph.names.get(s.choice.to, "")}
                for s in self.states}

    # -- naming states (commands) ---------------------------------------------------------

    def source_key(self, ref):
        """The key of a source state given by key or name (any source version)."""
        return _resolve(ref, [g for g in self.graphs.values()], "the source versions")

    def target_key(self, ref):
        """The key of a target state given by key or name."""
        return _resolve(ref, [self.graph], f"version {self.target.number}")


def _sources(instances, target):
    """The versions the instances run on (definitions deferred), oldest first."""
    ids = {i.version_id for i in instances} - {target.pk}
    return list(MachineVersion.objects.filter(pk__in=ids).defer("definition")
                .order_by("number"))


def _resolve(ref, graphs, where):
    if any(ref in g.names for g in graphs):
        return ref
    keys = {k for g in graphs for k, name in g.names.items() if name == ref}
    if len(keys) == 1:
        return keys.pop()
    if keys:
        raise MappingInvalid(f"The name '{ref}' belongs to several states of {where} (keys "
                             f"{', '.join(sorted(keys))}); give the key instead.")
    raise MappingInvalid(f"There is no state '{ref}' (by key or name) in {where}.")


def load_instances(queryset):
    """The instances a plan reads, with only the fields it needs (one query)."""
    return list(queryset.only(*_FIELDS).order_by("started_at", "id"))
