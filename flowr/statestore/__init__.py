"""Pluggable task-state stores chosen by FLOWS_STATE_STORE."""
from .base import (
    BaseStateStore, StateNotFound, StateNotSerialisable, StoreUnavailable, TaskStateUnavailable,
)

__all__ = ["BaseStateStore", "StateNotFound", "StateNotSerialisable", "StoreUnavailable",
           "TaskStateUnavailable", "get_store"]

_stores = {}


def get_store():
    """The configured store, one instance per module name and process."""
    from .. import config

    name = config.get("FLOWS_STATE_STORE")
    store = _stores.get(name)
    if store is None:
        store = _stores[name] = _store_class(name)()
    return store


def _store_class(name):
    """The StateStore class of module `name`, or raise ImproperlyConfigured saying why."""
    from importlib import import_module

    from django.core.exceptions import ImproperlyConfigured

    # The module name comes from settings (code), never from data.
    try:
        module = import_module(name)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"FLOWS_STATE_STORE = {name!r} cannot be imported: {exc}") from exc
    cls = getattr(module, "StateStore", None)
    if not (isinstance(cls, type) and issubclass(cls, BaseStateStore)):
        raise ImproperlyConfigured(
            f"FLOWS_STATE_STORE = {name!r} has no class StateStore extending "
            f"flowr.statestore.base.BaseStateStore.")
    missing = [m for m in ("get_state", "put_state")
               if getattr(cls, m) is getattr(BaseStateStore, m)]
    if missing:
        raise ImproperlyConfigured(
            f"FLOWS_STATE_STORE = {name!r}: its StateStore does not implement "
            f"{' and '.join(missing)}.")
    return cls
