"""Machines as JSON documents: export, reading a file, and bulk writes.

A document (format 1) is one machine:

    {"uuid": "…", "name": "…", "description": "…", "rule_set": "orders", "format": 1,
     "graph": {"root": "draft",
               "states": [{"key": "draft", "name": "Draft", "rule": "orders.Draft",
                           "settings": {}, "options": {"groups": ["Authors"]}}, …],
               "transitions": [["draft", "submitted"], …]}}

A file is a JSON list of documents. Rules are looked up only through the registry
by key; nothing named in a document is ever imported. django-import-export's
resource (flowr.resources) and the management commands are thin shells around
`parse`, `validate_document` (flowr.documents) and `apply_document`. A state's "options" (flowr.options:
candidate groups, assign on entry, timing) are present only when set; groups and users
are named, and must exist on the importing site.
"""
import json
import re
import uuid as _uuid

from django.db import transaction

from . import config
from ._values import value_problem
from . import options as _options
from .builder import clean_settings, with_graph
from .compiled import state_definition
from .documents import (  # noqa: F401 - the format's names, re-exported
    COLUMNS, FORMAT, MAX_DEPTH, DocumentError, _kind, label, uuid_of, validate_document,
)
from .models import Machine, RuleSetRecord, State, Transition

# -- export -----------------------------------------------------------------------

def document_of(machine):
    """The format-1 document of a machine (uses prefetched states/transitions if any)."""
    states = list(machine.states.all())
    keys = {s.id: s.key for s in states}
    return {
        "uuid": str(machine.uuid),
        "name": machine.name,
        "description": machine.description,
        "rule_set": machine.rule_set.key,
        "format": FORMAT,
        "graph": {
            "root": next((s.key for s in states if s.is_root), None),
            "states": [state_definition(s) for s in states],
            "transitions": [[keys[t.parent_id], keys[t.child_id]]
                            for t in machine.transitions.all()],
        },
    }


def export_queryset(queryset):
    """The queryset with everything document_of needs in three queries."""
    return queryset.select_related("rule_set").prefetch_related("states", "transitions")


_STRING = r'"(?:[^"\\]|\\.)*"'
_PAIR = re.compile(rf"\[\n\s*({_STRING}),\n\s*({_STRING})\n\s*\]")


def dumps(documents):
    """JSON text of a list of documents, stable and diff-friendly for version control."""
    text = json.dumps(list(documents), indent=2, ensure_ascii=False)
    # One transition per line. Literal newlines only occur between JSON tokens, never
    # inside strings, so this touches structure only.
    return _PAIR.sub(r"[\1, \2]", text) + "\n"


# -- reading a file ----------------------------------------------------------------

def size_text(size):
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size} bytes"


def size_error(size, limit=None):
    """The message refusing a file of `size` bytes, or None when it is small enough."""
    limit = config.get("FLOWR_IMPORT_MAX_BYTES") if limit is None else limit
    if size <= limit:
        return None
    return (f"The file is {size_text(size)}; imports are limited to {size_text(limit)} "
            f"(setting FLOWR_IMPORT_MAX_BYTES). Split it into smaller files.")


def _reject_constant(name):
    raise ValueError(f"{name} is not a valid JSON number")


def _decode(data, max_bytes):
    if isinstance(data, str):
        size = len(data) if len(data) > max_bytes else len(data.encode("utf-8", "replace"))
    else:
        size = len(data)
    problem = size_error(size, max_bytes)
    if problem:
        raise DocumentError(problem)
    if isinstance(data, str):
        return data.lstrip("\ufeff")
    try:
        return bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"The file is not UTF-8 text (byte {exc.start + 1} is invalid); "
                            f"export it again from Flowr or save it as UTF-8.")


_PROBLEMS = {
    "deep": f"The file nests values more than {MAX_DEPTH} levels deep; a Flowr machine file "
            f"never needs that many.",
    "nul": "The file contains a NUL character (\\u0000) in a text; remove it.",
    "surrogate": "The file contains an invalid character (a lone UTF-16 surrogate such as "
                 "\\ud800) in a text; remove it.",
}


def _check_values(value):
    """Refuse deep nesting and text a database cannot store."""
    problem = value_problem(value, MAX_DEPTH)
    if problem:
        raise DocumentError(_PROBLEMS[problem])

