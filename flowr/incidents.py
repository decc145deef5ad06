"""Incidents: a timed step that failed every automatic attempt waits here for a person.

One incident per instance and position (a unique constraint), however many workers or
retries failed. A person can Retry it (the same timed step, now, once) or Dismiss it;
both write a history note on the instance and close the incident.
"""
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import engine, timers
from .exceptions import FlowrError
from .models import HistoryEntry, Incident, Instance
from .options import format_duration

RETRIED, STILL_FAILING, OBSOLETE = "resolved", "failing", "obsolete"


class IncidentClosed(FlowrError):
    """The incident is no longer open (someone retried or dismissed it meanwhile)."""


def _describe(graph, state_key, target_key):
    options = graph.options.get(state_key) or {}
    due = format_duration(options.get("due_after") or 0)
    return (f"Timed step from '{graph.names.get(state_key, state_key)}' to "
            f"'{graph.names.get(target_key, target_key)}' (due after {due})")


def open_incident(instance_id, position, state_key, error, attempts):
    """Record that the timed step at `position` failed `attempts` times; None if stale."""
    now = timezone.now()
    with transaction.atomic():
        try:
            locked = engine.lock(instance_id)
        except Instance.DoesNotExist:
            return None
        if locked.step_count != position:
            return None
        graph = engine.compiled_by_id(locked.version_id)
        target = (graph.options.get(state_key) or {}).get("timeout_to", "")
        incident, created = _get_or_create(locked, position, state_key, graph, target, error,
                                           attempts, now)
        if created:
            timers.write_note(locked, HistoryEntry.INCIDENT,
                              f"Incident #{incident.pk}: the timed step to "
                              f"'{incident.target_name}' failed {attempts} times: {error}",
                              now=now)
    return incident


def _get_or_create(locked, position, state_key, graph, target, error, attempts, now):
    defaults = {"state_key": state_key, "state_name": graph.names.get(state_key, state_key),
                "target_key": target, "target_name": graph.names.get(target, target),
                "action": _describe(graph, state_key, target)[:300], "error": error,
                "attempts": attempts, "created_at": now, "failed_at": now}
    try:
        with transaction.atomic():
            return Incident.objects.create(instance=locked, position=position,
                                           kind=Incident.TIMEOUT, **defaults), True
    except IntegrityError:
        # Another retry chain of the same timer got here first (after a crash): one incident.
        incident = Incident.objects.get(instance=locked, position=position, kind=Incident.TIMEOUT)
        Incident.objects.filter(pk=incident.pk).update(
            error=error, failed_at=now, attempts=max(incident.attempts, attempts))
        return incident, False


def _close(incident, status, user, resolution, now):
    incident.status, incident.closed_at = status, now
    incident.closed_by = user if getattr(user, "pk", None) else None
    incident.resolution = resolution
    incident.save(update_fields=["status", "closed_at", "closed_by", "resolution"])


def _claim(incident):
    """Lock an open incident (refuse a closed one): two people cannot act on it twice.

    Lock order as in open_incident: the instance row first, then the incident.
    """
    try:
        instance = engine.lock(incident.instance_id)
    except Instance.DoesNotExist:
        raise IncidentClosed(f"Incident #{incident.pk}: its instance no longer exists.")
    locked = Incident.objects.select_for_update().filter(pk=incident.pk).first()
    if locked is None or not locked.is_open:
        raise IncidentClosed(f"Incident #{incident.pk} is no longer open"
                             f"{f' ({locked.get_status_display().lower()})' if locked else ''}; "
                             f"nothing was done.")
    locked.instance = instance
    return locked


def retry(incident, user):
    """Try the incident's timed step again now; returns (outcome, message).

    outcome: RETRIED (stepped; incident resolved), OBSOLETE (the instance moved on;
    incident resolved) or STILL_FAILING (nothing changed; incident stays open).
    """
    who = user.get_username() if user else "system"
    with transaction.atomic():
        locked = _claim(incident)
        graph = engine.compiled_by_id(locked.instance.version_id)
        due_after = (graph.options.get(locked.state_key) or {}).get("due_after")
        note = f"{timers.timeout_note(due_after)} (retried by {who}, incident #{locked.pk})"
        result, detail = timers.attempt_timeout(locked.instance_id, locked.position,
                                                locked.state_key, locked.target_key, note)
        now = timezone.now()
        if result == timers.FIRED:
            _close(locked, Incident.RESOLVED, user, f"Retried by {who}: stepped to "
                                                    f"'{detail.to_name}'.", now)
            return RETRIED, f"Incident #{locked.pk}: retried; the instance stepped to " \
                            f"'{detail.to_name}'."
        if result == timers.STALE:
            _close(locked, Incident.RESOLVED, user, f"Closed by {who}: {detail}.", now)
            _note(locked, f"Incident #{locked.pk} closed by {who}: nothing to retry, {detail}",
                  user, now)
            return OBSOLETE, f"Incident #{locked.pk}: nothing to retry ({detail}); closed."
        error = timers.error_text(detail)
        locked.attempts, locked.error, locked.failed_at = locked.attempts + 1, error, now
        locked.save(update_fields=["attempts", "error", "failed_at"])
        _note(locked, f"Incident #{locked.pk} retried by {who}: still failing: {error}", user,
              now)
    return STILL_FAILING, f"Incident #{locked.pk}: still failing: {error}"


def dismiss(incident, user, reason=""):
    """Close the incident without stepping (the instance stays where it is); a message."""
    who = user.get_username() if user else "system"
    reason = (reason or "").strip()[:500]
    with transaction.atomic():
        locked = _claim(incident)
        now = timezone.now()
        _close(locked, Incident.DISMISSED, user,
               f"Dismissed by {who}" + (f": {reason}" if reason else "."), now)
        _note(locked, f"Incident #{locked.pk} dismissed by {who}"
                      + (f": {reason}" if reason else "; the instance stays where it is."),
              user, now)
    return f"Incident #{locked.pk} dismissed; instance {locked.instance} stays at " \
           f"'{locked.instance.state_name}'."


def _note(incident, text, user, now):
    """A history note about the incident on its instance (if it still exists)."""
    try:
        instance = engine.lock(incident.instance_id)
    except Instance.DoesNotExist:  # pragma: no cover - incidents cascade with instances
        return None
    return timers.write_note(instance, HistoryEntry.INCIDENT, text[:2000], user=user, now=now)
