"""The only code that publishes machines, starts instances and moves them.

A change runs in one transaction with the instance row locked (`lock`): checks, guards,
on_leave, on_enter, the task-state write (flowr.taskstate), the instance update and the
history insert either all happen or none do. Every change of state, version or status
bumps the instance's position number (`step_count`), which stale forms and timers
carry (`expected_position`). Published versions are immutable, so their compiled form
is cached by id (flowr.compiled) and a step never re-reads the graph.

Flowr's own modules that change instances in other ways (flowr.controls, flowr.assignment,
flowr.timers, flowr.migration_runner) use the same three pieces: `lock`, `enter` and `record`.
"""
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from . import _sql, access, config, signals, taskstate, timers
from ._values import clean_label
from .builder import MachineGraph
from .exceptions import (
    AlreadyMoved, ChoiceRequired, FlowrError, GraphError, HookFailed, InstanceFinished,
    InstanceNotActive, InvalidStep, MoveError, NotPublished, RuleNotRegistered, StepError,
    StepPermissionDenied, StepRefused,
)
from .models import HistoryEntry, Instance, Machine, MachineVersion
from .signals import send_on_commit
# Re-exported: the engine is where programs and the admin find these.
from .compiled import (  # noqa: F401
    DEFINITION_FORMAT, CompiledVersion, checksum, clear_cache, compile_many, compiled,
    compiled_by_id, definition_of, forget_version,
)
from .replay import ReplayError, position_of, replay  # noqa: F401
from .taskstate import task_state_of  # noqa: F401

#: Row fields a change of position writes (plus the task-state fields when it changed).
POSITION_FIELDS = ("version", "state_key", "state_name", "status", "outcome", "step_count",
                   "last_seq", "last_activity", "state_entered_at", "assignee", "due_at")
LABEL_MAX = 200


class BusinessKeyTaken(FlowrError):
    """Another instance of the machine already has this business key."""


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


# -- status -------------------------------------------------------------------------

@dataclass(frozen=True)
class StepOption:
    """One next state an instance may step to."""

    key: str
    name: str
    rule_key: str
    allowed: bool = True
    reason: str = ""


def effective_status(instance):
    """The stored status, or 'expired' for an active or suspended instance idle too long."""
    timeout = config.task_idle_timeout()
    if (instance.status in (Instance.ACTIVE, Instance.SUSPENDED) and timeout
            and instance.last_activity < timezone.now() - timedelta(seconds=timeout)):
        return Instance.EXPIRED
    return instance.status


_STATUS_TEXT = {
    Instance.SUSPENDED: "is suspended; resume it first",
    Instance.CANCELLED: "was cancelled",
    Instance.FINISHED: "is finished",
    Instance.EXPIRED: "has expired (idle for longer than FLOWS_TASK_IDLE_TIMEOUT)",
}


def check_status(instance, verb="step", allowed=(Instance.ACTIVE,)):
    """Raise InstanceNotActive (InstanceFinished when finished) unless the status allows it."""
    status = effective_status(instance)
    if status in allowed:
        return status
    error = InstanceFinished if status == Instance.FINISHED else InstanceNotActive
    raise error(f"Instance {instance.label} {_STATUS_TEXT.get(status, f'is {status}')}; it "
                f"cannot {verb}. Nothing was changed.", status=status)


def check_expected(instance, expected_state=None, expected_position=None):
    """Refuse a stale request: the instance changed since the page or timer saw it."""
    if expected_position is not None and int(expected_position) != instance.step_count:
        stale = True
    else:
        stale = expected_state is not None and instance.state_key != expected_state
    if stale:
        raise AlreadyMoved(
            f"Instance {instance.label} has already moved on: it is now at "
            f"'{instance.state_name}' ({effective_status(instance)}). Nothing was changed.",
            state=instance.state_key, position=instance.step_count)


# -- the shared pieces of every change ----------------------------------------------------

_ATTNAMES = {name: Instance._meta.get_field(name).attname for name in POSITION_FIELDS}


