"""Operator controls on a started rollout: pause, resume (also after a halt), cancel, and the
follow-up plans: retry and revert (the rollout pages and the API call the same functions).

Which control is allowed in which state is decided by lifecycle.py alone; these functions
make the move (through lifecycle.transition) and the work that goes with it.
"""

from dataclasses import dataclass, field
from functools import partial

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from dashboard.models import Image, Rollout, RolloutServer, Server
from dashboard.rollouts import lifecycle, planning
from dashboard.rollouts.queue import enqueue_tick

CONTINUE, SKIP_FAILED, RETRY_FAILED = "continue", "skip_failed", "retry_failed"
RESUME_CHOICES = (CONTINUE, SKIP_FAILED, RETRY_FAILED)


def pause(rollout_id: int, *, by: str = lifecycle.WORKER, request: HttpRequest | None = None):
    """Stop sending after the calls in flight; jobs already running are still tracked.

    Returns whether this call paused it.
    """
    rollout = Rollout.objects.get(pk=rollout_id)
    return lifecycle.transition(rollout, "pause", by=by, request=request)


def resume(
    rollout_id: int,
    how: str = CONTINUE,
    *,
    by: str = lifecycle.WORKER,
    request: HttpRequest | None = None,
) -> tuple[bool, Rollout | None]:
    """Resume a paused or halted rollout. After a halt the operator chooses how:

    - continue: go on; the failures so far no longer count against the budget;
    - skip_failed: mark the failed servers skipped (accepted as they are), then go on;
    - retry_failed: go on, and plan a linked retry of the failed servers (returned).

    Returns (whether this call resumed it, the retry plan if one was made).
    """
    if how not in RESUME_CHOICES:
        raise ValueError(f"unknown way to resume: {how}")
    retry = None
    with transaction.atomic():
        rollout = Rollout.objects.select_for_update().get(pk=rollout_id)
        if not lifecycle.allows(rollout, "resume"):
            return False, None
        failed = rollout.servers.filter(state=RolloutServer.State.FAILED)
        if how == SKIP_FAILED:
            failed.update(
                state=RolloutServer.State.SKIPPED,
                reason_code="skipped_after_failure",
                reason_message=_("Failed; skipped by an operator on resume."),
            )
        if how == RETRY_FAILED:
            retry = _plan_retry(rollout, list(failed.values_list("server_id", flat=True)), by)
        resumed = lifecycle.transition(
            rollout,
            "resume",
            by=by,
            request=request,
            changes={
                "budget_base": rollout.servers.filter(state=RolloutServer.State.FAILED).count(),
                "halted_reason": "",
            },
            how=how,
            retry_plan=retry.pk if retry else None,
        )
        if resumed:
            transaction.on_commit(partial(enqueue_tick, rollout_id, delay=0))
    return resumed, retry


def _plan_retry(rollout: Rollout, server_ids: list[str], by: str) -> Rollout | None:
    plan, _errors = planning.plan_again(
        rollout,
        server_ids,
        created_by=by if by != lifecycle.WORKER else rollout.created_by,
        reason=(_("Retry of #%(id)s: %(reason)s") % {"id": rollout.pk, "reason": rollout.reason})[
            :500
        ],
        retry_of=rollout,
        kind=Rollout.Kind.RESUME_RETRY,
        safety=planning.Safety.for_retry(rollout),
    )
    return plan


def cancel(
    rollout_id: int, *, by: str = lifecycle.WORKER, request: HttpRequest | None = None
) -> int | None:
    """Stop what has not been sent; what is running finishes and is tracked.

    Returns how many servers will now not be sent, or None when the rollout cannot be
    cancelled (it is planned, or already over).
    """
    now = timezone.now()
    with transaction.atomic():
        rollout = Rollout.objects.select_for_update().get(pk=rollout_id)
        if not lifecycle.allows(rollout, "cancel"):
            return None
        cancelled = _cancel_unsent(rollout_id, now)
        in_flight = RolloutServer.objects.filter(
            rollout_id=rollout_id, state__in=RolloutServer.ACTIVE_STATES
        ).exists()
        action = "cancel_in_flight" if in_flight else "cancel"
        moved = lifecycle.transition(
            rollout, action, by=by, request=request, servers_cancelled=cancelled
        )
        if moved and in_flight:
            # A fresh tick chain tracks the jobs in flight to the end, even when the worker
            # that ran the rollout died with its chain.
            transaction.on_commit(partial(enqueue_tick, rollout_id, delay=0))
    return cancelled


