"""Deadlines of states (their timing options): the due time set on entering a state.

The engine calls `on_enter` inside the transaction of every change that enters a state
(start, step, timed step, operator move, undo, migration), with the instance row locked.
"""
from datetime import timedelta


def on_enter(instance, graph, key, now):
    """Set the instance's due time for state `key` (None when the state has no timing)."""
    due_after = (graph.options.get(key) or {}).get("due_after")
    instance.due_at = now + timedelta(seconds=due_after) if due_after else None
