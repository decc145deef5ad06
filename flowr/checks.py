"""System checks: the configured task-state store and its settings must be usable."""
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from . import config


@checks.register()
def check_state_store(app_configs, **kwargs):
    """flowr.E001: FLOWS_STATE_STORE names a module with a proper StateStore class."""
    from .statestore import get_store

    try:
        get_store()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="flowr.E001",
                             hint="Name a module with a StateStore(BaseStateStore) class.")]
    return []


@checks.register()
def check_store_settings(app_configs, **kwargs):
    """flowr.E002: the idle timeout and Redis numbers are non-negative integers."""
    errors = []
    for name in ("FLOWS_TASK_IDLE_TIMEOUT", "FLOWS_REDIS_STATE_STORE_PORT",
                 "FLOWS_REDIS_STATE_STORE_DB"):
        value = config.get(name)
        try:
            valid = value is None or int(value) >= 0
        except (TypeError, ValueError):
            valid = False
        if not valid:
            errors.append(checks.Error(
                f"{name} = {value!r} is not a non-negative whole number.", id="flowr.E002",
                hint="Seconds for FLOWS_TASK_IDLE_TIMEOUT (0: never expire); numbers for "
                     "the Redis port and DB."))
    return errors
