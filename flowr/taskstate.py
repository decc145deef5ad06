"""Task state of instances: lazy loading, saving and the write at the end of a step.

For a transactional store (Django models) the write rolls back with the step. For
Redis it is the last thing done before COMMIT, and an undo callable puts the previous
value back if the transaction fails afterwards (see atomic_with_undo).
"""
import json
import logging
from contextlib import contextmanager

from django.db import transaction
from django.utils import timezone

from .models import Instance

logger = logging.getLogger(__name__)


def task_state_of(instance):
    """The instance's task state dict, loaded once per object from the state store."""
    from .statestore import StateNotFound, StoreUnavailable, get_store

    if "_flowr_task_state" not in instance.__dict__:
        try:
            state = get_store().get_state(str(instance.pk))
        except StateNotFound:
            state = {}
        except StoreUnavailable as exc:
            raise _unavailable(instance, "read", exc) from exc
        instance.__dict__["_flowr_task_state"] = state
        instance.__dict__["_flowr_task_state_saved"] = _dump(state)
    return instance.__dict__["_flowr_task_state"]


def save_task_state(instance, state=None):
    """Write the task state (or `state`, replacing it) to the store; touches last_activity."""
    from .statestore import get_store

    if state is not None:
        instance.__dict__["_flowr_task_state"] = state
    state = task_state_of(instance)
    get_store().put_state(str(instance.pk), state)
    instance.__dict__["_flowr_task_state_saved"] = _dump(state)
    instance.last_activity = timezone.now()
    Instance.objects.filter(pk=instance.pk).update(last_activity=instance.last_activity)


def _unavailable(instance, verb, exc):
    """A TaskStateUnavailable (a StepError) naming the instance, from a store error."""
    from .statestore import TaskStateUnavailable

    if isinstance(exc, TaskStateUnavailable):
        return exc
    return TaskStateUnavailable(
        f"The task state of instance {instance.pk} could not be {verb}: {exc} Nothing was "
        f"changed: the instance keeps its position, history and task state.",
        instance=instance)


def _dump(state):
    return json.dumps(state, sort_keys=True, default=str)


def _task_state_changed(instance):
    saved = instance.__dict__.get("_flowr_task_state_saved")
    return saved is not None and _dump(instance.__dict__["_flowr_task_state"]) != saved


# -- instances --------------------------------------------------------------------


def delete_task_state(instance_pk):
    """Forget an instance's task state; a store that is down is logged, not raised."""
    from .statestore import StoreUnavailable, get_store

    try:
        get_store().delete_state(str(instance_pk))
    except StoreUnavailable as exc:
        logger.warning("Could not delete the task state of instance %s: %s", instance_pk, exc)


def share_loaded(source, target, unchanged_only=False):
    """Give `target` (the same instance, another object) the task state `source` loaded."""
    if "_flowr_task_state" not in source.__dict__:
        return
    if unchanged_only and _task_state_changed(source):
        return
    for attr in ("_flowr_task_state", "_flowr_task_state_saved"):
        target.__dict__[attr] = source.__dict__[attr]


def forget(instance):
    instance.__dict__.pop("_flowr_task_state", None)
    instance.__dict__.pop("_flowr_task_state_saved", None)


def flush(instance, touch=False):
    """Write task state changed by hooks, last inside the step's transaction.

    Unchanged state is only touched (`touch`): a step is interaction, so it restarts
    the state's idle timeout just as it refreshes the instance's last_activity.

    For a transactional store (Django models) the write rolls back with the step.
    For Redis the write happens just before COMMIT; the returned undo callable puts
    the previous value back if COMMIT then fails.
    """
    from .statestore import StoreUnavailable, get_store

    store = get_store()
    task_id = str(instance.pk)
    if not _task_state_changed(instance):
        if touch:
            _touch(store, task_id)
        return None
    previous = json.loads(instance.__dict__["_flowr_task_state_saved"])
    try:
        store.put_state(task_id, instance.__dict__["_flowr_task_state"])
    except StoreUnavailable as exc:
        raise _unavailable(instance, "saved", exc) from exc
    instance.__dict__["_flowr_task_state_saved"] = _dump(instance.__dict__["_flowr_task_state"])
    if store.transactional:
        return None

    def undo():
        try:
            store.put_state(task_id, previous) if previous else store.delete_state(task_id)
        except Exception:  # noqa: BLE001 - the store is down: nothing more to do
            pass
    return undo


def _touch(store, task_id):
    from .statestore import StoreUnavailable

    try:
        store.touch_state(task_id)
    except StoreUnavailable as exc:
        # The step did not need the task state; it should not fail because of it.
        logger.warning("Could not refresh the idle timeout of task %s: %s", task_id, exc)


@contextmanager
def atomic_with_undo():
    """transaction.atomic() that runs registered undo callables if the block fails."""
    undo = []
    try:
        with transaction.atomic():
            yield undo
    except BaseException:
        for callback in undo:
            if callback:
                callback()
        raise
