"""The only code that publishes machines, starts instances and moves them.

A step runs in one transaction with the instance row locked: guards, on_leave,
on_enter, the instance update, the history insert and the task-state write either
all happen or none do. Published versions are immutable, so their compiled form is
cached by (id, checksum) and a step never re-reads the graph.
"""
import hashlib
import json
import logging
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from . import _sql, config
from .builder import MachineGraph
from .exceptions import (
    AlreadyMoved, ChoiceRequired, GraphError, HookFailed, InstanceFinished, InvalidStep,
    MoveError, NotPublished, RuleNotRegistered, StepError, StepPermissionDenied, StepRefused,
)
from .models import HistoryEntry, Instance, Machine, MachineVersion
from .rules import get_rule_set

DEFINITION_FORMAT = 1
_STEP_FIELDS = ("state_key", "state_name", "step_count", "last_activity", "status")
logger = logging.getLogger(__name__)


# -- versions -------------------------------------------------------------------

def definition_of(graph):
    """The JSON definition of a loaded MachineGraph (what a version freezes)."""
    machine = graph.machine
    return {
        "format": DEFINITION_FORMAT,
        "rule_set": machine.rule_set.key,
        "root": graph.root.key,
        "states": [
            {"key": s.key, "name": s.name, "rule": s.rule_key, "settings": s.settings}
            for s in graph.states
        ],
        "transitions": [[p, c] for p, c in graph.edges],
    }


def checksum(definition):
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def publish(machine, user=None):
    """Freeze the machine's graph into a new numbered version (or return the unchanged one).

    The returned version has `is_new` set to tell the two cases apart.
    """
    with transaction.atomic():
        Machine.objects.select_for_update().filter(pk=machine.pk).exists()
        graph = MachineGraph.load(machine)
        errors = graph.errors()
        if errors:
            raise GraphError(f"Machine '{machine}' cannot be published: " + " ".join(errors),
                             errors=errors)
        definition = definition_of(graph)
        digest = checksum(definition)
        latest = machine.versions.order_by("-number").first()
        if latest is not None and latest.checksum == digest:
            latest.is_new = False
            return latest
        version = MachineVersion.objects.create(
            machine=machine, number=(latest.number + 1) if latest else 1,
            definition=definition, checksum=digest,
            published_by=user if getattr(user, "pk", None) else None,
        )
    version.is_new = True
    return version


@dataclass(frozen=True)
class StepOption:
    """One next state an instance may step to."""

    key: str
    name: str
    rule_key: str
    allowed: bool = True
    reason: str = ""


class CompiledVersion:
    """A version's definition indexed for stepping; immutable and cached."""

    def __init__(self, version_id, definition):
        self.version_id = version_id
        self.rule_set_key = definition["rule_set"]
        self.root = definition["root"]
        self.names = {s["key"]: s["name"] for s in definition["states"]}
        self.rules = {s["key"]: s["rule"] for s in definition["states"]}
        self.settings = {s["key"]: s.get("settings") or {} for s in definition["states"]}
        self.children = {key: [] for key in self.names}
        for parent, child in definition["transitions"]:
            self.children[parent].append(child)
        self.by_name = {name: key for key, name in self.names.items()}
        self.edges = [tuple(t) for t in definition["transitions"]]

    def resolve(self, ref):
        """A state key from a key or a name, or None."""
        if ref in self.names:
            return ref
        return self.by_name.get(ref)

    def rule(self, key):
        """The rule class of a state, or raise RuleNotRegistered."""
        return get_rule_set(self.rule_set_key).get(self.rules[key])


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


# -- task state -------------------------------------------------------------------

def task_state_of(instance):
    """The instance's task state dict, loaded once per object from the state store."""
    from .statestore import StateNotFound, StoreUnavailable, get_store

    if "_flowr_task_state" not in instance.__dict__:
        try:
            state = get_store().get_state(str(instance.pk))
        except StateNotFound:
            state = {}
        except StoreUnavailable as exc:
            raise _unavailable(instance, "read", exc) from exc
        instance.__dict__["_flowr_task_state"] = state
        instance.__dict__["_flowr_task_state_saved"] = _dump(state)
    return instance.__dict__["_flowr_task_state"]


