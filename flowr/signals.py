"""Signals sent once per change, after the transaction that made it has committed.

Receivers never see a step that was rolled back. Each is sent with sender=Instance and
keyword arguments `instance`, `entry` (the HistoryEntry written) and `user`.

`instance_due` is sent by a state's reminder (its "remind after" option), with
user=None and the REMIND history entry; it is the hook for notifications.
"""
from django.dispatch import Signal

instance_started = Signal()
instance_stepped = Signal()
instance_moved = Signal()
instance_due = Signal()
#: An operator control: cancel, suspend, resume, move to state, undo (see entry.kind).
instance_controlled = Signal()
instance_assigned = Signal()  # claim, assign, unassign (flowr.assignment)


def send_on_commit(signal, instance, entry, user):
    """Send `signal` when the current transaction commits (at once outside one)."""
    from django.db import transaction

    from .models import Instance

    transaction.on_commit(lambda: signal.send(sender=Instance, instance=instance, entry=entry,
                                              user=user))
