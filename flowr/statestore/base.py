"""The task-state store interface (django-flows' FLOWS_STATE_STORE)."""
import json

from .._values import value_problem
from ..exceptions import FlowrError, StepError


class StateNotFound(FlowrError, KeyError):
    """No (unexpired) state is stored for this task id."""


class StoreUnavailable(FlowrError):
    """The store cannot be reached or refused the request (e.g. Redis down, bad password)."""


class TaskStateUnavailable(StoreUnavailable, StepError):
    """An instance's task state could not be read or written; its step was rolled back."""


class StateNotSerialisable(FlowrError, TypeError):
    """The state is not a JSON-serialisable dict."""


MAX_DEPTH = 64  # nesting levels a task state may have


def dumps(state):
    """Serialise a task state as JSON; refuses anything JSON (or a database) cannot hold."""
    if not isinstance(state, dict):
        raise StateNotSerialisable(f"Task state must be a dict, not {type(state).__name__}.")
    _check_values(state)
    try:
        return json.dumps(state, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise StateNotSerialisable(f"Task state is not JSON-serialisable: {exc}") from exc


_PROBLEMS = {
    "deep": f"Task state nests values more than {MAX_DEPTH} levels deep.",
    "nul": "Task state text contains a NUL character (\\u0000), which cannot be stored; "
           "remove it.",
    "surrogate": "Task state text contains an invalid character (a lone surrogate such as "
                 "\\ud800); remove it.",
}


def _check_values(state):
    """Refuse deep nesting, NUL and lone surrogates (PostgreSQL's jsonb cannot store them)."""
    problem = value_problem(state, MAX_DEPTH)
    if problem:
        raise StateNotSerialisable(_PROBLEMS[problem])


class BaseStateStore:
    """Subclass as `StateStore` in a module named by FLOWS_STATE_STORE."""

    #: True when writes take part in the database transaction (rolled back with it).
    transactional = False

    def get_state(self, task_id):
        """The state dict of `task_id`; raises StateNotFound when absent or expired."""
        raise NotImplementedError

    def peek_state(self, task_id):
        """Like get_state, but without restarting the idle timeout (for views that only
        look). A store without it falls back to get_state."""
        return self.get_state(task_id)

    def put_state(self, task_id, state):
        """Store the state dict of `task_id` (JSON only) and refresh its idle timeout."""
        raise NotImplementedError

    def delete_state(self, task_id):
        """Forget the state of `task_id` (no error if absent). Optional: without it,
        superseded task states are left to expire (the store's own idle timeout)."""

    def touch_state(self, task_id):
        """Restart the idle timeout of `task_id` without changing it (no error if absent)."""
        try:
            self.get_state(task_id)  # reading counts as interaction in every store
        except StateNotFound:
            pass

    def retire(self, keep=(), delete=()):
        """After a COMMIT: restart the idle timeout of `keep`, forget `delete`.

        Called outside the step's transaction (non-transactional stores) or inside it
        (transactional ones). A store may do both in one round trip.
        """
        for task_id in keep:
            self.touch_state(task_id)
        for task_id in delete:
            self.delete_state(task_id)

    def health(self):
        """Raise StoreUnavailable if the store cannot serve requests."""
