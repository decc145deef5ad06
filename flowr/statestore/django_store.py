"""Task state kept in a Django model (the default store)."""
import json
from datetime import timedelta

from django.utils import timezone

from .. import config
from .base import BaseStateStore, StateNotFound, dumps


class StateStore(BaseStateStore):
    transactional = True

    def _model(self):
        from ..models import TaskStateRecord

        return TaskStateRecord

    def _cutoff(self):
        timeout = config.task_idle_timeout()
        return timezone.now() - timedelta(seconds=timeout) if timeout else None

    def get_state(self, task_id):
        rows = self._model().objects.filter(task_id=task_id)
        cutoff = self._cutoff()
        if cutoff is not None:
            rows = rows.filter(updated_at__gte=cutoff)
        now = timezone.now()
        # Refresh on access: reading counts as interaction.
        if not rows.update(updated_at=now):
            raise StateNotFound(f"No task state for task {task_id}.", task_id=task_id)
        return self._model().objects.values_list("state", flat=True).get(task_id=task_id)

    def put_state(self, task_id, state):
        state = json.loads(dumps(state))
        self._model().objects.update_or_create(
            task_id=task_id, defaults={"state": state, "updated_at": timezone.now()})

    def touch_state(self, task_id):
        rows = self._model().objects.filter(task_id=task_id)
        cutoff = self._cutoff()
        if cutoff is not None:
            rows.filter(updated_at__gte=cutoff).update(updated_at=timezone.now())

    def delete_state(self, task_id):
        self._model().objects.filter(task_id=task_id).delete()

    def cleanup(self):
        """Delete expired rows; returns how many were removed."""
        cutoff = self._cutoff()
        if cutoff is None:
            return 0
        deleted, _ = self._model().objects.filter(updated_at__lt=cutoff).delete()
        return deleted