def lock(pk):
    """Read the instance row and lock it until the transaction ends (call inside atomic)."""
    locked = _sql.lock(Instance, pk)
    locked._flowr_read = {name: getattr(locked, attname) for name, attname in _ATTNAMES.items()}
    return locked


def _changed(locked, fields):
    """The fields among `fields` whose value differs from the row as it was read (all of
    them for an object that `lock` did not read)."""
    read = getattr(locked, "_flowr_read", None)
    if read is None:
        return tuple(fields)
    return tuple(name for name in fields if name not in read
                 or getattr(locked, _ATTNAMES[name]) != read[name])


def _user(user):
    return user if getattr(user, "pk", None) else None


def _arrive(instance, graph, key, user, now):
    """State `key`'s effects on arrival: status, outcome, assignee, due time."""
    instance.state_key, instance.state_name = key, graph.names[key]
    instance.state_entered_at = now
    final = not graph.children[key]
    instance.status = Instance.FINISHED if final else Instance.ACTIVE
    instance.outcome = graph.outcome(key) if final else ""
    instance.assignee_id = None if final else access.assignee_on_entry(instance, graph, key,
                                                                       user)
    timers.on_enter(instance, graph, key, now)


def enter(locked, graph, key, user, now):
    """Put the locked instance into state `key` of `graph` (its version): a new position."""
    locked.step_count += 1
    _arrive(locked, graph, key, user, now)


def record(locked, graph, kind, *, user, now, note="", data=None, from_key="", from_name="",
           fields=POSITION_FIELDS, touch=True):
    """Write the task state, the row's `fields` and one history entry; returns the entry.

    `touch=False` (system notes such as reminders) leaves the task state's idle timeout
    alone: they are not interaction.
    """
    extra = taskstate.stage(locked, locked.last_seq + 1, graph.search_fields, touch=touch)
    locked.last_seq += 1
    if touch:
        locked.last_activity = now
    entry = HistoryEntry(
        instance=locked, seq=locked.last_seq, kind=kind, from_key=from_key,
        from_name=from_name, to_key=locked.state_key, to_name=locked.state_name,
        version_id=locked.version_id, status=locked.status,
        task_state_version=locked.task_state_version, user=_user(user), at=now,
        note=note or "", data=data or {})
    # Only what changed is written (a step leaves version, outcome and often the assignee
    # and due time alone): fewer values to prepare and send on the hottest path.
    written = (*_changed(locked, fields), *extra)
    entry = _sql.update_then_insert(locked, written, entry)
    locked._flowr_read = None  # a second record() on this object writes all its fields
    return entry


_ALL_ATTNAMES = [f.attname for f in Instance._meta.concrete_fields]


def copy_back(locked, instance):
    """Give the caller's object the committed row values and task state."""
    for attname in _ALL_ATTNAMES:
        value = getattr(locked, attname)
        if getattr(instance, attname) != value:
            # Setting a changed foreign key id also drops the stale cached related object.
            setattr(instance, attname, value)
    taskstate.share_loaded(locked, instance)


# -- starting -------------------------------------------------------------------------

def _taken(machine, business_key):
    return BusinessKeyTaken(f"Machine '{machine}' already has an instance with the business "
                            f"key '{business_key}'; business keys are unique per machine.",
                            business_key=business_key)


def start(machine, user=None, version=None, business_key="", title="", task_state=None):
    """Start an instance on `version` (default: the latest published); runs root on_enter."""
    if machine.archived:
        raise NotPublished(f"Machine '{machine}' is archived; it starts no instances.")
    business_key = clean_label(business_key, "business key", LABEL_MAX, FlowrError)
    title = clean_label(title, "title", LABEL_MAX, FlowrError)
    version = version or machine.versions.order_by("-number").defer("definition").first()
    if version is None:
        raise NotPublished(f"Machine '{machine}' has no published version; publish it first.",
                           machine=machine)
    graph = compiled(version)
    now = timezone.now()
    try:
        with transaction.atomic():
            if business_key and machine.instances.filter(business_key=business_key).exists():
                raise _taken(machine, business_key)
            instance = _start(machine, version, graph, user, now, business_key, title,
                              task_state)
    except IntegrityError as exc:
        if business_key and "business_key" in str(exc):
            raise _taken(machine, business_key) from exc
        raise
    return instance


