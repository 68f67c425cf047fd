"""POST /plans, GET /plans/{id}, POST /plans/{id}/confirm and /discard.

A plan is made by the rollout form (RolloutForm: the selection checks, compatible images,
presets and safety fields) and stored by planning.create_plan, as the page does; its answer
carries the signed `confirm_token` the plan page carries, and confirming goes through
planning.confirm with it, so the API can only start exactly the plan it read.

Planning needs operator in every project of the selected servers. A selection spanning
projects becomes one plan per project: the answer is the first, and `plan_set` names the
others (each confirmed on its own). A token scoped to a project plans only its servers: a
group or filter is narrowed to them, and a list naming any other server is refused (403
`project.out_of_scope`).
"""

from django.conf import settings
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Router

from dashboard import audit
from dashboard.api import idempotency, present, schemas
from dashboard.api.auth import by, scope, visible
from dashboard.api.inventory import filter_form, form_errors
from dashboard.api.problems import Problem
from dashboard.forms import RolloutForm, ServerFilterForm
from dashboard.models import Project, Rollout, Server
from dashboard.roles import OPERATOR, VIEWER, require_in
from dashboard.rollouts import planning

router = Router(tags=["plans"])


@router.post(
    "/plans",
    response=schemas.acts(201, schemas.PlanOut),
    summary="Plan a rollout",
    auth=by(OPERATOR),
)
def create_plan(
    request: HttpRequest,
    body: schemas.PlanIn,
    idempotency_key: idempotency.KeyHeader = None,
):
    """Store a plan for a list of servers, a group, or a filter; nothing runs until confirmed.

    `target_image` "group" sends each server to its own group's image. `preset` picks a
    safety preset; "custom" uses `safety`.
    """
    return idempotency.once(request, idempotency_key, lambda: _create_plan(request, body))


def _create_plan(request: HttpRequest, body: schemas.PlanIn) -> tuple[int, dict]:
    form = RolloutForm(
        _form_data(body),
        server_ids=_selection(request, body),
        max_servers=settings.ROLLOUT_MAX_SERVERS,
    )
    # Operator in each project the plan would touch, before anything else is said about it.
    touched = {s.project_id for s in form.servers}
    for project in Project.objects.filter(pk__in=touched).order_by("name"):
        require_in(request, OPERATOR, project, via="api")
    if body.target_image == planning.GROUP_IMAGES and not form.per_group:
        # One group image among the servers: "each group's image" is that image.
        form.data["target_image"] = form.recommended or planning.GROUP_IMAGES
    if not form.is_valid():
        errors = form_errors(form)
        audit.record(request, "rollout.plan", outcome="refused", errors=errors, via="api")
        raise Problem(422, "validation.invalid", errors=errors)
    rollout = form.create_plan(created_by=request.user.get_username())
    audit.record(
        request,
        "rollout.plan",
        rollout=rollout,
        target=f"rollout #{rollout.pk}",
        via="api",
        **form.audit_details(rollout),
    )
    return 201, present.plan(rollout, request)


def _selection(request: HttpRequest, body: schemas.PlanIn) -> list[str]:
    """The server ids the body names: exactly one of a list, a group, or a filter; for a
    scoped token, only its project's (see the module docstring)."""
    given = [name for name in ("servers", "group", "filter") if getattr(body, name) is not None]
    if len(given) != 1:
        raise Problem(
            422,
            "validation.invalid",
            "Name the servers one way: `servers`, `group` or `filter`.",
            errors=[{"field": "servers", "message": "give exactly one of servers, group, filter"}],
        )
    if body.servers is not None:
        _refuse_out_of_scope(request, body.servers)
        return body.servers
    filters = body.filter or schemas.ServerFilter(group=body.group)
    ids = filter_form(filters).selection()
    if ids is not None and scope(request) is not None:
        ids = list(visible(request, Server.objects.filter(id__in=ids)).values_list("id", flat=True))
    if ids is None:
        raise Problem(
            422,
            "validation.invalid",
            str(ServerFilterForm.NOTHING_FILTERED),
            errors=[{"field": "filter", "message": "an empty filter selects nothing"}],
        )
    return ids


def _refuse_out_of_scope(request: HttpRequest, server_ids: list[str]) -> None:
    """A scoped token naming servers outside its project: refused (audited), without saying
    which of them exist elsewhere."""
    project = scope(request)
    if project is None:
        return
    mine = set(
        Server.objects.filter(id__in=server_ids[:10_000], project=project).values_list(
            "id", flat=True
        )
    )
    outside = [i for i in server_ids if i not in mine]
    if outside:
        audit.refusal(
            request,
            "rollout.plan",
            code="project.out_of_scope",
            target=request.path[:255],
            project=project.name,
            servers=len(outside),
            via="api",
        )
        raise Problem(
            403,
            "project.out_of_scope",
            f"This token acts in the project {project.name} only; "
            f"{len(outside)} of the servers are not there.",
            project=project.name,
        )


