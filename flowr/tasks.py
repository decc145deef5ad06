"""Flowr's background tasks (Django's Tasks API; run by `manage.py db_worker`).

Thin wrappers: the work is in flowr.timers and flowr.taskqueue. Each returns a small
JSON result ({"result": "fired" | "stale" | "retry" | "incident" | "reminded", ...})
that the database backend keeps, so stale timers can be counted. Every task here is
idempotent, which is what lets flowr.taskqueue run one again after a worker crash.
"""
from django_tasks import task

from . import taskqueue, timers


@task()
def fire_timeout(instance_id, position, state_key, target_key, due_after, attempt=1):
    """Step an instance along its state's timeout, if it is still at `position`."""
    taskqueue.keep_sweeping()
    return timers.fire_timeout(instance_id, position, state_key, target_key, due_after,
                               attempt)


@task()
def send_reminder(instance_id, position, state_key):
    """Remind about an instance still at `position`: a history note and instance_due."""
    return timers.remind(instance_id, position, state_key)


@task()
def sweep():
    """Re-queue Flowr tasks abandoned by killed workers; schedule the next sweep."""
    taskqueue.ensure_sweep()  # first: a worker killed during this sweep leaves the next one
    requeued = taskqueue.requeue_abandoned()
    return {"result": "swept", "requeued": requeued}
