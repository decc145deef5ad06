"""Deadlines of states: the due time, the timeout and reminder tasks, and firing them.

Scheduling. The engine calls `on_enter` inside the transaction of every change that
enters a state (start, step, timed step, operator move, undo, migration), with the
instance row locked. It sets `Instance.due_at` and enqueues the state's timeout task
(run after the due time) and reminder task through Django's task framework; the
database backend's enqueue is an INSERT on the same connection, so a rolled-back step
schedules nothing and a committed step cannot lose its timers. A version move keeps the
state but takes a new position: it calls `on_position`.

Firing. Every task carries (instance id, position number, state key). A timer whose
instance has moved on since (any change of state, version or status bumps the
position), or that is no longer active, is *stale*: it does nothing and says so in its
task result. Otherwise the timeout steps the instance through `engine.step` with
`expected_position`, which re-checks everything under the row lock, so a timer steps
its instance at most once however many workers run it (or run it again after a
crash). A failing timed step changes nothing; it is retried with backoff by enqueueing
the task again, then becomes an incident (flowr.incidents).
"""
import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from . import config, signals
from .options import format_duration

logger = logging.getLogger(__name__)

#: The `result` of a timer task (its return value, kept by the task framework).
FIRED, STALE, RETRY, INCIDENT, REMINDED = "fired", "stale", "retry", "incident", "reminded"


# -- scheduling ---------------------------------------------------------------------

def on_enter(instance, graph, key, now):
    """Set the due time of state `key` and schedule its tasks (inside the change's transaction)."""
    from .models import Instance

    options = graph.options.get(key) or {}
    due_after = options.get("due_after")
    if instance.status != Instance.ACTIVE or not due_after:
        instance.due_at = None
    else:
        instance.due_at = now + timedelta(seconds=due_after)
    if instance.status == Instance.ACTIVE:
        _schedule(instance, key, options, entered=now, now=now)


def on_position(instance, graph, now):
    """New timers for a new position at the same state (a version move).

    The deadline still counts from when the state was entered (under the options of
    `graph`, the instance's version now); one already past fires at once. A reminder
    whose time has passed is not sent again. (Resuming restarts the deadline instead:
    flowr.controls calls on_enter.)
    """
    from .models import Instance

    key = instance.state_key
    options = graph.options.get(key) or {}
    if instance.status != Instance.ACTIVE:
        if instance.status == Instance.FINISHED:
            instance.due_at = None
        return
    entered = instance.state_entered_at or now
    due_after = options.get("due_after")
    instance.due_at = entered + timedelta(seconds=due_after) if due_after else None
    _schedule(instance, key, options, entered=entered, now=now)


def _schedule(instance, key, options, entered, now):
    from . import tasks

    args = (str(instance.pk), instance.step_count, key)
    if instance.due_at is not None and options.get("timeout_to"):
        # The target and the delay travel with the timer (fixed for this position), so
        # firing needs no read before the step's own locked one.
        tasks.fire_timeout.using(run_after=max(instance.due_at, now)).enqueue(
            *args, options["timeout_to"], options["due_after"])
    if options.get("remind_after"):
        remind_at = entered + timedelta(seconds=options["remind_after"])
        if remind_at >= now:
            tasks.send_reminder.using(run_after=remind_at).enqueue(*args)


# -- firing ------------------------------------------------------------------------

def _result(result, instance_id, position, **extra):
    return {"result": result, "instance": str(instance_id), "position": position, **extra}


def stale(instance_id, position, reason):
    """The result of a timer that found its instance elsewhere: nothing was done."""
    logger.info("Stale timer of instance %s at position %s: %s", instance_id, position, reason)
    return _result(STALE, instance_id, position, reason=reason)


def error_text(exc):
    """A one-line description of a failure, for incidents and task results."""
    text = str(exc).strip() or "(no message)"
    return text if getattr(exc, "message", None) else f"{type(exc).__name__}: {text}"


def timeout_note(due_after):
    """The note of a timed step's history entry: "timeout after 2 days"."""
    return f"timeout after {format_duration(due_after or 0)}"


