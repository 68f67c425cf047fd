"""Operator controls on a running rollout."""

from django.db import transaction
from django.utils import timezone

from dashboard.models import Rollout, RolloutServer


def cancel(rollout_id: int) -> int:
    """Stop what has not been sent; what is running finishes and is tracked.

    Returns how many servers will now not be sent.
    """
    with transaction.atomic():
        Rollout.objects.filter(pk=rollout_id).update(cancel_requested=True)
        cancelled = RolloutServer.objects.filter(
            rollout_id=rollout_id,
            state__in=[RolloutServer.State.PENDING, RolloutServer.State.PLANNED],
        ).update(state=RolloutServer.State.CANCELLED, finished_at=timezone.now())
        in_flight = RolloutServer.objects.filter(
            rollout_id=rollout_id, state__in=RolloutServer.ACTIVE_STATES
        ).exists()
        if not in_flight:
            Rollout.objects.filter(pk=rollout_id).exclude(state__in=Rollout.FINAL_STATES).update(
                state=Rollout.State.CANCELLED, finished_at=timezone.now()
            )
    return cancelled