def save_task_state(instance, state=None):
    """Write the task state (or `state`, replacing it) to the store; touches last_activity."""
    from .statestore import get_store

    if state is not None:
        instance.__dict__["_flowr_task_state"] = state
    state = task_state_of(instance)
    get_store().put_state(str(instance.pk), state)
    instance.__dict__["_flowr_task_state_saved"] = _dump(state)
    instance.last_activity = timezone.now()
    Instance.objects.filter(pk=instance.pk).update(last_activity=instance.last_activity)


def _unavailable(instance, verb, exc):
    """A TaskStateUnavailable (a StepError) naming the instance, from a store error."""
    from .statestore import TaskStateUnavailable

    if isinstance(exc, TaskStateUnavailable):
        return exc
    return TaskStateUnavailable(
        f"The task state of instance {instance.pk} could not be {verb}: {exc} Nothing was "
        f"changed: the instance keeps its position, history and task state.",
        instance=instance)


def _dump(state):
    return json.dumps(state, sort_keys=True, default=str)


def _task_state_changed(instance):
    saved = instance.__dict__.get("_flowr_task_state_saved")
    return saved is not None and _dump(instance.__dict__["_flowr_task_state"]) != saved


# -- instances --------------------------------------------------------------------

def effective_status(instance):
    """The stored status, or 'expired' for an active instance idle past the timeout."""
    timeout = config.task_idle_timeout()
    if (instance.status == Instance.ACTIVE and timeout
            and instance.last_activity < timezone.now() - timedelta(seconds=timeout)):
        return Instance.EXPIRED
    return instance.status


def start(machine, user=None, version=None):
    """Start an instance on `version` (default: the latest published); runs root on_enter."""
    if machine.archived:
        raise NotPublished(f"Machine '{machine}' is archived; it starts no instances.")
    version = version or machine.versions.order_by("-number").defer("definition").first()
    if version is None:
        raise NotPublished(f"Machine '{machine}' has no published version; publish it first.",
                           machine=machine)
    graph = compiled(version)
    root = graph.root
    now = timezone.now()
    with _atomic_with_undo() as undo:
        instance = Instance(machine=machine, version=version, state_key=root,
                            state_name=graph.names[root], started_by=_user(user),
                            started_at=now, last_activity=now)
        instance.status = Instance.ACTIVE if graph.children[root] else Instance.FINISHED
        _run_hooks(instance, graph, leave=None, enter=root)
        instance.save(force_insert=True)
        HistoryEntry.objects.create(instance=instance, seq=0, kind=HistoryEntry.START,
                                    to_key=root, to_name=graph.names[root], version=version,
                                    user=_user(user), at=now)
        undo.append(_flush_task_state(instance))
    return instance


def _user(user):
    return user if getattr(user, "pk", None) else None


def _lock(pk):
    """Read the instance row and lock it until the transaction ends."""
    return _sql.lock(Instance, pk)


def allowed_steps(instance, user=None):
    """Next states of the instance (children of its current state), with permission marks."""
    if effective_status(instance) != Instance.ACTIVE:
        return []
    graph = compiled(instance.version)
    options = []
    for key in graph.children.get(instance.state_key, ()):
        reason = _permission_problem(graph, key, user)
        options.append(StepOption(key, graph.names[key], graph.rules[key], not reason,
                                  reason or ""))
    return options


def _permission_problem(graph, key, user):
    try:
        rule = graph.rule(key)
    except RuleNotRegistered as exc:
        return str(exc)
    if rule.permission and user is not None and not user.has_perm(rule.permission):
        return (f"Stepping into '{graph.names[key]}' needs the permission "
                f"'{rule.permission}'.")
    return None


