"""Rollouts: read one (servers, waves, timeline), list them, and act on them.

Each action calls what the rollout page's button calls (planning.approve, control.pause,
resume, cancel, retry, revert); lifecycle.py alone decides which state allows
which action, and a refused one is a 409 `rollout.state_conflict` carrying the state.

A rollout belongs to one project. Acting on it needs the role in that project (global, or
granted there; an audited 403 otherwise); a token scoped to another project does not see it
at all (404).
"""

from django.http import HttpRequest
from ninja import Query, Router

from dashboard import audit
from dashboard.api import idempotency, present, schemas
from dashboard.api.auth import by
from dashboard.api.inventory import ProjectName, listed
from dashboard.api.plans import _refused, _state_conflict, rollout_for_user, rollout_to_act_on
from dashboard.api.problems import Problem
from dashboard.models import Rollout
from dashboard.numbers import whole_number
from dashboard.roles import APPROVER, OPERATOR, VIEWER
from dashboard.rollouts import control, planning

router = Router(tags=["rollouts"])

MAX_LIMIT = 200


@router.get("/rollouts", response=schemas.reads(schemas.RolloutPage), auth=by(VIEWER))
def list_rollouts(
    request: HttpRequest,
    state: Rollout.State | None = None,
    project: str | None = ProjectName,
    cursor: str | None = Query(None, max_length=20, description="a page's next cursor"),
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
):
    """Rollouts and plans, newest first."""
    rows = listed(request, Rollout.objects.all(), project)
    if state:
        rows = rows.filter(state=state)
    return id_page(rows, cursor, limit)


def id_page(rows, cursor: str | None, limit: int) -> dict:
    """Newest first by id: `cursor` is the last id of the page before."""
    total = rows.count()
    if cursor:
        after = whole_number(cursor, digits=40)  # past any id: the rows from the newest
        if after is None:
            raise Problem(400, "cursor.invalid", "The cursor is the next_cursor of a page.")
        rows = rows.filter(pk__lt=after)
    found = list(rows.order_by("-pk")[: limit + 1])
    more = len(found) > limit
    found = found[:limit]
    return {
        "count": total,
        "next_cursor": str(found[-1].pk) if more and found else None,
        "previous_cursor": None,
        "items": found,
    }


@router.get(
    "/rollouts/{rollout_id}",
    response=schemas.reads(schemas.RolloutOut, one=True),
    summary="Read a rollout",
    auth=by(VIEWER),
)
def read_rollout(request: HttpRequest, rollout_id: int):
    """The rollout with its progress, waves, every server and the event timeline. Poll it
    until `final` is true."""
    return present.rollout(rollout_for_user(request, rollout_id))


def _act(request: HttpRequest, key: str | None, rollout_id: int, role: str, act) -> object:
    """Load the rollout, check `role` in its project, act, and answer the rollout as it now
    stands (idempotent by key)."""

    def answer() -> tuple[int, dict]:
        rollout = rollout_to_act_on(request, rollout_id, role)
        status = act(rollout)
        rollout.refresh_from_db()
        return status, present.rollout(rollout)

    return idempotency.once(request, key, answer)


ACTED = schemas.acts(200, schemas.RolloutOut)


@router.post(
    "/rollouts/{rollout_id}/approve", response=ACTED, summary="Approve a rollout", auth=by(APPROVER)
)
def approve(request: HttpRequest, rollout_id: int, idempotency_key: idempotency.KeyHeader = None):
    """A second person releases a rollout of a protected group; never its own author."""

    def act(rollout: Rollout) -> int:
        approval = planning.approve(rollout.pk, request.user.get_username(), request=request)
        if approval.refused == planning.SAME_PERSON:
            _refused(request, rollout, "approve", why="submitter cannot approve")
            raise Problem(403, approval.refused, "A second person must approve it.")
        if not approval.approved:
            raise _state_conflict(request, rollout, "approve")
        return 200

    return _act(request, idempotency_key, rollout_id, APPROVER, act)


@router.post(
    "/rollouts/{rollout_id}/reject", response=ACTED, summary="Reject a rollout", auth=by(APPROVER)
)
def reject(
    request: HttpRequest,
    rollout_id: int,
    body: schemas.RejectIn,
    idempotency_key: idempotency.KeyHeader = None,
):
    """An approver turns down a rollout waiting for approval: it is cancelled, nothing sent."""

    def act(rollout: Rollout) -> int:
        reason = body.reason.strip()
        if not reason:
            raise Problem(422, "validation.invalid", "Say why it is rejected.")
        if not control.reject(rollout.pk, request.user.get_username(), reason, request=request):
            raise _state_conflict(request, rollout, "reject")
        return 200

    return _act(request, idempotency_key, rollout_id, APPROVER, act)


