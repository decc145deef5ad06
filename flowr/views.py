"""Non-admin views: only the health endpoint."""
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


@require_GET
@never_cache
def healthz(request):
    """JSON health of the database and the task-state store: 200 healthy, 503 otherwise."""
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
    report["status"] = "ok" if healthy else "error"
    return JsonResponse(report, status=200 if healthy else 503)
