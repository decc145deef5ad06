"""A dict-backed task-state store that can be switched off (DOWN = True) in the tests."""
import json

from flowr.statestore.base import BaseStateStore, StateNotFound, StoreUnavailable, dumps

DATA = {}
DOWN = False


def _check():
    if DOWN:
        raise StoreUnavailable("The flaky test store is down.")


class StateStore(BaseStateStore):
    def get_state(self, task_id):
        _check()
        try:
            return json.loads(DATA[task_id])
        except KeyError:
            raise StateNotFound(f"No task state for task {task_id}.", task_id=task_id)

    def put_state(self, task_id, state):
        _check()
        DATA[task_id] = dumps(state)

    def delete_state(self, task_id):
        _check()
        DATA.pop(task_id, None)

    def touch_state(self, task_id):
        _check()