@router.post(
    "/rollouts/{rollout_id}/pause", response=ACTED, summary="Pause a rollout", auth=by(OPERATOR)
)
def pause(request: HttpRequest, rollout_id: int, idempotency_key: idempotency.KeyHeader = None):
    """Nothing more is sent; jobs in flight are still tracked."""

    def act(rollout: Rollout) -> int:
        if not control.pause(rollout.pk, by=request.user.get_username(), request=request):
            raise _state_conflict(request, rollout, "pause")
        return 200

    return _act(request, idempotency_key, rollout_id, OPERATOR, act)


@router.post(
    "/rollouts/{rollout_id}/resume",
    response=ACTED,
    summary="Resume a rollout",
    auth=by(OPERATOR),
)
def resume(
    request: HttpRequest,
    rollout_id: int,
    body: schemas.ResumeIn,
    idempotency_key: idempotency.KeyHeader = None,
):
    """Go on after a pause or a halt; `retry_failed` also plans a retry (see follow_ups)."""

    def act(rollout: Rollout) -> int:
        resumed, _retry = control.resume(
            rollout.pk, body.how, by=request.user.get_username(), request=request
        )
        if not resumed:
            raise _state_conflict(request, rollout, "resume")
        return 200

    return _act(request, idempotency_key, rollout_id, OPERATOR, act)


@router.post(
    "/rollouts/{rollout_id}/cancel", response=ACTED, summary="Cancel a rollout", auth=by(OPERATOR)
)
def cancel(request: HttpRequest, rollout_id: int, idempotency_key: idempotency.KeyHeader = None):
    """What has not been sent is not sent; jobs in flight finish and are tracked."""

    def act(rollout: Rollout) -> int:
        if control.cancel(rollout.pk, by=request.user.get_username(), request=request) is None:
            raise _state_conflict(request, rollout, "cancel")
        return 200

    return _act(request, idempotency_key, rollout_id, OPERATOR, act)


FOLLOW_UP = schemas.acts(201, schemas.PlanOut)


@router.post(
    "/rollouts/{rollout_id}/retry", response=FOLLOW_UP, summary="Plan a retry", auth=by(OPERATOR)
)
def retry(
    request: HttpRequest,
    rollout_id: int,
    body: schemas.ServersIn,
    idempotency_key: idempotency.KeyHeader = None,
):
    """A new plan of the failed and unknown servers (or of `servers`), linked to this one.
    Confirm it like any plan."""

    def answer() -> tuple[int, dict]:
        rollout = rollout_to_act_on(request, rollout_id, OPERATOR)
        retried = control.retry(rollout.pk, body.servers, by=request.user.get_username())
        plan = _followed_up(request, rollout, "retry", retried)
        _audited(request, "rollout.retry", plan, retry_of=rollout.pk, servers=retried.servers)
        return 201, present.plan(plan, request)

    return idempotency.once(request, idempotency_key, answer)


@router.post(
    "/rollouts/{rollout_id}/revert", response=FOLLOW_UP, summary="Plan a revert", auth=by(OPERATOR)
)
def revert(
    request: HttpRequest,
    rollout_id: int,
    body: schemas.ServersIn,
    idempotency_key: idempotency.KeyHeader = None,
):
    """A new plan that puts the succeeded servers (or `servers`) back on the images they ran
    before. Confirm it like any plan."""

    def answer() -> tuple[int, dict]:
        rollout = rollout_to_act_on(request, rollout_id, OPERATOR)
        reverted = control.revert(rollout.pk, body.servers, by=request.user.get_username())
        plan = _followed_up(request, rollout, "revert", reverted)
        _audited(request, "rollout.revert", plan, reverts=rollout.pk, servers=plan.servers.count())
        return 201, present.plan(plan, request)

    return idempotency.once(request, idempotency_key, answer)


def _followed_up(
    request: HttpRequest, rollout: Rollout, action: str, follow_up: control.FollowUp
) -> Rollout:
    """The retry or revert plan made, or the problem that says why there is none."""
    if follow_up.refused == control.STATE_CONFLICT:
        raise _state_conflict(request, rollout, action)
    if follow_up.refused == control.INVALID:
        errors = [{"field": "servers", "message": message} for message in follow_up.errors]
        raise Problem(422, follow_up.refused, errors=errors)
    if follow_up.plan is None:
        raise Problem(409, follow_up.refused, " ".join(follow_up.errors))
    return follow_up.plan


def _audited(request: HttpRequest, action: str, rollout: Rollout, **details) -> None:
    audit.record(
        request, action, rollout=rollout, target=f"rollout #{rollout.pk}", via="api", **details
    )
