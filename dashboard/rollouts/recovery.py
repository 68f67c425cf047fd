"""Worker duty: pick up rollouts whose worker died, so nothing an operator confirmed is lost."""

from datetime import timedelta

from django.utils import timezone

from dashboard.models import Rollout
from dashboard.rollouts.queue import TICKING, enqueue_start, enqueue_tick

QUIET = timedelta(minutes=2)


def resume_stalled() -> None:
    """Start a new tick chain for started rollouts that made no progress lately, and enqueue
    the start of queued ones again.

    Safe to run on every worker at once: claims stop a row from being sent twice, a new tick
    chain retires the old one, and a second start of a running rollout only ticks it.
    """
    quiet_since = timezone.now() - QUIET
    for rollout in Rollout.objects.filter(state__in=TICKING, updated_at__lt=quiet_since):
        if rollout.servers.filter(updated_at__gte=quiet_since).exists():
            continue
        enqueue_tick(rollout.pk, delay=0)  # also moves updated_at: not picked again at once
    for rollout_id in Rollout.objects.filter(
        state=Rollout.State.QUEUED, updated_at__lt=quiet_since
    ).values_list("pk", flat=True):
        enqueue_start(rollout_id)
        Rollout.objects.filter(pk=rollout_id).update(updated_at=timezone.now())
