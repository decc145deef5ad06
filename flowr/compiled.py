"""Published versions as data: the definition format, its checksum and a compiled cache.

Versions are immutable, so their compiled form (children per state, names, rules) is
cached per process by version id; a step never re-reads the graph.
"""
import hashlib
import json
from collections import OrderedDict

from django.utils.functional import cached_property

from .exceptions import RuleNotRegistered
from .models import MachineVersion
from .rules import get_rule_set

DEFINITION_FORMAT = 1


def definition_of(graph):
    """The JSON definition of a loaded MachineGraph (what a version freezes)."""
    machine = graph.machine
    return {
        "format": DEFINITION_FORMAT,
        "rule_set": machine.rule_set.key,
        "root": graph.root.key,
        "states": [state_definition(s) for s in graph.states],
        "transitions": [[p, c] for p, c in graph.edges],
    }


def state_definition(state):
    """A state as a definition holds it; options only when set (older checksums hold)."""
    item = {"key": state.key, "name": state.name, "rule": state.rule_key,
            "settings": state.settings}
    if state.options:
        item["options"] = state.options
    return item


def checksum(definition):
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class CompiledVersion:
    """A version's definition indexed for stepping; immutable and cached."""

    def __init__(self, version_id, definition):
        self.version_id = version_id
        self.rule_set_key = definition["rule_set"]
        self.root = definition["root"]
        self.names = {s["key"]: s["name"] for s in definition["states"]}
        self.rules = {s["key"]: s["rule"] for s in definition["states"]}
        self.settings = {s["key"]: s.get("settings") or {} for s in definition["states"]}
        self.options = {s["key"]: s.get("options") or {} for s in definition["states"]}
        self.children = {key: [] for key in self.names}
        for parent, child in definition["transitions"]:
            self.children[parent].append(child)
        self.by_name = {name: key for key, name in self.names.items()}
        self.edges = [tuple(t) for t in definition["transitions"]]
        self._user_ids = {}

    def resolve(self, ref):
        """A state key from a key or a name, or None."""
        if ref in self.names:
            return ref
        return self.by_name.get(ref)

    def rule(self, key):
        """The rule class of a state, or raise RuleNotRegistered."""
        return get_rule_set(self.rule_set_key).get(self.rules[key])

    @cached_property
    def search_fields(self):
        """Task-state keys the rule set's rules declare searchable (their union, in order)."""
        try:
            rule_set = get_rule_set(self.rule_set_key)
        except RuleNotRegistered:
            return ()
        keys = (key for rule in rule_set.rules.values() for key in rule.search_fields)
        return tuple(dict.fromkeys(keys))

    def outcome(self, key):
        """The outcome of finishing in state `key`: its rule's declared `outcome`, or ""."""
        try:
            return self.rule(key).outcome or ""
        except RuleNotRegistered:
            return ""

    def assign_user_id(self, key):
        """The id of the fixed user a state assigns on entry, or None (cached per version)."""
        username = self.options[key].get("assign_user")
        if not username:
            return None
        if username not in self._user_ids:
            from django.contrib.auth import get_user_model

            self._user_ids[username] = (get_user_model().objects.filter(
                username=username, is_active=True).values_list("pk", flat=True).first())
        return self._user_ids[username]


_CACHE = OrderedDict()
_CACHE_SIZE = 512


def compiled(version):
    """The cached CompiledVersion of a MachineVersion (its definition may be deferred)."""
    hit = _CACHE.get(version.pk)
    if hit is not None and hit[0] == version.checksum:
        _CACHE.move_to_end(version.pk)
        return hit[1]
    result = CompiledVersion(version.pk, version.definition)  # loads a deferred field
    _remember(version.pk, version.checksum, result)
    return result


def compiled_by_id(version_id):
    """The CompiledVersion of a version id; reads the database only on a cache miss.

    Versions are immutable, so an id maps to one definition for good; the entry of an
    id is evicted when a version row is inserted (an id reused after a rollback).
    """
    hit = _CACHE.get(version_id)
    if hit is not None:
        _CACHE.move_to_end(version_id)
        return hit[1]
    version = MachineVersion.objects.only("id", "checksum", "definition").get(pk=version_id)
    return compiled(version)


def _remember(version_id, digest, result):
    _CACHE[version_id] = (digest, result)
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)


def forget_version(version_id):
    """Drop a version id from the cache (called when a version row is inserted)."""
    _CACHE.pop(version_id, None)


def clear_cache():
    _CACHE.clear()


def compile_many(versions):
    """Compile several versions, loading every uncached, deferred definition in one query."""
    missing = {}
    for version in versions:
        cached = _CACHE.get(version.pk)
        if ((cached is None or cached[0] != version.checksum)
                and "definition" in version.get_deferred_fields()):
            missing.setdefault(version.pk, version)
    if missing:
        rows = MachineVersion.objects.filter(pk__in=missing).values_list("pk", "definition")
        for pk, definition in rows:
            missing[pk].definition = definition
    return [compiled(version) for version in (*missing.values(), *versions)][len(missing):]
