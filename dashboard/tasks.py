"""Background tasks: thin `@task` wrappers around plain functions that tests call directly.

Tasks receive ids only; the rows in the database are the truth, not task results.
"""

from django.tasks import task

from dashboard import heartbeat


@task()
def record_heartbeat(worker_id: str) -> str:
    """Proves a worker is consuming the queue (used by deployment smoke checks)."""
    from django.utils import timezone

    heartbeat.beat(worker_id, timezone.now())
    return worker_id