def _start(machine, version, graph, user, now, business_key, title, task_state):
    root = graph.root
    instance = Instance(machine=machine, version=version, business_key=business_key,
                        title=title, started_by=_user(user), started_at=now,
                        last_activity=now)
    taskstate.begin(instance, task_state)
    _arrive(instance, graph, root, user, now)
    _run_hooks(instance, graph, leave=None, enter=root)
    taskstate.stage(instance, 0, graph.search_fields, touch=False)
    instance.save(force_insert=True)
    entry = HistoryEntry.objects.create(
        instance=instance, seq=0, kind=HistoryEntry.START, to_key=root,
        to_name=graph.names[root], version=version, status=instance.status,
        task_state_version=instance.task_state_version, user=_user(user), at=now)
    send_on_commit(signals.instance_started, instance, entry, _user(user))
    return instance


# -- stepping -------------------------------------------------------------------------

def allowed_steps(instance, user=None):
    """Next states of the instance (children of its current state), with permission marks."""
    if effective_status(instance) != Instance.ACTIVE:
        return []
    graph = compiled(instance.version)
    work = access.work_problem(instance, graph, user)
    options = []
    for key in graph.children.get(instance.state_key, ()):
        reason = work or access.rule_problem(graph, key, user)
        options.append(StepOption(key, graph.names[key], graph.rules[key], not reason,
                                  reason or ""))
    return options


def _choose(instance, graph, to):
    children = graph.children.get(instance.state_key, [])
    here = graph.names[instance.state_key]
    if not children:
        raise InstanceFinished(f"Instance {instance.label} is at '{here}', which has no next "
                               f"step.")
    if to is None:
        if len(children) > 1:
            names = ", ".join(graph.names[c] for c in children)
            raise ChoiceRequired(
                f"Instance {instance.label} is at '{here}', which has {len(children)} next "
                f"steps; choose one of: {names}.", choices=children)
        return children[0]
    target = graph.resolve(getattr(to, "key", to))
    if target not in children:
        names = ", ".join(graph.names[c] for c in children)
        raise InvalidStep(f"Instance {instance.label} cannot step from '{here}' to '{to}'; "
                          f"the next steps are: {names}.", choices=children)
    return target


def step(instance, to=None, user=None, note="", data=None, expected_state=None,
         expected_position=None, kind=HistoryEntry.STEP):
    """Step the instance to `to` (a state key or name; optional with one choice).

    `expected_position` (the instance's `step_count` as the caller saw it) or
    `expected_state` (a state key) guard against double submission and stale pages:
    if the instance changed meanwhile, AlreadyMoved is raised and nothing happens.
    Returns the HistoryEntry written.
    """
    with transaction.atomic():
        locked = lock(instance.pk)
        taskstate.share_loaded(instance, locked, unchanged_only=True)
        graph = compiled_by_id(locked.version_id)
        check_expected(locked, expected_state, expected_position)
        check_status(locked)
        target = _choose(locked, graph, to)
        problem = access.step_problem(locked, graph, target, user)
        if problem:
            raise StepPermissionDenied(problem, target=target)
        source = locked.state_key
        locked.step_data = dict(data or {})  # the step form's data, for the hooks to read
        _run_hooks(locked, graph, leave=source, enter=target)
        now = timezone.now()
        enter(locked, graph, target, user, now)
        entry = record(locked, graph, kind, user=user, now=now, note=note, data=data,
                       from_key=source, from_name=graph.names[source])
        # The locked row object: the caller's gets the new values only after COMMIT.
        send_on_commit(signals.instance_stepped, locked, entry, _user(user))
    copy_back(locked, instance)
    return entry


