"""Flowr's side of the task queue (django-tasks' database backend): watch it, recover it.

`manage.py db_worker` (django-tasks-db) claims a task by marking it RUNNING in a
transaction of its own (SELECT … FOR UPDATE SKIP LOCKED on PostgreSQL, an EXCLUSIVE
transaction on SQLite), commits, then runs it. A worker killed mid-task leaves it
RUNNING for ever (django-tasks-db issue #5: there is no lease). Flowr's tasks are
idempotent (a timer re-checks the instance's position under its row lock), so a Flowr
task RUNNING for longer than FLOWR_TIMER_LEASE is put back to READY by the recurring
`flowr.tasks.sweep` task. Other applications' tasks are never touched.

The sweep re-enqueues itself every FLOWR_TIMER_SWEEP_INTERVAL seconds. `ensure_sweep`
starts it (release and setupdemo run `manage.py timers --ensure-sweep`), and each
worker process makes sure it is queued while it fires timers (`keep_sweeping`).
"""
import time
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Case, Count, F, Min, Q, When
from django.utils import timezone

from . import config

FIRE_PATH, REMIND_PATH, SWEEP_PATH = ("flowr.tasks.fire_timeout", "flowr.tasks.send_reminder",
                                      "flowr.tasks.sweep")
TASK_PATHS = (FIRE_PATH, REMIND_PATH, SWEEP_PATH)
_SWEEP_LOCK = 0x466C6F77  # PostgreSQL advisory lock key ("Flow") serialising ensure_sweep
_last_ensured = [float("-inf")]  # monotonic time this process last ensured a sweep


def results():
    """The task framework's result rows (django_tasks_db.DBTaskResult objects)."""
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects


def _status():
    from django_tasks_db.compat import TaskResultStatus

    return TaskResultStatus


# -- recovery ---------------------------------------------------------------------

def requeue_abandoned(now=None):
    """Put Flowr tasks RUNNING longer than the lease back to READY; returns how many.

    Their run_after is kept, so the time they were due still shows how late they are.
    """
    cutoff = (now or timezone.now()) - timedelta(seconds=config.seconds("FLOWR_TIMER_LEASE"))
    status = _status()
    return results().filter(task_path__in=TASK_PATHS, status=status.RUNNING,
                            started_at__lt=cutoff).update(status=status.READY)


def ensure_sweep(now=None):
    """Make sure exactly one sweep task is waiting (enqueue or de-duplicate); True if enqueued."""
    from . import tasks

    now = now or timezone.now()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # SQLite needs nothing: its IMMEDIATE transactions already run one at a time.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SWEEP_LOCK])
        waiting = list(results().filter(task_path=SWEEP_PATH, status=_status().READY)
                       .order_by("run_after").values_list("pk", flat=True))
        if len(waiting) > 1:
            results().filter(pk__in=waiting[1:]).delete()
        if not waiting:
            interval = config.seconds("FLOWR_TIMER_SWEEP_INTERVAL")
            tasks.sweep.using(run_after=now + timedelta(seconds=interval)).enqueue()
    _last_ensured[0] = time.monotonic()
    return not waiting


def keep_sweeping():
    """Ensure a sweep is queued, at most once per sweep interval in this process."""
    if time.monotonic() - _last_ensured[0] >= config.seconds("FLOWR_TIMER_SWEEP_INTERVAL"):
        ensure_sweep()


# -- watching ---------------------------------------------------------------------

def waiting_report(now=None):
    """Tasks due but not yet claimed by a worker: how many, and the oldest wait (seconds)."""
    from django_tasks_db.models import get_date_max

    now = now or timezone.now()
    never = get_date_max()  # run_after of tasks enqueued without one
    due = Case(When(run_after=never, then=F("enqueued_at")), default=F("run_after"))
    row = (results().filter(status=_status().READY)
           .filter(Q(run_after__lte=now) | Q(run_after=never))
           .aggregate(count=Count("pk"), oldest=Min(due)))
    oldest = row["oldest"]
    return {"waiting": row["count"],
            "oldest_wait_s": round(max(0.0, (now - oldest).total_seconds()), 1) if oldest
            else 0.0}


def abandoned_report(now=None):
    """Flowr tasks RUNNING past the lease (a killed worker not yet recovered)."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=config.seconds("FLOWR_TIMER_LEASE"))
    row = (results().filter(task_path__in=TASK_PATHS, status=_status().RUNNING,
                            started_at__lt=cutoff)
           .aggregate(count=Count("pk"), oldest=Min("started_at")))
    oldest = row["oldest"]
    return {"abandoned": row["count"],
            "oldest_abandoned_s": round((now - oldest).total_seconds(), 1) if oldest else 0.0}


def counts():
    """Flowr's task rows by task and status, and timer results (fired, stale, …)."""
    rows = (results().filter(task_path__in=TASK_PATHS).values_list("task_path", "status")
            .annotate(n=Count("pk")).order_by("task_path", "status"))
    by_status = {(path.rsplit(".", 1)[1], status): n for path, status, n in rows}
    outcomes = (results().filter(task_path=FIRE_PATH, status=_status().SUCCESSFUL)
                .values_list("return_value__result").annotate(n=Count("pk")))
    return by_status, {str(result): n for result, n in outcomes}
