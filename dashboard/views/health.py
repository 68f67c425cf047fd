"""GET /healthz: the only view reachable without an identity. Nothing secret in it.

It answers from the database alone: the workers' heartbeats and their last cloud contact. It
never calls the cloud itself, so a probe every second costs the cloud nothing and a cloud that
hangs cannot hang the probe. Plain HTTP is exempt from the HTTPS redirect (settings).
"""

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from dashboard import heartbeat
from dashboard.roles import public


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False


def _when(value) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


@public
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    database = _database_ok()
    body: dict = {"database": database}
    healthy = database
    if database:
        workers = heartbeat.workers()
        live = [w for w in workers if w.state == "live"]
        youngest = min((w.beat_age_seconds for w in live), default=None)
        worker_ok = youngest is not None and youngest <= settings.WORKER_HEARTBEAT_MAX_AGE
        cloud = heartbeat.cloud()
        body |= {
            "worker": worker_ok,
            "worker_heartbeat_age_seconds": youngest,
            # Counts only: worker names carry host names, which are nobody's business here.
            "workers": {
                state: sum(1 for w in workers if w.state == state)
                for state in ("live", "dead", "stopped")
            },
            # From the workers' last contact; None until a worker has talked to the cloud.
            "cloud_reachable": cloud.reachable,
            "cloud_unreachable_since": _when(cloud.unreachable_since),
            "cloud_last_ok_at": _when(cloud.last_ok_at),
            "cloud_last_failed_at": _when(cloud.last_failed_at),
        }
        healthy = worker_ok and cloud.reachable is not False
    body = {"status": "ok" if healthy else "degraded", **body, "at": _when(timezone.now())}
    return JsonResponse(body, status=200 if healthy else 503)
