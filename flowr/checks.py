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


@checks.register(checks.Tags.security, deploy=True)
def check_demo_login(app_configs, **kwargs):
    """flowr.W001 (check --deploy): the demo login must not work while DEBUG is off."""
    from django.conf import settings

    if settings.DEBUG or not _database_exists():
        return []
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import check_password
    from django.db import DatabaseError

    from .demo.setup import DEMO_PASSWORD, DEMO_USERNAME

    user_model = get_user_model()
    try:
        user = user_model._default_manager.filter(
            **{user_model.USERNAME_FIELD: DEMO_USERNAME}, is_active=True).first()
    except DatabaseError:  # not migrated yet: no demo login either
        return []
    # hashers.check_password never upgrades the stored hash: a check writes nothing.
    if user is None or not check_password(DEMO_PASSWORD, user.password):
        return []
    return [checks.Warning(
        f"The demo login '{DEMO_USERNAME}' / '{DEMO_PASSWORD}' (published in the README) "
        f"works while DEBUG is off: anyone who reads it can log in"
        f"{' as a superuser' if user.is_superuser else ''}.",
        hint=f"Delete the user '{DEMO_USERNAME}' (admin → Users) or give it a new password.",
        id="flowr.W001")]


def _database_exists():
    """False for a SQLite file that does not exist (a check must not create it)."""
    import os

    from django.db import connection

    name = str(connection.settings_dict.get("NAME") or "")
    if connection.vendor != "sqlite" or name.startswith("file:") or ":memory:" in name:
        return True
    return os.path.exists(name)


@checks.register()
def check_timer_settings(app_configs, **kwargs):
    """flowr.E003: the deadline settings are non-negative numbers (retries whole)."""
    errors = []
    for name in ("FLOWR_TIMER_RETRIES", "FLOWR_TIMER_RETRY_DELAY", "FLOWR_TIMER_LEASE",
                 "FLOWR_TIMER_SWEEP_INTERVAL", "FLOWR_TIMERS_LATE_AFTER"):
        value = config.get(name)
        try:
            valid = float(value) >= 0 and (name != "FLOWR_TIMER_RETRIES"
                                           or float(value) == int(value))
        except (TypeError, ValueError):
            valid = False
        if not valid:
            errors.append(checks.Error(
                f"{name} = {value!r} is not a non-negative number.", id="flowr.E003",
                hint="Seconds (retries: a whole number); see README, Deadlines."))
    return errors
