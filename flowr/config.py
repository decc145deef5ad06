"""Every Flowr setting with its default, read when used (so override_settings works).

Names kept from django-flows: "for all defaults, see the config module".
"""
from django.conf import settings

DEFAULTS = {
    "FLOWS_STATE_STORE": "flowr.statestore.django_store",
    "FLOWS_REDIS_STATE_STORE_DB": 0,
    "FLOWS_REDIS_STATE_STORE_HOST": "localhost",
    "FLOWS_REDIS_STATE_STORE_PORT": 6379,
    "FLOWS_REDIS_STATE_STORE_USER": "",
    "FLOWS_REDIS_STATE_STORE_PASSWORD": "",
    # Seconds to wait for a Redis answer, and for a new connection to Redis (then
    # StoreUnavailable): task states are small, so a Redis slower than this is stalled.
    "FLOWS_REDIS_STATE_STORE_SOCKET_TIMEOUT": 0.5,
    "FLOWS_REDIS_STATE_STORE_CONNECT_TIMEOUT": 0.5,
    "FLOWS_TASK_IDLE_TIMEOUT": 20 * 60,
    "FLOWR_IMPORT_MAX_BYTES": 2 * 1024 * 1024,
    "FLOWR_IMPORT_MAX_STATES": 2000,
    # Import uploads wait for their confirmation in this folder (default: a
    # "flowr-imports" folder in the system's temp dir), at most this many seconds.
    "FLOWR_IMPORT_TMP_DIR": "",
    "FLOWR_IMPORT_TMP_MAX_AGE": 60 * 60,
}


def get(name):
    """The setting `name`, or its default."""
    return getattr(settings, name, DEFAULTS[name])


def task_idle_timeout():
    """Seconds a task state is kept without interaction (0 or None: forever)."""
    value = get("FLOWS_TASK_IDLE_TIMEOUT")
    return int(value) if value else 0
