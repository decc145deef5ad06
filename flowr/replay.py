"""The replay of an instance's history: the position its entries lead to.

The guarantee users rely on: an instance's position (version, state, status) always
equals the replay of its history, whatever happened (steps, timed steps, operator
moves, undo, version moves and migrations, cancel/suspend/resume). Tests check it after
every kind of change; programs can check it too.
"""
from .exceptions import FlowrError
from .models import HistoryEntry, Instance


class ReplayError(FlowrError):
    """A history does not chain: an entry starts from another state than the last one left."""


def replay(entries):
    """The (version id, state key, status) that the history entries lead to.

    Each entry that changes the position must start where the previous one ended;
    assignments and reminders (HistoryEntry.NOTES) leave the position alone.
    """
    position = None
    for entry in sorted(entries, key=lambda e: e.seq):
        if entry.kind == HistoryEntry.START:
            position = (entry.version_id, entry.to_key, entry.status or Instance.ACTIVE)
            continue
        if position is None:
            raise ReplayError(f"History entry {entry.seq} comes before the start.")
        if entry.kind in HistoryEntry.NOTES:
            continue
        if entry.from_key != position[1]:
            raise ReplayError(f"History entry {entry.seq} ({entry.kind}) starts from "
                              f"'{entry.from_key}', but the instance was at '{position[1]}'.")
        position = (entry.version_id, entry.to_key, entry.status or position[2])
    return position


def position_of(instance):
    """The (version id, state key, status) the instance row holds (status as stored)."""
    return instance.version_id, instance.state_key, instance.status
