"""Operator controls: cancel, suspend / resume, move to any state, undo the last step.

    from flowr import controls

    controls.suspend(instance, reason="Waiting for the audit", user=request.user,
                     expected_position=position_the_page_showed)
    controls.move_to_state(instance, "review", run_hooks=False, reason="Stuck after a bug")

Each control runs in one transaction with the instance row locked (`engine.lock`),
refuses with a ControlError (or AlreadyMoved for a stale `expected_position`) naming
the instance and what to do instead, bumps the position number and writes exactly
one history entry (the reason in its note, the user in its user) via `engine.record`,
so the position always equals the replay of the history. A `user` needs the control's
permission (`Control.permission`); programs acting on their own pass user=None.

Deadlines: suspending clears the due time (a suspended instance is not overdue, and a
timer set for the old position never fires); resuming recomputes it from the resume,
as if the state had just been entered: the full due-after period starts again.
Cancelling is final: the due time and the assignee are cleared.
"""
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from . import engine, signals, taskstate, timers
from .exceptions import (
    ControlError, ControlPermissionDenied, ReasonRequired, RuleNotRegistered, StatusForbids,
    TaskStateGone, UndoRefused, UnknownState,
)
from .models import HistoryEntry, Instance

REASON_MAX = 2000
#: History kinds "undo last step" takes back (version moves have their own way back).
UNDOABLE = frozenset({HistoryEntry.STEP, HistoryEntry.TIMEOUT, HistoryEntry.JUMP})


@dataclass(frozen=True)
class Control:
    """One operator control: its name, words, history kind, statuses and permission."""

    name: str
    label: str  # the button: "Cancel"
    verb: str  # "cancel"
    past: str  # "cancelled"
    kind: str
    allowed: tuple
    permission: str
    help: str = ""

    @property
    def codename(self):
        return self.permission.split(".", 1)[1]


_ACTIVE, _SUSPENDED, _FINISHED = Instance.ACTIVE, Instance.SUSPENDED, Instance.FINISHED
CANCEL = Control("cancel", "Cancel", "cancel", "cancelled", HistoryEntry.CANCEL,
                 (_ACTIVE, _SUSPENDED), "flowr.cancel_instance",
                 "Final: a cancelled instance takes no more steps and cannot be resumed.")
SUSPEND = Control("suspend", "Suspend", "suspend", "suspended", HistoryEntry.SUSPEND,
                  (_ACTIVE,), "flowr.suspend_instance",
                  "A suspended instance takes no steps until it is resumed; its deadline "
                  "is cleared while it waits.")
RESUME = Control("resume", "Resume", "resume", "resumed", HistoryEntry.RESUME,
                 (_SUSPENDED,), "flowr.suspend_instance",
                 "The instance can step again; its state's deadline is recomputed from "
                 "now (the full due-after period starts again).")
MOVE = Control("move", "Move to state…", "move", "moved", HistoryEntry.JUMP, (_ACTIVE,),
               "flowr.override_instance",
               "Puts the instance into any state of its version, whatever the arrows say.")
UNDO = Control("undo", "Undo last step", "have its last step undone", "undone",
               HistoryEntry.UNDO, (_ACTIVE, _FINISHED), "flowr.override_instance",
               "Takes the instance back to the state and task state it had before its "
               "last step; allowed only while nothing else happened since.")
CONTROLS = {c.name: c for c in (CANCEL, SUSPEND, RESUME, MOVE, UNDO)}


# -- checks ---------------------------------------------------------------------------

def clean_reason(reason):
    """The stripped reason, or raise ReasonRequired."""
    reason = (reason or "").strip() if isinstance(reason, str) or reason is None else None
    if not reason:
        raise ReasonRequired("Give a reason: it is written to the instance's history.")
    if len(reason) > REASON_MAX or "\x00" in reason:
        raise ReasonRequired(f"The reason must be at most {REASON_MAX} characters of text.")
    return reason


def _permit(user, control):
    if user is not None and not user.has_perm(control.permission):
        raise ControlPermissionDenied(
            f"{getattr(user, 'username', user)} may not {control.verb} instances: that needs "
            f"the permission '{control.permission}'.", permission=control.permission)


