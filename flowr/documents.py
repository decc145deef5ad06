"""The machine document (format 1): its fields, and its complete validation.

Every check a document must pass before flowr.interchange writes anything: structure,
types and limits, then everything the registered rules say (rules, children, counts,
reachability, root, settings forms, state options), with messages naming the machine
and the state. Rules are looked up only through the registry by key.
"""
import json
import re
import uuid as _uuid

from . import config
from . import graph as _graph
from . import options as _options
from .builder import clean_settings
from .exceptions import FlowrError, RuleNotRegistered
from .models import Machine, RuleSetRecord
from .rules import get_rule_set

FORMAT = 1
COLUMNS = ("uuid", "name", "description", "rule_set", "format", "graph")
REQUIRED = ("uuid", "name", "rule_set", "format", "graph")
STATE_FIELDS = ("key", "name", "rule", "settings", "options")
GRAPH_FIELDS = ("root", "states", "transitions")
MAX_DEPTH = 32  # a document needs about 8 levels; settings may nest a little more
MAX_ERRORS = 25  # per document; the rest are counted, not listed
NAME_MAX = 200
KEY_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


class DocumentError(FlowrError):
    """A file or document cannot be imported; `errors` lists every reason."""

    def __init__(self, message, errors=None, **context):
        super().__init__(message, errors=errors or [message], **context)


def _kind(value):
    """How a JSON value is called in messages: 'an object', 'a number', …"""
    if isinstance(value, bool):
        return "true/false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# -- validation --------------------------------------------------------------------

def uuid_of(doc):
    """The document's uuid as a UUID (the document must be valid)."""
    return _uuid.UUID(doc["uuid"])


def label(doc, number=None):
    """How a document is named in messages: its machine name, else its row number."""
    name = doc.get("name") if isinstance(doc, dict) else None
    if isinstance(name, str) and name.strip():
        return f"Machine '{name.strip()[:NAME_MAX]}'"
    return f"The machine in row {number}" if number else "The unnamed machine"


def _text_error(where, value, required=True, limit=NAME_MAX):
    if not isinstance(value, str):
        return f"{where} must be a text, not {_kind(value)}."
    if required and not value.strip():
        return f"{where} must not be empty."
    if limit and len(value) > limit:
        return f"{where} is {len(value)} characters long; at most {limit} are allowed."
    return None


def _fields_errors(where, obj, allowed, required):
    errors = [f"{where} has no '{name}' field." for name in required if name not in obj]
    unknown = sorted(str(k) for k in obj if k not in allowed)
    if unknown:
        errors.append(f"{where} has unknown field(s) {', '.join(map(repr, unknown))}; "
                      f"expected {', '.join(allowed)}.")
    return errors


def _uuid_errors(value):
    if not isinstance(value, str):
        return [f"Its uuid must be a text, not {_kind(value)}."]
    try:
        _uuid.UUID(value)
    except ValueError:
        return [f"Its uuid {value[:60]!r} is not a valid UUID."]
    return []


def _top_errors(doc):
    """Missing/unknown fields and wrong types of the machine itself."""
    errors = _fields_errors("It", doc, COLUMNS, REQUIRED)
    if "uuid" in doc:
        errors.extend(_uuid_errors(doc["uuid"]))
    for field, required, limit in (("name", True, NAME_MAX), ("rule_set", True, 100),
                                   ("description", False, None)):
        if field in doc:
            problem = _text_error(f"Its {field.replace('_', ' ')}", doc[field], required, limit)
            errors.extend([problem] if problem else [])
    if "graph" in doc and not isinstance(doc["graph"], dict):
        errors.append(f"Its graph must be an object with root, states and transitions, "
                      f"not {_kind(doc['graph'])}.")
    return errors


def _format_error(doc):
    value = doc.get("format")
    if "format" not in doc:
        return None  # reported as a missing field
    if isinstance(value, bool) or not isinstance(value, int):
        return f"Its format must be a whole number (format version), not {_kind(value)}."
    if value != FORMAT:
        return (f"Its format version {value} is not supported; this site reads format "
                f"{FORMAT}. Export it again from a Flowr site of the same version.")
    return None


def _state_errors(index, state):
    where = f"State #{index + 1}"
    if not isinstance(state, dict):
        return [f"{where} must be an object with key, name, rule and settings, "
                f"not {_kind(state)}."]
    name = state.get("name")
    if isinstance(name, str) and name.strip():
        where = f"State #{index + 1} ('{name[:NAME_MAX]}')"
    errors = _fields_errors(where, state, STATE_FIELDS, ("key", "name", "rule"))
    key = state.get("key")
    if "key" in state and not (isinstance(key, str) and KEY_RE.fullmatch(key)):
        shown = repr(key[:70]) if isinstance(key, str) else _kind(key)
        errors.append(f"{where} has the key {shown}; a key is 1 to 64 letters, digits, "
                      f"'-' or '_'.")
    for field, limit in (("name", NAME_MAX), ("rule", 200)):
        if field in state:
            problem = _text_error(f"{where}: its {field}", state[field], True, limit)
            errors.extend([problem] if problem else [])
    for field in ("settings", "options"):
        value = state.get(field, {})
        if not isinstance(value, dict):
            errors.append(f"{where}: its {field} must be an object, not {_kind(value)}.")
    return errors


