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
    # Deadlines (flowr.timers): a failing timed step is retried this many times, the
    # first retry after FLOWR_TIMER_RETRY_DELAY seconds, each next one twice as late;
    # then it becomes an incident.
    "FLOWR_TIMER_RETRIES": 3,
    "FLOWR_TIMER_RETRY_DELAY": 30,
    # A Flowr task left RUNNING this many seconds is taken for abandoned by a killed
    # worker and queued again (safe: firing checks the instance's position).
    "FLOWR_TIMER_LEASE": 120,
    # Seconds between two runs of the recurring sweep task that re-queues them.
    "FLOWR_TIMER_SWEEP_INTERVAL": 60,
    # /healthz/timers answers 503 once a due task has waited this many seconds.
    "FLOWR_TIMERS_LATE_AFTER": 300,
}


def get(name):
    """The setting `name`, or its default."""
    return getattr(settings, name, DEFAULTS[name])


def task_idle_timeout():
    """Seconds a task state is kept without interaction (0 or None: forever)."""
    value = get("FLOWS_TASK_IDLE_TIMEOUT")
    return int(value) if value else 0


def seconds(name):
    """A Flowr setting holding a number of seconds, as a float (never negative)."""
    return max(0.0, float(get(name)))