def _choose(instance, graph, to):
    children = graph.children.get(instance.state_key, [])
    here = graph.names[instance.state_key]
    if not children:
        raise InstanceFinished(f"Instance {instance.pk} is at '{here}', which has no next step.")
    if to is None:
        if len(children) > 1:
            names = ", ".join(graph.names[c] for c in children)
            raise ChoiceRequired(
                f"Instance {instance.pk} is at '{here}', which has {len(children)} next "
                f"steps; choose one of: {names}.", choices=children)
        return children[0]
    target = graph.resolve(getattr(to, "key", to))
    if target not in children:
        names = ", ".join(graph.names[c] for c in children)
        raise InvalidStep(f"Instance {instance.pk} cannot step from '{here}' to '{to}'; "
                          f"the next steps are: {names}.", choices=children)
    return target


def step(instance, to=None, user=None, note="", data=None, expected_state=None):
    """Step the instance to `to` (a state key or name; optional with one choice).

    `expected_state` (a state key) guards against double submission: if the instance
    has left that state meanwhile, AlreadyMoved is raised and nothing happens.
    Returns the HistoryEntry written.
    """
    with _atomic_with_undo() as undo:
        locked = _lock(instance.pk)
        if "_flowr_task_state" in instance.__dict__ and not _task_state_changed(instance):
            locked.__dict__.update({k: instance.__dict__[k] for k in
                                    ("_flowr_task_state", "_flowr_task_state_saved")})
        graph = compiled_by_id(locked.version_id)
        if expected_state is not None and locked.state_key != expected_state:
            raise AlreadyMoved(
                f"Instance {locked.pk} has already moved on: it is now at "
                f"'{locked.state_name}'. Nothing was changed.", state=locked.state_key)
        status = effective_status(locked)
        if status != Instance.ACTIVE:
            raise InstanceFinished(f"Instance {locked.pk} is {status}; it cannot step.",
                                   status=status)
        target = _choose(locked, graph, to)
        problem = _permission_problem(graph, target, user)
        if problem:
            raise StepPermissionDenied(problem, target=target)
        source = locked.state_key
        _run_hooks(locked, graph, leave=source, enter=target)
        now = timezone.now()
        locked.state_key, locked.state_name = target, graph.names[target]
        locked.step_count += 1
        locked.last_activity = now
        if not graph.children[target]:
            locked.status = Instance.FINISHED
        _sql.update(locked, _STEP_FIELDS)
        entry = _sql.insert(HistoryEntry(
            instance=locked, seq=locked.step_count, from_key=source,
            from_name=graph.names[source], to_key=target, to_name=graph.names[target],
            version_id=locked.version_id, user=_user(user), at=now, note=note or "",
            data=data or {}))
        undo.append(_flush_task_state(locked, touch=True))
    for field in _STEP_FIELDS:
        setattr(instance, field, getattr(locked, field))
    for attr in ("_flowr_task_state", "_flowr_task_state_saved"):
        if attr in locked.__dict__:
            instance.__dict__[attr] = locked.__dict__[attr]
    return entry


def _run_hooks(instance, graph, leave, enter):
    """Guards then hooks; any failure raises a StepError and the transaction rolls back."""
    try:
        target_rule = graph.rule(enter)(graph.settings[enter], enter)
        source_rule = graph.rule(leave)(graph.settings[leave], leave) if leave else None
    except RuleNotRegistered as exc:
        raise StepError(f"Instance {instance.pk} cannot step: {exc}") from exc
    here = graph.names[leave] if leave else None
    there = graph.names[enter]
    reason = (source_rule.guard_leave(instance, there) if source_rule else None) or \
        target_rule.guard_enter(instance, here)
    if reason:
        raise StepRefused(f"Step to '{there}' refused: {reason}", reason=reason)
    try:
        if source_rule:
            source_rule.on_leave(instance)
        target_rule.on_enter(instance)
    except StepError:
        _forget_task_state(instance)
        raise
    except Exception as exc:
        _forget_task_state(instance)
        hook = "on_enter" if source_rule is None else "on_leave/on_enter"
        raise HookFailed(f"The {hook} hook failed while stepping to '{there}': "
                         f"{type(exc).__name__}: {exc}. Nothing was changed.") from exc