def attempt_timeout(instance_id, position, state_key, target_key, note):
    """Try one timed step; returns (result, detail): detail is the history entry (FIRED),
    the reason (STALE) or the exception (failed: result None). Nothing changes unless
    the instance is still active at `position`: engine.step checks under the row lock."""
    from . import engine
    from .exceptions import AlreadyMoved, InstanceNotActive
    from .models import HistoryEntry, Instance

    try:
        entry = engine.step(Instance(pk=instance_id), to=target_key, note=note,
                            expected_position=position, expected_state=state_key,
                            kind=HistoryEntry.TIMEOUT)
    except Instance.DoesNotExist:
        return STALE, "the instance no longer exists"
    except (AlreadyMoved, InstanceNotActive) as exc:
        return STALE, str(exc)
    except Exception as exc:  # noqa: BLE001 - any failure is retried, then an incident
        return None, exc
    return FIRED, entry


def fire_timeout(instance_id, position, state_key, target_key, due_after, attempt=1):
    """The timeout task's work: step the instance to `target_key` if still at `position`."""
    from . import incidents

    result, detail = attempt_timeout(instance_id, position, state_key, target_key,
                                     timeout_note(due_after))
    if result == STALE:
        return stale(instance_id, position, detail)
    if result == FIRED:
        return _result(FIRED, instance_id, position, seq=detail.seq, to=detail.to_key)
    error = error_text(detail)
    retries = int(config.get("FLOWR_TIMER_RETRIES"))
    if attempt <= retries:
        delay = config.seconds("FLOWR_TIMER_RETRY_DELAY") * 2 ** (attempt - 1)
        _retry_later(delay, instance_id, position, state_key, target_key, due_after,
                     attempt + 1)
        logger.warning("Timed step of instance %s failed (attempt %s of %s), retrying in "
                       "%ss: %s", instance_id, attempt, retries + 1, delay, error)
        return _result(RETRY, instance_id, position, attempt=attempt, error=error,
                       retry_in_s=delay)
    incident = incidents.open_incident(instance_id, position, state_key, error, attempt)
    if incident is None:
        return stale(instance_id, position, "the instance moved on while failing")
    logger.error("Timed step of instance %s failed %s times; incident #%s: %s",
                 instance_id, attempt, incident.pk, error)
    return _result(INCIDENT, instance_id, position, attempt=attempt, error=error,
                   incident=incident.pk)


def _retry_later(delay, *args):
    """Enqueue the timeout task again (the task framework has no retries of its own)."""
    from . import tasks

    run_after = timezone.now() + timedelta(seconds=delay)
    tasks.fire_timeout.using(run_after=run_after).enqueue(*args)


# -- notes and reminders ------------------------------------------------------------------

def write_note(locked, kind, note, user=None, now=None):
    """A history note (reminder, incident) on a locked instance; position unchanged.

    Notes are not interaction: they leave last_activity and the task state's idle
    timeout alone.
    """
    from . import engine

    graph = engine.compiled_by_id(locked.version_id)
    return engine.record(locked, graph, kind, user=user, now=now or timezone.now(), note=note,
                         from_key=locked.state_key, from_name=locked.state_name,
                         fields=("last_seq",), touch=False)


def remind(instance_id, position, state_key):
    """The reminder task's work: a history note and the instance_due signal (after commit)."""
    from . import engine
    from .models import HistoryEntry, Instance

    with transaction.atomic():
        try:
            locked = engine.lock(instance_id)
        except Instance.DoesNotExist:
            return stale(instance_id, position, "the instance no longer exists")
        if locked.step_count != position:
            return stale(instance_id, position, "the instance has moved on")
        status = engine.effective_status(locked)
        if status != Instance.ACTIVE:
            return stale(instance_id, position, f"the instance is {status}")
        options = engine.compiled_by_id(locked.version_id).options.get(state_key) or {}
        note = f"reminder after {format_duration(options.get('remind_after') or 0)}"
        if locked.due_at:
            note += f"; due {timezone.localtime(locked.due_at):%Y-%m-%d %H:%M %Z}"
        entry = write_note(locked, HistoryEntry.REMIND, note)
        signals.send_on_commit(signals.instance_due, locked, entry, None)
    return _result(REMINDED, instance_id, position, seq=entry.seq)
