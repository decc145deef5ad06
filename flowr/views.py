"""Non-admin views: the health endpoints."""
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import config


@require_GET
@never_cache
def healthz(request):
    """JSON health of the database and the task-state store: 200 healthy, 503 otherwise.

    It also reports the timers waiting for a worker ("timers"), without changing the
    status: a dead worker must not take the web servers out of a load balancer.
    /healthz/timers is the check that fails for that.
    """
    from .statestore import get_store

    report = {"database": "ok", "state_store": "ok"}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - report, never crash
        report["database"] = f"error: {type(exc).__name__}: {exc}"
    try:
        get_store().health()
    except Exception as exc:  # noqa: BLE001
        report["state_store"] = f"error: {exc}"
    healthy = all(v == "ok" for v in report.values())
    if report["database"] == "ok":
        report["timers"] = _timers(abandoned=False)
    report["status"] = "ok" if healthy else "error"
    return JsonResponse(report, status=200 if healthy else 503)


def _timers(abandoned):
    """Due tasks waiting for a worker (and, with `abandoned`, tasks of killed workers)."""
    from . import taskqueue

    try:
        report = taskqueue.waiting_report()
        if abandoned:
            report.update(taskqueue.abandoned_report())
    except Exception as exc:  # noqa: BLE001 - e.g. the queue table is not migrated yet
        return {"error": f"{type(exc).__name__}: {exc}", "late": True}
    limit = config.seconds("FLOWR_TIMERS_LATE_AFTER")
    report["late"] = report["oldest_wait_s"] > limit or (
        report.get("oldest_abandoned_s", 0) > limit)
    report["late_after_s"] = limit
    return report


@require_GET
@never_cache
def healthz_timers(request):
    """For monitoring the workers: 503 when a due task has waited past
    FLOWR_TIMERS_LATE_AFTER seconds (no worker running, or all of them stuck)."""
    report = _timers(abandoned=True)
    report["status"] = "late" if report["late"] else "ok"
    return JsonResponse(report, status=503 if report["late"] else 200)