def status_problem(instance, control):
    """Why the instance's (effective) status forbids `control` (a message), or None."""
    status = engine.effective_status(instance)
    if status in control.allowed:
        return None
    allowed = " or ".join(control.allowed)
    hint = " Resume it first." if status == _SUSPENDED and control is not CANCEL else ""
    if status == Instance.EXPIRED:
        status = "expired (idle for longer than FLOWS_TASK_IDLE_TIMEOUT)"
    if control is UNDO:
        return f"Instance {instance.label} is {status}; only the last step of {allowed} " \
               f"instances can be undone.{hint}"
    return f"Instance {instance.label} is {status}; only {allowed} instances can be " \
           f"{control.past}.{hint}"


def _check_status(locked, control):
    problem = status_problem(locked, control)
    if problem:
        raise StatusForbids(problem + " Nothing was changed.", status=locked.status)


def _begin(instance, control, user, expected_position):
    """Inside atomic: lock the row, refuse stale pages and forbidden statuses."""
    _permit(user, control)
    locked = engine.lock(instance.pk)
    engine.check_expected(locked, expected_position=expected_position)
    _check_status(locked, control)
    return locked


def _signal(instance, entry, user):
    user = user if getattr(user, "pk", None) else None
    signals.send_on_commit(signals.instance_controlled, instance, entry, user)


# -- status changes: cancel, suspend, resume --------------------------------------------

def _cancelled(locked, graph, now):
    locked.status, locked.due_at, locked.assignee_id = Instance.CANCELLED, None, None


def _suspended(locked, graph, now):
    locked.status, locked.due_at = Instance.SUSPENDED, None


def _resumed(locked, graph, now):
    locked.status = Instance.ACTIVE
    timers.on_enter(locked, graph, locked.state_key, now)  # the deadline starts again


_EFFECTS = {CANCEL.name: _cancelled, SUSPEND.name: _suspended, RESUME.name: _resumed}


def _change_status(instance, control, reason, user, expected_position):
    reason = clean_reason(reason)
    with transaction.atomic():
        locked = _begin(instance, control, user, expected_position)
        graph = engine.compiled_by_id(locked.version_id)
        now = timezone.now()
        locked.step_count += 1  # a change of status is a new position
        _EFFECTS[control.name](locked, graph, now)
        entry = engine.record(locked, graph, control.kind, user=user, now=now, note=reason,
                              from_key=locked.state_key, from_name=locked.state_name)
        _signal(instance, entry, user)
    engine.copy_back(locked, instance)
    return entry


def cancel(instance, *, reason, user=None, expected_position=None):
    """Cancel an active or suspended instance for good; returns the history entry."""
    return _change_status(instance, CANCEL, reason, user, expected_position)


def suspend(instance, *, reason, user=None, expected_position=None):
    """Suspend an active instance: no steps (admin or API) until it is resumed."""
    return _change_status(instance, SUSPEND, reason, user, expected_position)


def resume(instance, *, reason, user=None, expected_position=None):
    """Resume a suspended instance; its state's deadline is recomputed from now."""
    return _change_status(instance, RESUME, reason, user, expected_position)


# -- move to any state ------------------------------------------------------------------

def resolve_state(instance, graph, target):
    """The key of state `target` (a key, a name or a State) in the instance's version."""
    ref = getattr(target, "key", target)
    key = graph.resolve(ref) if isinstance(ref, str) else None
    if key is None:
        names = ", ".join(sorted(graph.names.values()))
        raise UnknownState(f"'{str(ref)[:80]}' is not a state of the version instance "
                           f"{instance.label} runs on; choose one of: {names}.", target=ref)
    return key


def guard_warnings(instance, graph, target):
    """What the guards would say about a normal step from here to `target` (messages).

    An operator's move does not obey them, but they are shown before it and recorded.
    """
    source = instance.state_key
    here, there = graph.names[source], graph.names[target]
    warnings = []
    checks = ((source, "guard_leave", there, f"Leaving '{here}'"),
              (target, "guard_enter", here, f"Entering '{there}'"))
    for key, method, other, what in checks:
        try:
            rule = graph.rule(key)(graph.settings[key], key)
            reason = getattr(rule, method)(instance, other)
        except RuleNotRegistered as exc:
            reason = str(exc)
        except Exception as exc:  # noqa: BLE001 - a broken guard is a warning too
            reason = f"the guard failed: {type(exc).__name__}: {exc}"
        if reason:
            warnings.append(f"{what}: {reason}")
    return warnings


def preview_move(instance, target):
    """(target key, its name, guard warnings) of moving the instance to `target`."""
    graph = engine.compiled_by_id(instance.version_id)
    key = resolve_state(instance, graph, target)
    return key, graph.names[key], guard_warnings(instance, graph, key)


