"""Model rows → the API's answers, each checked against its schema on the way out."""

from typing import Any

from django.http import HttpRequest

from dashboard.api import auth, schemas
from dashboard.models import Rollout, RolloutServer
from dashboard.rollouts import lifecycle, planning
from dashboard.rollouts.progress import summary

PLAN_ROW_FIELDS = [name for name in schemas.PlanRowOut.model_fields]
ROLLOUT_ROW_FIELDS = [name for name in schemas.RolloutServerOut.model_fields]
EVENT_FIELDS = [name for name in schemas.EventOut.model_fields]
# What a caller may ask of a rollout (the worker's own moves, such as start, are left out).
ACTIONS = (
    "confirm",
    "discard",
    "approve",
    "reject",
    "pause",
    "resume",
    "cancel",
    "retry",
    "revert",
)


def _safety(rollout: Rollout) -> dict[str, Any]:
    return {name: getattr(rollout, name, "") for name in schemas.SafetyOut.model_fields}


def _waves(rollout: Rollout) -> list[dict[str, Any]]:
    return list(rollout.waves.values(*schemas.WaveOut.model_fields))


def plan(rollout: Rollout, request: HttpRequest) -> dict[str, Any]:
    """A plan as the API answers it; its siblings only as far as the caller may see."""
    rows = list(rollout.servers.values(*PLAN_ROW_FIELDS))
    counts = {verdict: 0 for verdict in RolloutServer.Verdict.values}
    for row in rows:
        counts[row["verdict"]] += 1
    body = {
        **_common(rollout),
        "expires_at": planning.plan_expires_at(rollout),
        "update_access_agent": rollout.update_access_agent,
        "use_maintenance": rollout.use_maintenance,
        "counts": counts,
        "calls": len({row["chunk"] for row in rows if row["chunk"]}),
        "waves": _waves(rollout),
        "confirm_token": planning.confirm_token(rollout)
        if rollout.state == Rollout.State.PLANNED
        else None,
        "servers": rows,
        "plan_set": _siblings(rollout, request),
    }
    return schemas.PlanOut.model_validate(body).model_dump(mode="json")


def _siblings(rollout: Rollout, request: HttpRequest) -> list[dict[str, Any]]:
    if not rollout.plan_set:
        return []
    # A token scoped to one project learns nothing of the plans of another.
    others = (
        auth.visible(request, Rollout.objects.filter(plan_set=rollout.plan_set))
        .exclude(pk=rollout.pk)
        .order_by("pk")
        .values_list("pk", "project__name", "state")
    )
    return [{"id": pk, "project": name, "state": state} for pk, name, state in others]


def rollout(rollout: Rollout) -> dict[str, Any]:
    numbers = summary(rollout)
    body = {
        **_common(rollout),
        "final": rollout.is_final,
        "outcome": numbers.outcome,
        "follow_ups": [
            {"rollout": pk, "kind": kind}
            for pk, kind in rollout.derived.order_by("pk").values_list("pk", "kind")
        ],
        "confirmed_by": rollout.confirmed_by,
        "approved_by": rollout.approved_by,
        "confirmed_at": rollout.confirmed_at,
        "approved_at": rollout.approved_at,
        "started_at": rollout.started_at,
        "finished_at": rollout.finished_at,
        "halted_reason": rollout.halted_reason,
        "allowed_actions": sorted(lifecycle.allowed(rollout) & set(ACTIONS)),
        "progress": {
            "total": numbers.total,
            "to_change": numbers.to_change,
            "done": numbers.done,
            "percent": numbers.percent,
            "counts": numbers.counts,
        },
        "waves": _waves(rollout),
        "servers": list(rollout.servers.values(*ROLLOUT_ROW_FIELDS)),
        "events": list(rollout.events.values(*EVENT_FIELDS)),
    }
    return schemas.RolloutOut.model_validate(body).model_dump(mode="json")


def _common(rollout: Rollout) -> dict[str, Any]:
    return {
        "id": rollout.pk,
        "project": rollout.project.name,
        "state": rollout.state,
        "kind": rollout.kind,
        "retry_of": rollout.retry_of_id,
        "created_by": rollout.created_by,
        "created_at": rollout.created_at,
        "reason": rollout.reason,
        "target_image_id": rollout.target_image_id,
        "target_image_name": rollout.target_image_name,
        "safety": _safety(rollout),
    }