def _graph_errors(graph, max_states):
    """Structure of the graph: fields, types, limits (no rules yet)."""
    errors = _fields_errors("Its graph", graph, GRAPH_FIELDS, GRAPH_FIELDS)
    states, edges = graph.get("states", []), graph.get("transitions", [])
    if "root" in graph and not isinstance(graph["root"], str):
        errors.append(f"Its graph root must be a state key (a text), not "
                      f"{_kind(graph['root'])}.")
    if not isinstance(states, list):
        return errors + [f"Its graph states must be a list, not {_kind(states)}."]
    if len(states) > max_states:
        return errors + [f"It has {len(states)} states; imports allow at most {max_states} "
                         f"states per machine (setting FLOWR_IMPORT_MAX_STATES)."]
    if not isinstance(edges, list):
        errors.append(f"Its graph transitions must be a list, not {_kind(edges)}.")
    else:
        for number, edge in enumerate(edges, 1):
            if not (isinstance(edge, list) and len(edge) == 2
                    and all(isinstance(k, str) for k in edge)):
                errors.append(f"Transition #{number} must be a pair of state keys "
                              f"[parent, child], not {json.dumps(edge)[:80]}.")
    for index, state in enumerate(states):
        errors.extend(_state_errors(index, state))
    return errors


def _duplicates(states, field, what):
    seen, errors = set(), []
    for state in states:
        value = state[field].strip() if field == "name" else state[field]
        if value in seen:
            errors.append(f"Two states have the {what} {value!r}; each state needs its own.")
        seen.add(value)
    return errors


def _rule_set_errors(doc):
    key = doc["rule_set"]
    try:
        rule_set = get_rule_set(key)
    except RuleNotRegistered:
        return None, [f"Its rule set '{key}' is not registered on this site (registered: "
                      f"{', '.join(sorted(r.key for r in _registered())) or 'none'})."]
    if not RuleSetRecord.objects.filter(key=key).exists():
        return None, [f"Its rule set '{key}' is registered in code but not synced to the "
                      f"database; run `manage.py syncrulesets`."]
    return rule_set, []


def _registered():
    from .rules import get_rule_sets

    return get_rule_sets()


def _settings_errors(rule_set, states):
    errors = []
    known = set(rule_set.rule_keys())
    for state in states:
        if state["rule"] not in known:
            continue  # reported by the graph check
        try:
            clean_settings(state["rule"], state.get("settings") or {})
        except FlowrError as exc:
            errors.append(f"State '{state['name']}': {exc}")
        except Exception as exc:  # a rule's own form failed on odd input: report it
            errors.append(f"State '{state['name']}': settings could not be checked by "
                          f"rule {state['rule']}'s form ({type(exc).__name__}: {exc}).")
    return errors


def _options_errors(states, edges):
    """Every state's options checked by flowr.options (groups/users must exist here)."""
    names = {s["key"]: s["name"] for s in states}
    children = {}
    for parent, child in edges:
        children.setdefault(parent, []).append((child, names.get(child, child)))
    choices, errors = None, []
    for state in states:
        if not state.get("options"):
            continue
        choices = choices or _options.Choices.load()
        try:
            _options.clean_options(state["options"], children.get(state["key"], ()), choices,
                                   state_name=state["name"])
        except FlowrError as exc:
            errors.append(str(exc))
    return errors


def _rules_errors(doc, rule_set):
    """Everything the registered rules say about a structurally sound graph."""
    graph = doc["graph"]
    states, edges = graph["states"], [tuple(e) for e in graph["transitions"]]
    errors = _duplicates(states, "key", "key") + _duplicates(states, "name", "name")
    if errors:
        return errors
    rules = rule_set.graph_rules()
    rule_map = {s["key"]: s["rule"] for s in states}
    capacity = sum(rules[r][1] if r in rules else 0 for r in rule_map.values())
    if len(edges) > capacity + MAX_ERRORS:  # bounds the work of the detailed check below
        return [f"It has {len(edges)} transitions, but the rules of its states allow at "
                f"most {capacity}."]
    names = {s["key"]: s["name"] for s in states}
    errors = _graph.validate(rule_map, edges, rules, graph["root"], rule_set.root_key, names)
    return errors + _settings_errors(rule_set, states) + _options_errors(states, edges)


def _name_taken_error(doc):
    other = (Machine.objects.filter(name=doc["name"].strip()).exclude(uuid=uuid_of(doc))
             .values_list("uuid", flat=True).first())
    if other is None:
        return []
    return [f"Another machine named '{doc['name']}' already exists on this site (uuid "
            f"{other}); rename one of them, or import with that machine's uuid to update it."]


def validate_document(doc, max_states=None, number=None):
    """Every reason the document cannot be imported, as messages naming the machine."""
    max_states = config.get("FLOWR_IMPORT_MAX_STATES") if max_states is None else max_states
    where = label(doc, number)
    if not isinstance(doc, dict):
        return [f"{where} is {_kind(doc)}, not a machine (an object with "
                f"{', '.join(COLUMNS)})."]
    format_error = _format_error(doc)
    if format_error:  # later formats may differ in every other field
        return [f"{where}: {format_error}"]
    errors = _top_errors(doc)
    if not errors:
        errors = _graph_errors(doc["graph"], max_states)
    if not errors:
        rule_set, errors = _rule_set_errors(doc)
        if rule_set is not None:
            errors = _rules_errors(doc, rule_set) + _name_taken_error(doc)
    if len(errors) > MAX_ERRORS:
        errors = errors[:MAX_ERRORS] + [f"… and {len(errors) - MAX_ERRORS} more problems."]
    return [f"{where}: {error}" for error in errors]