def _forget_task_state(instance):
    instance.__dict__.pop("_flowr_task_state", None)
    instance.__dict__.pop("_flowr_task_state_saved", None)


def _flush_task_state(instance, touch=False):
    """Write task state changed by hooks, last inside the step's transaction.

    Unchanged state is only touched (`touch`): a step is interaction, so it restarts
    the state's idle timeout just as it refreshes the instance's last_activity.

    For a transactional store (Django models) the write rolls back with the step.
    For Redis the write happens just before COMMIT; the returned undo callable puts
    the previous value back if COMMIT then fails.
    """
    from .statestore import StoreUnavailable, get_store

    store = get_store()
    task_id = str(instance.pk)
    if not _task_state_changed(instance):
        if touch:
            _touch(store, task_id)
        return None
    previous = json.loads(instance.__dict__["_flowr_task_state_saved"])
    try:
        store.put_state(task_id, instance.__dict__["_flowr_task_state"])
    except StoreUnavailable as exc:
        raise _unavailable(instance, "saved", exc) from exc
    instance.__dict__["_flowr_task_state_saved"] = _dump(instance.__dict__["_flowr_task_state"])
    if store.transactional:
        return None

    def undo():
        try:
            store.put_state(task_id, previous) if previous else store.delete_state(task_id)
        except Exception:  # noqa: BLE001 - the store is down: nothing more to do
            pass
    return undo


def _touch(store, task_id):
    from .statestore import StoreUnavailable

    try:
        store.touch_state(task_id)
    except StoreUnavailable as exc:
        # The step did not need the task state; it should not fail because of it.
        logger.warning("Could not refresh the idle timeout of task %s: %s", task_id, exc)


@contextmanager
def _atomic_with_undo():
    """transaction.atomic() that runs registered undo callables if the block fails."""
    undo = []
    try:
        with transaction.atomic():
            yield undo
    except BaseException:
        for callback in undo:
            if callback:
                callback()
        raise


# -- moving between versions ---------------------------------------------------------

def move_problem(instance, version):
    """Why `instance` cannot move to `version` (a message), or None."""
    if version.machine_id != instance.machine_id:
        return f"Version {version} belongs to another machine."
    if version.pk == instance.version_id:
        return f"Instance {instance.pk} already runs on version {version.number}."
    if effective_status(instance) != Instance.ACTIVE:
        return f"Instance {instance.pk} is {effective_status(instance)}."
    target = compiled(version)
    if instance.state_key not in target.names:
        return (f"Its current state '{instance.state_name}' does not exist in version "
                f"{version.number}.")
    return None


def move(instance, version, user=None, note=""):
    """Move an instance to another version of its machine, keeping its current state."""
    with transaction.atomic():
        locked = _lock(instance.pk)
        problem = move_problem(locked, version)
        if problem:
            raise MoveError(f"Instance {locked.pk} cannot move: {problem}", instance=locked)
        target = compiled(version)
        old_version = locked.version
        locked.version = version
        locked.state_name = target.names[locked.state_key]
        locked.step_count += 1
        locked.last_activity = timezone.now()
        if not target.children[locked.state_key]:
            locked.status = Instance.FINISHED
        locked.save(update_fields=["version", "state_name", "step_count", "last_activity",
                                   "status"])
        entry = HistoryEntry.objects.create(
            instance=locked, seq=locked.step_count, kind=HistoryEntry.MOVE,
            from_key=locked.state_key, from_name=compiled(old_version).names[locked.state_key],
            to_key=locked.state_key, to_name=locked.state_name, version=version,
            user=_user(user), at=locked.last_activity,
            note=note or f"Moved from version {old_version.number} to {version.number}.")
    instance.refresh_from_db()
    return entry
