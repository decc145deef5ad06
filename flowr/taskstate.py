"""Task state of instances: versioned, so the committed instance row alone decides.

Every write of an instance's task state goes to a new task id, "<instance pk>:<n>", where
n is the seq of the history entry recording the change (so versions are never reused),
and the instance row's `task_state_version` (n), updated in the same transaction as
the step, says which id is current. Reads always use the version the row holds. So for a
store that is not transactional (Redis), a write whose COMMIT never happens — a hook
failing after it, a lost reply, a crash between the write and COMMIT, an outer
transaction rolled back — is never read: the row still names the previous version,
and the orphan expires by its store's idle timeout. Version 0 is the plain
"<instance pk>" id (state written before versioning, or none).

After COMMIT the previous version (`task_state_previous`) is kept with a fresh idle
timeout, so that the last step can be undone (flowr.controls), and the one before it
is deleted
(`BaseStateStore.retire`: one pipelined round trip on Redis). A transactional store
(Django models) does the same inside the transaction, so it rolls back with the step.

A step that leaves the task state unchanged only restarts its idle timeout (EXPIRE on
Redis) before COMMIT; if that fails the step fails, since the state would otherwise
silently expire while the instance stays active.
"""
import json
import logging

from django.db import transaction

logger = logging.getLogger(__name__)

_STATE, _SAVED, _VERSION = "_flowr_task_state", "_flowr_task_state_saved", \
    "_flowr_task_state_version"


def task_id(instance_pk, version):
    """The store's task id of version `version` of an instance's task state."""
    return str(instance_pk) if not version else f"{instance_pk}:{version}"


def read_version(instance_pk, version, touch=True, empty_zero=True):
    """The task state stored as `version` (a dict; {} for a never-written version 0,
    unless `empty_zero` is False).

    Reading is interaction: it restarts the idle timeout, unless `touch` is False (pages
    that only look). Raises StateNotFound when a written version is gone (expired),
    TaskStateUnavailable when the store is down.
    """
    from .statestore import StateNotFound, StoreUnavailable, get_store

    store = get_store()
    try:
        read = store.get_state if touch else store.peek_state
        return read(task_id(instance_pk, version))
    except StateNotFound:
        if version or not empty_zero:
            raise
        return {}
    except StoreUnavailable as exc:
        raise _unavailable(instance_pk, "read", exc) from exc


def task_state_of(instance, touch=True):
    """The instance's task state dict, loaded once per object from the state store.

    An expired (or vanished) version reads as {}: expired task state is never returned.
    `touch=False` reads without restarting the idle timeout (a page that only looks).
    """
    from .statestore import StateNotFound

    if _STATE not in instance.__dict__:
        version = instance.task_state_version
        try:
            state = read_version(instance.pk, version, touch)
        except StateNotFound:
            state = {}
        instance.__dict__.update({_STATE: state, _SAVED: _dump(state), _VERSION: version})
    return instance.__dict__[_STATE]


def _unavailable(instance_pk, verb, exc):
    """A TaskStateUnavailable (a StepError) naming the instance, from a store error."""
    from .statestore import TaskStateUnavailable

    if isinstance(exc, TaskStateUnavailable):
        return exc
    return TaskStateUnavailable(
        f"The task state of instance {instance_pk} could not be {verb}: {exc} Nothing was "
        f"changed: the instance keeps its position, history and task state.",
        instance_pk=instance_pk)


def _dump(state):
    return json.dumps(state, sort_keys=True, default=str)


_EMPTY = _dump({})


def changed(instance):
    """Has the loaded task state been changed since it was loaded or staged?"""
    saved = instance.__dict__.get(_SAVED)
    return saved is not None and _dump(instance.__dict__[_STATE]) != saved


def share_loaded(source, target, unchanged_only=False):
    """Give `target` (the same instance, another object) the task state `source` loaded,
    if it is the version `target`'s row holds."""
    if _STATE not in source.__dict__:
        return
    if source.__dict__[_VERSION] != target.task_state_version:
        return
    if unchanged_only and changed(source):
        return
    for attr in (_STATE, _SAVED, _VERSION):
        target.__dict__[attr] = source.__dict__[attr]


def forget(instance):
    for attr in (_STATE, _SAVED, _VERSION):
        instance.__dict__.pop(attr, None)


def project(state, keys):
    """The declared searchable keys of a task state (what Instance.search_data holds)."""
    return {key: state[key] for key in keys if key in state and state[key] not in (None, "")}


