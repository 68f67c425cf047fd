"""Background tasks: thin `@task` wrappers around plain functions that tests call directly.

Tasks receive ids only; the rows in the database are the truth, not task results. A task that
lower layers enqueue lives beside the code that enqueues it (they must not import this module):
`start_rollout` and `tick_rollout` in dashboard/rollouts/queue.py, `sync_inventory` in
dashboard/inventory.py, `deliver_notification` in dashboard/notify.py. They are listed here so
every task has one address; a queued row that names a task by its older path here
(`dashboard.tasks.sync_inventory`) still finds it.
"""

from django.tasks import task

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
    """Proves a worker is consuming the queue (deployment smoke checks): the task's own result
    turning SUCCESSFUL, with `worker_id` as its value, is the record.

    It writes no WorkerHeartbeat row: those are the workers' own (dashboard/heartbeat.py), and
    a row written once would look like a worker that died a few beats later, on the overview
    and in /healthz for an hour.
    """
    return worker_id
