"""Background tasks: thin `@task` wrappers around plain functions that tests call directly.

Tasks receive ids only; the rows in the database are the truth, not task results. The rollout
tasks, `start_rollout` and `tick_rollout`, live in dashboard/rollouts/queue.py beside the code
that enqueues them (the rollout domain must not import this module); they are listed here so
every task has one address.
"""

from django.tasks import task
from django.utils import timezone

from dashboard import heartbeat, inventory, notify
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


@task()
def sync_inventory(run_id: int) -> str:
    return inventory.run_sync(run_id).state


@task()
def deliver_notification(event: str, rollout_id: int) -> dict:
    return notify.deliver(event, rollout_id)