def begin(instance, state=None):
    """Give a new instance its task state: empty, or `state` (written when it starts)."""
    instance.__dict__.update({_STATE: {} if state is None else state, _SAVED: _dump({}),
                              _VERSION: 0})


def replace(instance, state):
    """Replace the task state of a locked instance without reading it (always written)."""
    instance.__dict__.update({_STATE: state, _SAVED: "", _VERSION: instance.task_state_version})


def stage(instance, version, search_fields=(), touch=True):
    """Inside a transaction, with the instance row locked: write changed task state.

    A changed state goes to the id of `version` (the seq of the history entry about to be
    written); the row fields task_state_version, task_state_previous and search_data are
    set for the caller's UPDATE. Returns the names of those fields (empty when the state
    is unchanged). Unchanged state is only touched (`touch`): stepping is interaction.
    """
    from .statestore import StoreUnavailable, get_store

    if not changed(instance):
        if touch:
            _touch(get_store(), instance.pk, instance.task_state_version)
        return ()
    state = instance.__dict__[_STATE]
    try:
        get_store().put_state(task_id(instance.pk, version), state)
    except StoreUnavailable as exc:
        raise _unavailable(instance.pk, "saved", exc) from exc
    old, older = instance.task_state_version, instance.task_state_previous
    if not instance._state.adding:
        retire(instance.pk, keep=[old], delete=[] if older in (None, old) else [older])
    # An empty version 0 may never have been written; previous=None records that undo
    # may restore it as {}, while a missing version 0 that held state is "gone".
    empty_zero = old == 0 and instance.__dict__.get(_SAVED) == _EMPTY
    instance.task_state_version, instance.task_state_previous = version, (
        None if empty_zero else old)
    instance.search_data = project(state, search_fields)
    instance.__dict__.update({_SAVED: _dump(state), _VERSION: version})
    return ("task_state_version", "task_state_previous", "search_data")


def restore(instance, version, search_fields=()):
    """Make the kept previous `version` current again (undo); the later one is retired.

    Raises TaskStateGone when that version is no longer kept (or has expired).
    """
    from .exceptions import TaskStateGone
    from .statestore import StateNotFound

    current = instance.task_state_version
    if version == current:
        return ()
    gone = TaskStateGone(f"The task state instance {instance.label} had before is no longer "
                         f"kept (it expired, or a later change replaced it); nothing was "
                         f"changed.")
    if version == 0 and instance.task_state_previous is None:
        state = {}  # version 0 was empty (see stage); there is nothing to read
    elif version != instance.task_state_previous:
        raise gone
    else:
        try:
            state = read_version(instance.pk, version, empty_zero=False)
        except StateNotFound:
            raise gone from None
    retire(instance.pk, delete=[current])
    instance.task_state_version, instance.task_state_previous = version, None
    instance.search_data = project(state, search_fields)
    instance.__dict__.update({_STATE: state, _SAVED: _dump(state), _VERSION: version})
    return ("task_state_version", "task_state_previous", "search_data")


def retire(instance_pk, keep=(), delete=()):
    """Keep/delete versions once the change commits (inside it for a transactional store)."""
    from .statestore import StoreUnavailable, get_store

    store = get_store()
    keep = [task_id(instance_pk, v) for v in keep]
    delete = [task_id(instance_pk, v) for v in delete]
    if store.transactional:
        store.retire(keep=keep, delete=delete)
        return

    def after_commit():
        try:
            store.retire(keep=keep, delete=delete)
        except StoreUnavailable as exc:
            # Nothing is lost: superseded versions are never read and expire by themselves.
            logger.warning("Could not retire task states %s of instance %s: %s",
                           delete, instance_pk, exc)
    # robust: the change is committed; any other error of a (custom) store is logged by
    # Django instead of turning the finished request into an error page.
    transaction.on_commit(after_commit, robust=True)


def _touch(store, instance_pk, version):
    from .statestore import StoreUnavailable

    try:
        store.touch_state(task_id(instance_pk, version))
    except StoreUnavailable as exc:
        raise _unavailable(instance_pk, "kept alive", exc) from exc


def delete_all(instance_pk, version, previous=None):
    """Forget an instance's task state (current and kept versions); never raises."""
    from .statestore import StoreUnavailable

    try:
        retire(instance_pk, delete=[v for v in {version, previous} if v is not None])
    except StoreUnavailable as exc:
        logger.warning("Could not delete the task state of instance %s: %s", instance_pk, exc)