def parse(data, max_bytes=None):
    """The list of documents in a file's bytes or text; raises DocumentError."""
    max_bytes = config.get("FLOWR_IMPORT_MAX_BYTES") if max_bytes is None else max_bytes
    text = _decode(data, max_bytes)
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise DocumentError("The file nests values too deeply to be read; a Flowr machine "
                            "file never needs that many levels.")
    except json.JSONDecodeError as exc:
        raise DocumentError(f"The file is not valid JSON (line {exc.lineno}, column "
                            f"{exc.colno}: {exc.msg}).")
    except ValueError as exc:
        raise DocumentError(f"The file is not valid JSON: {exc}.")
    _check_values(value)
    if not isinstance(value, list):
        raise DocumentError(f"The file must hold a JSON list of machines (as exported by "
                            f"Flowr); it holds {_kind(value)}.")
    if not value:
        raise DocumentError("The file holds an empty list: there is no machine to import.")
    return value


# -- writing -----------------------------------------------------------------------

def apply_document(doc, *, validate=True):
    """Create or update the machine of a document (by uuid) in a constant number of queries.

    State keys stay stable: states whose key is kept are updated in place, the others
    are deleted or created; transitions are rebuilt. Inside a reversion revision the
    machine (following its states and transitions) is added to it.
    """
    import reversion

    if validate:
        errors = validate_document(doc)
        if errors:
            raise DocumentError(" ".join(errors), errors=errors)
    with transaction.atomic():
        record = RuleSetRecord.objects.get(key=doc["rule_set"])
        machine = Machine.objects.select_for_update().filter(uuid=uuid_of(doc)).first()
        created = machine is None
        values = {"name": doc["name"].strip(), "description": doc.get("description", ""),
                  "rule_set": record}
        if created:
            machine = Machine.objects.create(uuid=uuid_of(doc), **values)
        else:
            for field, value in values.items():
                setattr(machine, field, value)
            machine.save(update_fields=[*values, "updated_at"])
        ids = _write_states(machine, doc["graph"], created)
        Transition.objects.bulk_create(
            [Transition(machine=machine, parent_id=ids[p], child_id=ids[c])
             for p, c in doc["graph"]["transitions"]])
        if reversion.is_active():
            reversion.add_to_revision(with_graph(machine.pk))
    return machine, created


def _normalised_options(item, graph, choices):
    """A validated state's options in their normalised form (as the builder stores them)."""
    if not item.get("options"):
        return {}
    children = [(c, c) for p, c in graph["transitions"] if p == item["key"]]
    return _options.clean_options(item["options"], children, choices)


def _write_states(machine, graph, created):
    """Bring the machine's states in line with the graph; returns {key: state id}."""
    existing = {} if created else {s.key: s for s in machine.states.all()}
    wanted = {s["key"]: s for s in graph["states"]}
    if not created:
        Transition.objects.filter(machine=machine).delete()  # rebuilt by the caller
        doomed = [s.pk for key, s in existing.items() if key not in wanted]
        if doomed:
            State.objects.filter(pk__in=doomed).delete()
    kept, new, renamed = [], [], []
    choices = (_options.Choices.load() if any(s.get("options") for s in graph["states"])
               else None)
    for key, item in wanted.items():
        values = {"name": item["name"].strip(), "rule_key": item["rule"],
                  "settings": clean_settings(item["rule"], item.get("settings") or {}),
                  "options": _normalised_options(item, graph, choices),
                  "is_root": key == graph["root"]}
        state = existing.get(key)
        if state is None:
            new.append(State(machine=machine, key=key, **values))
            continue
        if state.name != values["name"]:
            renamed.append(state)
        for field, value in values.items():
            setattr(state, field, value)
        kept.append(state)
    if renamed:
        # Names are unique per machine: park renamed states on unique temporary names
        # first, so that two states swapping names never collide mid-update.
        token = _uuid.uuid4().hex
        State.objects.bulk_update(
            [State(pk=s.pk, name=f"{token}-{s.pk}") for s in renamed], ["name"])
    State.objects.bulk_update(kept, ["name", "rule_key", "settings", "options", "is_root"])
    State.objects.bulk_create(new)
    return dict(machine.states.values_list("key", "id"))