def reject(
    rollout_id: int, rejected_by: str, reason: str, *, request: HttpRequest | None = None
) -> bool:
    """An approver turns down a rollout waiting for approval, saying why: it is cancelled
    and none of its servers is ever sent. False when it no longer waits for approval."""
    with transaction.atomic():
        rollout = Rollout.objects.select_for_update().get(pk=rollout_id)
        if not lifecycle.allows(rollout, "reject"):
            return False
        cancelled = _cancel_unsent(rollout_id, timezone.now())
        return lifecycle.transition(
            rollout,
            "reject",
            by=rejected_by,
            request=request,
            reason=reason[:500],
            servers_cancelled=cancelled,
            planned_by=rollout.created_by,
        )


def _cancel_unsent(rollout_id: int, now) -> int:
    """The rows not sent yet (pending, or still planned) become cancelled; how many."""
    return RolloutServer.objects.filter(
        rollout_id=rollout_id,
        state__in=[RolloutServer.State.PENDING, RolloutServer.State.PLANNED],
    ).update(state=RolloutServer.State.CANCELLED, finished_at=now)


# Why no follow-up plan was made (stable codes; the API answers them as they are).
STATE_CONFLICT = "rollout.state_conflict"  # the rollout's state does not allow it
NOTHING_TO_CHANGE = planning.NOTHING_TO_CHANGE  # no server to retry, or none to put back
INVALID = "validation.invalid"  # the servers named are refused (`errors` says why)


@dataclass(frozen=True)
class FollowUp:
    """A retry or revert of a rollout: the new plan, or why there is none."""

    plan: Rollout | None
    servers: int = 0  # how many servers were asked for
    refused: str = ""
    errors: list[str] = field(default_factory=list)  # what to tell the person, when refused


def retry(rollout_id: int, server_ids: list[str] | None = None, *, by: str) -> FollowUp:
    """Plan the failed and unknown servers (or `server_ids`) again, linked to this rollout.

    The plan has the rollout's image and options and goes through the same selection
    checks as an operator's choice. Confirm it like any plan.
    """
    rollout = Rollout.objects.get(pk=rollout_id)
    if not lifecycle.allows(rollout, "retry"):
        return FollowUp(None, refused=STATE_CONFLICT)
    ids = server_ids or list(
        rollout.servers.filter(
            state__in=[RolloutServer.State.FAILED, RolloutServer.State.UNKNOWN]
        ).values_list("server_id", flat=True)
    )
    if not ids:
        return FollowUp(
            None, refused=NOTHING_TO_CHANGE, errors=[_("Nothing to retry: no server failed.")]
        )
    plan, errors = planning.plan_again(
        rollout,
        ids,
        created_by=by,
        reason=(_("Retry of #%(id)s: %(reason)s") % {"id": rollout.pk, "reason": rollout.reason})[
            :500
        ],
        retry_of=rollout,
        kind=Rollout.Kind.RETRY,
        safety=planning.Safety.for_retry(rollout),
    )
    if plan is None:
        return FollowUp(None, len(ids), refused=INVALID, errors=errors)
    return FollowUp(plan, len(ids))


def revert(rollout_id: int, server_ids: list[str] | None = None, *, by: str) -> FollowUp:
    """Plan the succeeded servers (or `server_ids`) back to the images they ran before.

    A server with no recorded previous image is left out; when that leaves nothing, no plan
    is kept. Servers whose previous image is gone or no longer compatible show up blocked in
    the plan, with the reason, so the operator sees it before confirming.
    """
    rollout = Rollout.objects.get(pk=rollout_id)
    if not lifecycle.allows(rollout, "revert"):
        return FollowUp(None, refused=STATE_CONFLICT)
    chosen = [i for i in (server_ids or [])[: settings.ROLLOUT_MAX_SERVERS] if i]
    if not server_ids:
        chosen = list(
            rollout.servers.filter(state=RolloutServer.State.SUCCEEDED).values_list(
                "server_id", flat=True
            )
        )
    with transaction.atomic():
        plan = _plan_revert(rollout, chosen, by=by)
        if not plan.servers.exists():
            plan.delete()
            return FollowUp(
                None,
                len(chosen),
                refused=NOTHING_TO_CHANGE,
                errors=[_("None of these servers has a recorded previous image.")],
            )
    return FollowUp(plan, len(chosen))


def _plan_revert(rollout: Rollout, server_ids: list[str], *, by: str) -> Rollout:
    rows = rollout.servers.filter(server_id__in=server_ids).exclude(previous_image_id="")
    previous = dict(rows.values_list("server_id", "previous_image_id"))
    servers = list(Server.objects.select_related("group").filter(id__in=list(previous)))
    images = planning.image_map(rollout.project_id)
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
        reason=(_("Revert of #%(id)s: %(reason)s") % {"id": rollout.pk, "reason": rollout.reason})[
            :500
        ],
        retry_of=rollout,
        kind=Rollout.Kind.REVERT,
        # Undone with the care it was done with: its waves, soak, budget and users' handling.
        safety=planning.Safety.for_retry(rollout),
        preset=rollout.preset,
        use_maintenance=rollout.use_maintenance,  # not the agent upgrade: a put-back only
    )
