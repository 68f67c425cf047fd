"""Worker duty: pick up rollouts whose worker died, so nothing an operator confirmed is lost.

Every non-final rollout with work is covered: queued ones are started again; running, paused,
halted and cancelling ones whose tick chain went quiet get a new chain (the slowest a live chain
ticks is a minute: the backoff while the cloud fails, or a stopped rollout with nothing in
flight). Tasks of a dead worker are put back by the heartbeat first; this is the backstop for a
chain that ended for any other reason.
"""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from dashboard.models import Rollout
from dashboard.rollouts.engine import MAX_BACKOFF
from dashboard.rollouts.queue import TICKING, enqueue_start, enqueue_tick

QUIET = timedelta(minutes=2)


def quiet_after() -> timedelta:
    """How long a live chain can stay silent, with a margin: longer means it is lost."""
    slowest = max(MAX_BACKOFF, settings.ROLLOUT_IDLE_TICK_SECONDS)
    return max(QUIET, timedelta(seconds=2 * slowest))


def resume_stalled() -> None:
    """Start a new tick chain for started rollouts that made no progress lately, and enqueue
    the start of queued ones again.

    Safe to run on every worker at once: claims stop a row from being sent twice, a new tick
    chain retires the old one, and a second start of a running rollout only ticks it.
    """
    quiet_since = timezone.now() - quiet_after()
    for rollout in Rollout.objects.filter(state__in=TICKING, updated_at__lt=quiet_since):
        if rollout.servers.filter(updated_at__gte=quiet_since).exists():
            continue
        enqueue_tick(rollout.pk, delay=0)  # also moves updated_at: not picked again at once
    for rollout_id in Rollout.objects.filter(
        state=Rollout.State.QUEUED, updated_at__lt=quiet_since
    ).values_list("pk", flat=True):
        enqueue_start(rollout_id)
        Rollout.objects.filter(pk=rollout_id).update(updated_at=timezone.now())
