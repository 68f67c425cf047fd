"""GET /healthz: the only view reachable without an identity. Nothing secret in it."""

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from dashboard.models import WorkerHeartbeat
from dashboard.roles import public


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False


def _worker_age() -> float | None:
    beat = WorkerHeartbeat.objects.order_by("-beat_at").values_list("beat_at", flat=True).first()
    return None if beat is None else round((timezone.now() - beat).total_seconds(), 1)


def _cloud_reachable() -> bool:
    from dashboard.cloud import client

    return client.reachable()


@public
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    database = _database_ok()
    worker_age = _worker_age() if database else None
    cloud = _cloud_reachable()
    worker_ok = worker_age is not None and worker_age <= settings.WORKER_HEARTBEAT_MAX_AGE
    healthy = database and worker_ok and cloud
    body = {
        "status": "ok" if healthy else "degraded",
        "database": database,
        "worker_heartbeat_age_seconds": worker_age,
        "worker": worker_ok,
        "cloud_reachable": cloud,
    }
    return JsonResponse(body, status=200 if healthy else 503)