def run_hooks(instance, graph, leave, enter, guards=True):
    """Guards (unless `guards` is False: an operator's move) then on_leave/on_enter.

    Any failure raises a StepError and the caller's transaction rolls back.
    """
    instance.__dict__.setdefault("step_data", {})  # only a step has step-form data
    try:
        target_rule = graph.rule(enter)(graph.settings[enter], enter)
        source_rule = graph.rule(leave)(graph.settings[leave], leave) if leave else None
    except RuleNotRegistered as exc:
        raise StepError(f"Instance {instance.label} cannot step: {exc}") from exc
    here = graph.names[leave] if leave else None
    there = graph.names[enter]
    reason = guards and ((source_rule.guard_leave(instance, there) if source_rule else None)
                         or target_rule.guard_enter(instance, here))
    if reason:
        raise StepRefused(f"Step to '{there}' refused: {reason}", reason=reason)
    try:
        if source_rule:
            source_rule.on_leave(instance)
        target_rule.on_enter(instance)
    except StepError:
        taskstate.forget(instance)
        raise
    except Exception as exc:
        taskstate.forget(instance)
        hook = "on_enter" if source_rule is None else "on_leave/on_enter"
        raise HookFailed(f"The {hook} hook failed while stepping to '{there}': "
                         f"{type(exc).__name__}: {exc}. Nothing was changed.") from exc


_run_hooks = run_hooks


# -- task state -----------------------------------------------------------------------------

def save_task_state(instance, state=None, user=None, note=""):
    """Write the instance's task state (or `state`, replacing it) as a new version.

    Refused for an instance that is not active or suspended (finished, cancelled,
    expired: its task state is final). Recorded in the history ("task state edited").
    Returns the HistoryEntry, or None when nothing changed.
    """
    with transaction.atomic():
        locked = lock(instance.pk)
        check_status(locked, "change its task state", (Instance.ACTIVE, Instance.SUSPENDED))
        if state is None:
            taskstate.share_loaded(instance, locked)
            if not taskstate.changed(locked):
                if taskstate.changed(instance):
                    raise AlreadyMoved(f"The task state of instance {locked.label} was "
                                       f"changed meanwhile; reload it. Nothing was changed.")
                return None
        else:
            taskstate.replace(locked, state)
        graph = compiled_by_id(locked.version_id)
        key, name = locked.state_key, locked.state_name
        entry = record(locked, graph, HistoryEntry.EDIT, user=user, now=timezone.now(),
                       note=note, from_key=key, from_name=name,
                       fields=("last_seq", "last_activity"))
    copy_back(locked, instance)
    return entry


# -- moving between versions ---------------------------------------------------------

def move_problem(instance, version):
    """Why `instance` cannot move to `version` (a message), or None."""
    if version.machine_id != instance.machine_id:
        return f"Version {version} belongs to another machine."
    if version.pk == instance.version_id:
        return f"Instance {instance.label} already runs on version {version.number}."
    if effective_status(instance) != Instance.ACTIVE:
        return f"Instance {instance.label} is {effective_status(instance)}."
    target = compiled(version)
    if instance.state_key not in target.names:
        return (f"Its current state '{instance.state_name}' does not exist in version "
                f"{version.number}.")
    return None


def move(instance, version, user=None, note=""):
    """Move an instance to another version of its machine, keeping its current state."""
    with transaction.atomic():
        locked = lock(instance.pk)
        problem = move_problem(locked, version)
        if problem:
            raise MoveError(f"Instance {locked.label} cannot move: {problem}", instance=locked)
        target, old = compiled(version), compiled_by_id(locked.version_id)
        old_number = MachineVersion.objects.filter(pk=locked.version_id).values_list(
            "number", flat=True).first()
        key = locked.state_key
        locked.version_id = version.pk
        locked.step_count += 1
        locked.state_name = target.names[key]
        if not target.children[key]:
            locked.status, locked.outcome = Instance.FINISHED, target.outcome(key)
        now = timezone.now()
        timers.on_position(locked, target, now)  # the old timers are stale: a new position
        entry = record(locked, target, HistoryEntry.MOVE, user=user, now=now,
                       from_key=key, from_name=old.names[key],
                       note=note or f"Moved from version {old_number} to {version.number}.")
        send_on_commit(signals.instance_moved, locked, entry, _user(user))
    copy_back(locked, instance)
    return entry