def move_to_state(instance, target, *, run_hooks, reason, user=None, expected_position=None):
    """Put an active instance into any state of its version (a key or a name).

    `run_hooks` must be chosen: True runs on_leave of the current state and on_enter
    of the target (a failing hook changes nothing), False runs neither. Guards never
    refuse an operator's move; what they would say is recorded in the entry's data.
    """
    if not isinstance(run_hooks, bool):
        raise ControlError("Choose explicitly whether the hooks run: run_hooks=True or False.")
    reason = clean_reason(reason)
    with transaction.atomic():
        locked = _begin(instance, MOVE, user, expected_position)
        taskstate.share_loaded(instance, locked, unchanged_only=True)
        graph = engine.compiled_by_id(locked.version_id)
        key, source = resolve_state(locked, graph, target), locked.state_key
        warnings = guard_warnings(locked, graph, key)
        if run_hooks:
            engine.run_hooks(locked, graph, leave=source, enter=key, guards=False)
        now = timezone.now()
        engine.enter(locked, graph, key, user, now)
        entry = engine.record(locked, graph, MOVE.kind, user=user, now=now, note=reason,
                              data={"run_hooks": run_hooks, "guard_warnings": warnings},
                              from_key=source, from_name=graph.names[source])
        _signal(instance, entry, user)
    engine.copy_back(locked, instance)
    return entry


# -- undo -------------------------------------------------------------------------------

def last_entries(instances):
    """{instance pk: its latest history entry} for several instances (one query)."""
    from django.db.models import F

    if not instances:
        return {}
    entries = HistoryEntry.objects.filter(instance__in=[i.pk for i in instances],
                                          seq=F("instance__last_seq"))
    return {entry.instance_id: entry for entry in entries}


def undo_problem(instance, last):
    """Why the last step of the instance cannot be undone (a message), or None.

    `last` is its latest history entry (seq == last_seq). The task state's presence is
    only known when undoing (it may have expired).
    """
    problem = status_problem(instance, UNDO)
    if problem:
        return problem
    if last is not None and last.kind == HistoryEntry.START:
        return f"Instance {instance.label} has taken no step yet; there is nothing to undo."
    if last is None or last.kind not in UNDOABLE:
        kind = last.get_kind_display().lower() if last else ""
        what = f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind} ({last})" if last else "missing"
        return (f"The latest entry of instance {instance.label}'s history is {what}, not a "
                f"step; only a step with nothing after it can be undone.")
    if (last.seq == 0 or last.version_id != instance.version_id
            or last.to_key != instance.state_key):
        return f"The history of instance {instance.label} does not end at its position."
    return None


def _last_two(locked):
    """The locked instance's last history entry and the one before it (one query)."""
    rows = {e.seq: e for e in HistoryEntry.objects.filter(
        instance_id=locked.pk, seq__in=[locked.last_seq - 1, locked.last_seq])}
    return rows.get(locked.last_seq - 1), rows.get(locked.last_seq)


def undo_last_step(instance, *, reason, user=None, expected_position=None):
    """Take back the instance's last step (a step, timed step or operator move).

    Allowed only if nothing happened since (checked under the row lock). Recorded as a
    new UNDO entry; the position and the task state go back to before that step (its
    assignee and deadline follow the state's options, as on entering it). Refused with
    UndoRefused when the task state from before is no longer kept.
    """
    reason = clean_reason(reason)
    with transaction.atomic():
        locked = _begin(instance, UNDO, user, expected_position)
        before, last = _last_two(locked)
        problem = undo_problem(locked, last)
        if problem:
            raise UndoRefused(problem + " Nothing was changed.")
        graph = engine.compiled_by_id(locked.version_id)
        try:
            restored = taskstate.restore(locked, before.task_state_version,
                                         graph.search_fields)
        except TaskStateGone as exc:
            raise UndoRefused(f"The last step of instance {locked.label} cannot be undone: "
                              f"{exc}") from exc
        source, now = locked.state_key, timezone.now()
        engine.enter(locked, graph, last.from_key, user, now)
        entry = engine.record(
            locked, graph, UNDO.kind, user=user, now=now, note=reason,
            data={"undone_seq": last.seq, "undone": f"{last.from_name} → {last.to_name}"},
            from_key=source, from_name=graph.names[source],
            fields=(*engine.POSITION_FIELDS, *restored))
        _signal(instance, entry, user)
    engine.copy_back(locked, instance)
    return entry
