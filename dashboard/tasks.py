"""Background tasks: thin `@task` wrappers around plain functions that tests call directly.

Tasks receive ids only; the rows in the database are the truth, not task results. A task that
lower layers enqueue lives beside the code that enqueues it (they must not import this module):
`start_rollout` and `tick_rollout` in dashboard/rollouts/queue.py, `sync_inventory` in
dashboard/inventory.py, `deliver_notification` in dashboard/notify.py. They are listed here so
every task has one address; a queued row that names a task by its older path here
(`dashboard.tasks.sync_inventory`) still finds it.
"""

from django.tasks import task
from django.utils import timezone

from dashboard import heartbeat
from dashboard.inventory import sync_inventory
from dashboard.notify import deliver_notification
from dashboard.rollouts.queue import start_rollout, tick_rollout

__all__ = [
    "deliver_notification",
    "record_heartbeat",
    "start_rollout",
    "sync_inventory",
    "tick_rollout",
]


@task()
def record_heartbeat(worker_id: str) -> str:
    """Proves a worker is consuming the queue (used by deployment smoke checks)."""
    heartbeat.beat(worker_id, timezone.now())
    return worker_id
