"""The task-state store interface (django-flows' FLOWS_STATE_STORE)."""
import json

from ..exceptions import FlowrError, StepError


class StateNotFound(FlowrError, KeyError):
    """No (unexpired) state is stored for this task id."""


class StoreUnavailable(FlowrError):
    """The store cannot be reached or refused the request (e.g. Redis down, bad password)."""


class TaskStateUnavailable(StoreUnavailable, StepError):
    """An instance's task state could not be read or written; its step was rolled back."""


class StateNotSerialisable(FlowrError, TypeError):
    """The state is not a JSON-serialisable dict."""


def dumps(state):
    """Serialise a task state as JSON; refuses anything JSON cannot hold."""
    if not isinstance(state, dict):
        raise StateNotSerialisable(f"Task state must be a dict, not {type(state).__name__}.")
    try:
        return json.dumps(state, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise StateNotSerialisable(f"Task state is not JSON-serialisable: {exc}") from exc


class BaseStateStore:
    """Subclass as `StateStore` in a module named by FLOWS_STATE_STORE."""

    #: True when writes take part in the database transaction (rolled back with it).
    transactional = False

    def get_state(self, task_id):
        """The state dict of `task_id`; raises StateNotFound when absent or expired."""
        raise NotImplementedError

    def put_state(self, task_id, state):
        """Store the state dict of `task_id` (JSON only) and refresh its idle timeout."""
        raise NotImplementedError

    def delete_state(self, task_id):
        """Forget the state of `task_id` (no error if absent)."""
        raise NotImplementedError

    def touch_state(self, task_id):
        """Restart the idle timeout of `task_id` without changing it (no error if absent)."""
        try:
            self.get_state(task_id)  # reading counts as interaction in every store
        except StateNotFound:
            pass

    def health(self):
        """Raise StoreUnavailable if the store cannot serve requests."""
