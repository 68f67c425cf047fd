"""Operator controls on a rollout: pause, resume (also after a halt), cancel, revert."""

from django.db import transaction
from django.utils import timezone

from dashboard.models import Image, Rollout, RolloutServer, RolloutWave, Server
from dashboard.rollouts import planning
from dashboard.rollouts.submit import enqueue_refresh

CONTINUE, SKIP_FAILED, RETRY_FAILED = "continue", "skip_failed", "retry_failed"
RESUME_CHOICES = (CONTINUE, SKIP_FAILED, RETRY_FAILED)


def pause(rollout_id: int) -> bool:
    """Stop sending after the calls in flight; jobs already running are still tracked."""
    return bool(
        Rollout.objects.filter(pk=rollout_id, state=Rollout.State.RUNNING).update(
            state=Rollout.State.PAUSED
        )
    )


def resume(rollout_id: int, how: str = CONTINUE, *, by: str = "") -> Rollout | None:
    """Resume a paused or halted rollout. After a halt the operator chooses how:

    - continue: go on; the failures so far no longer count against the budget;
    - skip_failed: mark the failed servers skipped (accepted as they are), then go on;
    - retry_failed: go on, and plan a linked retry of the failed servers (returned).
    """
    if how not in RESUME_CHOICES:
        raise ValueError(f"unknown way to resume: {how}")
    retry = None
    with transaction.atomic():
        rollout = Rollout.objects.select_for_update().get(pk=rollout_id)
        if rollout.state not in (Rollout.State.PAUSED, Rollout.State.HALTED):
            return None
        failed = rollout.servers.filter(state=RolloutServer.State.FAILED)
        if how == SKIP_FAILED:
            failed.update(
                state=RolloutServer.State.SKIPPED,
                reason_code="skipped_after_failure",
                reason_message="Failed; skipped by an operator on resume.",
            )
        if how == RETRY_FAILED:
            retry = _plan_retry(rollout, list(failed.values_list("server_id", flat=True)), by)
        Rollout.objects.filter(pk=rollout.pk).update(
            state=Rollout.State.RUNNING,
            budget_base=rollout.servers.filter(state=RolloutServer.State.FAILED).count(),
            halted_reason="",
        )
    enqueue_refresh(rollout_id, delay=0)
    return retry


def _plan_retry(rollout: Rollout, server_ids: list[str], by: str) -> Rollout | None:
    plan, _form = planning.plan_again(
        rollout,
        server_ids,
        created_by=by or rollout.created_by,
        reason=f"Retry of #{rollout.pk}: {rollout.reason}"[:500],
        retry_of=rollout,
    )
    return plan


def cancel(rollout_id: int) -> int:
    """Stop what has not been sent; what is running finishes and is tracked.

    Returns how many servers will now not be sent.
    """
    now = timezone.now()
    with transaction.atomic():
        Rollout.objects.filter(pk=rollout_id).update(cancel_requested=True)
        cancelled = RolloutServer.objects.filter(
            rollout_id=rollout_id,
            state__in=[RolloutServer.State.PENDING, RolloutServer.State.PLANNED],
        ).update(state=RolloutServer.State.CANCELLED, finished_at=now)
        RolloutWave.objects.filter(
            rollout_id=rollout_id,
            state__in=[
                RolloutWave.State.PENDING,
                RolloutWave.State.DRAINING,
                RolloutWave.State.LOGGING_OFF,
            ],
        ).update(state=RolloutWave.State.CANCELLED, finished_at=now)
        in_flight = RolloutServer.objects.filter(
            rollout_id=rollout_id, state__in=RolloutServer.ACTIVE_STATES
        ).exists()
        if not in_flight:
            Rollout.objects.filter(pk=rollout_id).exclude(state__in=Rollout.FINAL_STATES).update(
                state=Rollout.State.CANCELLED, finished_at=now
            )
    return cancelled


def revert(rollout_id: int, server_ids: list[str], *, by: str, reason: str) -> Rollout:
    """Plan a change back to each server's previous image (recorded when it was sent).

    Servers whose previous image is gone or no longer compatible show up blocked in the
    plan, with the reason, so the operator sees it before confirming.
    """
    rollout = Rollout.objects.get(pk=rollout_id)
    rows = rollout.servers.filter(server_id__in=server_ids).exclude(previous_image_id="")
    previous = dict(rows.values_list("server_id", "previous_image_id"))
    servers = list(Server.objects.select_related("group").filter(id__in=list(previous)))
    images = planning.image_map()
    targets = {
        s.id: images.get(previous[s.id])
        or Image(id=previous[s.id], name=previous[s.id], status="gone", synced_at=timezone.now())
        for s in servers
    }
    return planning.create_plan(
        created_by=by,
        servers=servers,
        target=None,
        targets=targets,
        images=images,
        reason=reason,
        retry_of=rollout,
        kind="revert",
    )
