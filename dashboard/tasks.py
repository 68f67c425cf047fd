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


@task()
def sync_inventory(run_id: int) -> str:
    from dashboard import inventory

    return inventory.run_sync(run_id).state


@task()
def submit_rollout(rollout_id: int) -> str:
    from dashboard.rollouts import submit

    return submit.submit(rollout_id)


@task()
def refresh_rollout(rollout_id: int, token: str = "") -> str:
    from dashboard.rollouts import engine

    return engine.tick(rollout_id, token=token)


@task()
def deliver_notification(event: str, rollout_id: int) -> dict:
    from dashboard import notify

    return notify.deliver(event, rollout_id)
