"""The only code that publishes machines, starts instances and moves them.

A step runs in one transaction with the instance row locked: guards, on_leave,
on_enter, the instance update, the history insert and the task-state write either
all happen or none do. Published versions are immutable, so their compiled form is
cached by id (flowr.compiled) and a step never re-reads the graph.
"""
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from . import _sql, config, signals
from .builder import MachineGraph
from .exceptions import (
    AlreadyMoved, ChoiceRequired, GraphError, HookFailed, InstanceFinished, InvalidStep,
    MoveError, NotPublished, RuleNotRegistered, StepError, StepPermissionDenied, StepRefused,
)
from .models import HistoryEntry, Instance, Machine, MachineVersion
from .signals import send_on_commit
from .taskstate import atomic_with_undo, flush, forget, share_loaded
# Re-exported: the engine is where programs and the admin find these.
from .compiled import (  # noqa: F401
    DEFINITION_FORMAT, CompiledVersion, checksum, clear_cache, compile_many, compiled,
    compiled_by_id, definition_of, forget_version,
)
from .taskstate import save_task_state, task_state_of  # noqa: F401

_STEP_FIELDS = ("state_key", "state_name", "step_count", "last_activity", "status")


# -- versions -------------------------------------------------------------------

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
    with atomic_with_undo() as undo:
        instance = Instance(machine=machine, version=version, state_key=root,
                            state_name=graph.names[root], started_by=_user(user),
                            started_at=now, last_activity=now)
        instance.status = Instance.ACTIVE if graph.children[root] else Instance.FINISHED
        _run_hooks(instance, graph, leave=None, enter=root)
        instance.save(force_insert=True)
        entry = HistoryEntry.objects.create(
            instance=instance, seq=0, kind=HistoryEntry.START, to_key=root,
            to_name=graph.names[root], version=version, user=_user(user), at=now)
        undo.append(flush(instance))
        send_on_commit(signals.instance_started, instance, entry, _user(user))
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
    with atomic_with_undo() as undo:
        locked = _lock(instance.pk)
        share_loaded(instance, locked, unchanged_only=True)
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
        entry = _sql.update_then_insert(locked, _STEP_FIELDS, HistoryEntry(
            instance=locked, seq=locked.step_count, from_key=source,
            from_name=graph.names[source], to_key=target, to_name=graph.names[target],
            version_id=locked.version_id, user=_user(user), at=now, note=note or "",
            data=data or {}))
        undo.append(flush(locked, touch=True))
        send_on_commit(signals.instance_stepped, instance, entry, _user(user))
    for field in _STEP_FIELDS:
        setattr(instance, field, getattr(locked, field))
    share_loaded(locked, instance)
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
        forget(instance)
        raise
    except Exception as exc:
        forget(instance)
        hook = "on_enter" if source_rule is None else "on_leave/on_enter"
        raise HookFailed(f"The {hook} hook failed while stepping to '{there}': "
                         f"{type(exc).__name__}: {exc}. Nothing was changed.") from exc


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
        send_on_commit(signals.instance_moved, instance, entry, _user(user))
    instance.refresh_from_db()
    return entry
