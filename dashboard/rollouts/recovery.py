"""Worker duty: pick up rollouts whose worker died, so nothing an operator confirmed is lost."""

from datetime import timedelta

from django.utils import timezone

from dashboard.models import Rollout, RolloutServer
from dashboard.rollouts.planning import enqueue_submit
from dashboard.rollouts.submit import enqueue_refresh

QUIET = timedelta(minutes=2)


def resume_stalled() -> None:
    """Re-enqueue submission or refresh for running rollouts that made no progress lately.

    Safe to run on every worker at once: claims stop a row from being sent twice, and a new
    refresh chain retires the old one.
    """
    quiet_since = timezone.now() - QUIET
    for rollout in Rollout.objects.filter(state=Rollout.State.RUNNING, updated_at__lt=quiet_since):
        rows = rollout.servers
        if rows.filter(updated_at__gte=quiet_since).exists():
            continue
        if rows.filter(state=RolloutServer.State.PENDING).exists():
            enqueue_submit(rollout.pk)
        enqueue_refresh(rollout.pk, delay=0)
        Rollout.objects.filter(pk=rollout.pk).update(updated_at=timezone.now())
    for rollout_id in Rollout.objects.filter(
        state=Rollout.State.QUEUED, updated_at__lt=quiet_since
    ).values_list("pk", flat=True):
        enqueue_submit(rollout_id)
        Rollout.objects.filter(pk=rollout_id).update(updated_at=timezone.now())
