"""A dict-backed task-state store selected through FLOWS_STATE_STORE in the tests."""
import json

from flowr.statestore.base import BaseStateStore, StateNotFound, dumps

DATA = {}


class StateStore(BaseStateStore):
    def get_state(self, task_id):
        try:
            return json.loads(DATA[task_id])
        except KeyError:
            raise StateNotFound(f"No task state for task {task_id}.", task_id=task_id)

    def put_state(self, task_id, state):
        DATA[task_id] = dumps(state)

    def delete_state(self, task_id):
        DATA.pop(task_id, None)