def _form_data(body: schemas.PlanIn) -> dict:
    """The rollout form's fields, as the plan page posts them."""
    data = {
        "target_image": body.target_image,
        "one_image_for_all": body.one_image_for_all,
        "reason": body.reason,
        "update_access_agent": body.update_access_agent,
        "use_maintenance": body.use_maintenance,
        "preset": body.preset or settings.ROLLOUT_DEFAULT_PRESET,
    }
    for name, value in body.safety.model_dump().items():
        if value is not None and value != "":
            data[name] = value
    return data


def rollout_for_user(request: HttpRequest, rollout_id: int) -> Rollout:
    """The rollout, if the caller may see it (any project, or a scoped token's own); else 404."""
    rows = visible(request, Rollout.objects.select_related("project"))
    return get_object_or_404(rows, pk=rollout_id)


def rollout_to_act_on(request: HttpRequest, rollout_id: int, role: str) -> Rollout:
    """The rollout, once the caller holds `role` in its project (else an audited 403)."""
    rollout = rollout_for_user(request, rollout_id)
    require_in(request, role, rollout.project, rollout=rollout.pk, via="api")
    return rollout


@router.get(
    "/plans/{rollout_id}",
    response=schemas.reads(schemas.PlanOut, one=True),
    summary="Read a plan and its verdicts",
    auth=by(VIEWER),
)
def read_plan(request: HttpRequest, rollout_id: int):
    """The plan as stored: one row per server (change, skip or blocked, and why), waves,
    calls, and the `confirm_token` to confirm exactly this plan."""
    return present.plan(rollout_for_user(request, rollout_id), request)


@router.post(
    "/plans/{rollout_id}/confirm",
    response=schemas.acts(200, schemas.RolloutOut),
    summary="Confirm a plan",
    auth=by(OPERATOR),
)
def confirm_plan(
    request: HttpRequest,
    rollout_id: int,
    body: schemas.ConfirmIn,
    idempotency_key: idempotency.KeyHeader = None,
):
    """Start exactly the plan read (its `confirm_token`); a protected group's plan then waits
    for a second person's approval. A stale plan is discarded (409 `stale_plan`)."""
    return idempotency.once(request, idempotency_key, lambda: _confirm(request, rollout_id, body))


def _confirm(request: HttpRequest, rollout_id: int, body: schemas.ConfirmIn) -> tuple[int, dict]:
    rollout = rollout_to_act_on(request, rollout_id, OPERATOR)
    result = planning.confirm(
        rollout.pk, request.user.get_username(), token=body.confirm_token, request=request
    )
    if result.refused:
        _refused(request, rollout, "confirm", code=result.refused)
        raise Problem(409, result.refused, str(planning.REFUSALS[result.refused]))
    if result.stale:
        _refused(request, rollout, "confirm", code="stale_plan")
        raise Problem(409, "stale_plan", "The plan is stale; make a fresh one.", stale=result.stale)
    if not result.confirmed:
        raise _state_conflict(request, result.rollout, "confirm")
    return 200, present.rollout(result.rollout)


@router.post(
    "/plans/{rollout_id}/discard",
    response=schemas.acts(200, schemas.PlanOut),
    summary="Discard a plan",
    auth=by(OPERATOR),
)
def discard_plan(
    request: HttpRequest, rollout_id: int, idempotency_key: idempotency.KeyHeader = None
):
    """Drop a plan that has not been confirmed; nothing was sent."""

    def answer() -> tuple[int, dict]:
        rollout = rollout_to_act_on(request, rollout_id, OPERATOR)
        if not planning.discard(rollout.pk, by=request.user.get_username(), request=request):
            raise _state_conflict(request, rollout, "discard")
        rollout.refresh_from_db()
        return 200, present.plan(rollout, request)

    return idempotency.once(request, idempotency_key, answer)


def _refused(request: HttpRequest, rollout: Rollout, action: str, **details) -> None:
    audit.record(
        request,
        f"rollout.{action}",
        outcome="refused",
        rollout=rollout,
        target=f"rollout #{rollout.pk}",
        via="api",
        **details,
    )


def _state_conflict(request: HttpRequest, rollout: Rollout, action: str) -> Problem:
    """An action the rollout's state does not allow: audited, answered 409 with the state."""
    rollout.refresh_from_db()
    _refused(request, rollout, action, state=rollout.state)
    return Problem(
        409,
        "rollout.state_conflict",
        f"A {rollout.state} rollout cannot {action}.",
        state=rollout.state,
    )
