"""Rollout pages: choose, plan, confirm, watch, retry, export.

Views read top to bottom: load, check access, validate, act, respond. The plan is stored
before it is shown; confirming submits exactly that stored plan.
"""

import csv
import json
from datetime import datetime

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers, patch_cache_control
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from dashboard import audit
from dashboard.exports import safe_cell
from dashboard.forms import RolloutForm, ServerFilterForm
from dashboard.models import Image, Rollout, RolloutServer, Server, ServerGroup
from dashboard.roles import APPROVER, OPERATOR, VIEWER, can_approve, require_role
from dashboard.rollouts import control, engine, lifecycle, planning
from dashboard.rollouts.progress import summary

# ---- choose and plan ------------------------------------------------------------------


def _selected_ids(data: QueryDict) -> list[str]:
    """The servers an operator picked: explicit checkboxes, or every server of a filter."""
    if data.get("scope") == "filter":
        filter_data = QueryDict(data.get("filter", ""))
        form = ServerFilterForm(
            filter_data, groups=list(ServerGroup.objects.all()), images=list(Image.objects.all())
        )
        ids = form.filter(Server.objects.all()).values_list("id", flat=True)
        return list(ids[: settings.ROLLOUT_MAX_SERVERS + 1])
    return data.getlist("server")


@require_http_methods(["GET", "POST"])
@require_role(OPERATOR)
def new(request: HttpRequest) -> HttpResponse:
    """Step 1: the selection arrives (POST from the servers page, or GET with filters)."""
    data = request.POST if request.method == "POST" else request.GET
    if request.method == "GET":
        data = QueryDict(mutable=True)
        data.update({"scope": "filter", "filter": request.GET.urlencode()})
    form = RolloutForm(server_ids=_selected_ids(data), max_servers=settings.ROLLOUT_MAX_SERVERS)
    return render(request, "rollouts/new.html", {"form": form, "errors": form.selection_errors()})


@require_POST
@require_role(OPERATOR)
def plan(request: HttpRequest) -> HttpResponse:
    """Step 2: validate the choice and store the plan, then show it."""
    form = RolloutForm(
        request.POST,
        server_ids=request.POST.getlist("server"),
        max_servers=settings.ROLLOUT_MAX_SERVERS,
    )
    if not form.is_valid():
        audit.record(request, "rollout.plan", outcome="refused", errors=form.errors.get_json_data())
        return render(request, "rollouts/new.html", {"form": form, "errors": []}, status=400)
    source = _retry_source(request)
    rollout = planning.create_plan(
        created_by=request.user.username,
        servers=form.servers,
        target=form.target(),
        images=form.images,
        reason=form.cleaned_data["reason"],
        update_access_agent=form.cleaned_data["update_access_agent"],
        use_maintenance=form.cleaned_data["use_maintenance"],
        retry_of=source,
        kind=Rollout.Kind.RETRY if source else Rollout.Kind.PLAN,
        safety=form.safety(),
    )
    _audit(
        request, "rollout.plan", rollout, servers=len(form.servers), image=rollout.target_image_id
    )
    return redirect("rollout-plan", rollout.pk)


def _audit(request: HttpRequest, action: str, rollout: Rollout, **details) -> None:
    audit.record(request, action, rollout=rollout, target=f"rollout #{rollout.pk}", **details)


def _retry_source(request: HttpRequest) -> Rollout | None:
    source = request.POST.get("retry_of", "")
    return Rollout.objects.filter(pk=source).first() if source.isdigit() else None


def _get_rollout_for_user(request: HttpRequest, rollout_id: int) -> Rollout:
    # Every viewer may see every rollout; the role decorators guard the actions.
    return get_object_or_404(Rollout, pk=rollout_id)


@require_GET
@require_role(VIEWER)
def plan_detail(request: HttpRequest, rollout_id: int) -> HttpResponse:
    """The plan as stored. Once confirmed (or discarded by a confirm elsewhere) it redirects
    to the rollout, so the browser's Back never shows a live Confirm for a started rollout."""
    rollout = _get_rollout_for_user(request, rollout_id)
    if rollout.state not in (Rollout.State.PLANNED, Rollout.State.DISCARDED):
        return redirect("rollout-detail", rollout.pk)
    rows = list(rollout.servers.all())
    counts = {v: sum(1 for r in rows if r.verdict == v) for v in RolloutServer.Verdict.values}
    chunks = sorted({r.chunk for r in rows if r.chunk})
    context = {
        "rollout": rollout,
        "rows": rows,
        "counts": counts,
        "chunks": [(c, sum(1 for r in rows if r.chunk == c)) for c in chunks],
        "sessions": sum(r.session_count for r in rows if r.verdict == RolloutServer.Verdict.CHANGE),
        "allowed": lifecycle.allowed(rollout),
        "confirm_token": planning.confirm_token(rollout),
        "expires_at": planning.plan_expires_at(rollout),
        "budget": engine.budget_text(rollout.failure_budget),
        "events": list(rollout.events.all()[:50]),
    }
    response = render(request, "rollouts/plan.html", context)
    add_never_cache_headers(response)
    patch_cache_control(response, no_store=True)
    return response


@require_POST
@require_role(OPERATOR)
def confirm(request: HttpRequest, rollout_id: int) -> HttpResponse:
    """Start exactly the plan the operator saw: the form carries that page's signed token."""
    rollout = _get_rollout_for_user(request, rollout_id)
    if rollout.state != Rollout.State.PLANNED:
        return redirect("rollout-detail", rollout.pk)  # a replayed confirm changes nothing
    if not rollout.servers.filter(verdict=RolloutServer.Verdict.CHANGE).exists():
        messages.error(
            request, _("Nothing in this plan would change; there is nothing to confirm.")
        )
        return redirect("rollout-plan", rollout.pk)
    result = planning.confirm(
        rollout.pk,
        request.user.username,
        token=request.POST.get("confirm_token", ""),
        request=request,
    )
    if result.refused:
        _audit(request, "rollout.confirm", rollout, outcome="refused", code=result.refused)
        return render(
            request,
            "rollouts/refused.html",
            {"rollout": result.rollout, "message": planning.REFUSALS[result.refused]},
            status=409,
        )
    if result.stale:
        _audit(request, "rollout.confirm", rollout, outcome="refused", code="stale_plan")
        return render(
            request,
            "rollouts/stale.html",
            {"rollout": result.rollout, "reasons": result.stale},
            status=409,
        )
    if result.confirmed:
        messages.success(request, _("Rollout #%(id)d confirmed.") % {"id": rollout.pk})
    return redirect("rollout-detail", rollout.pk)


@require_POST
@require_role(OPERATOR)
def discard(request: HttpRequest, rollout_id: int) -> HttpResponse:
    """Cancel on the plan page: the plan is discarded (audited; on its timeline)."""
    rollout = _get_rollout_for_user(request, rollout_id)
    if not planning.discard(rollout.pk, by=request.user.username, request=request):
        _audit(request, "rollout.discard", rollout, outcome="refused", state=rollout.state)
        messages.error(request, _("Only a plan that has not been confirmed can be discarded."))
        return redirect("rollout-detail", rollout.pk)
    messages.info(request, _("Plan #%(id)d discarded; nothing was sent.") % {"id": rollout.pk})
    return redirect("servers")


@require_POST
@require_role(OPERATOR)
def replan(request: HttpRequest, rollout_id: int) -> HttpResponse:
    """A fresh plan for the same servers, image and options (after a stale plan)."""
    old = _get_rollout_for_user(request, rollout_id)
    server_ids = list(old.servers.values_list("server_id", flat=True))
    rollout, errors = planning.plan_again(
        old,
        server_ids,
        created_by=request.user.username,
        reason=old.reason,
        retry_of=old.retry_of,
        kind=old.kind,
        safety=planning.Safety.of(old),
    )
    if rollout is None:
        form = RolloutForm(server_ids=server_ids, max_servers=settings.ROLLOUT_MAX_SERVERS)
        return render(request, "rollouts/new.html", {"form": form, "errors": errors}, status=400)
    _audit(request, "rollout.plan", rollout, replaces=old.pk)
    return redirect("rollout-plan", rollout.pk)


# ---- watch ------------------------------------------------------------------------------


@require_GET
@require_role(VIEWER)
def detail(request: HttpRequest, rollout_id: int) -> HttpResponse:
    rollout = _get_rollout_for_user(request, rollout_id)
    if rollout.state in (Rollout.State.PLANNED,):
        return redirect("rollout-plan", rollout.pk)
    rows = rollout.servers.all()
    context = {
        "rollout": rollout,
        "rows": rows,
        "summary": summary(rollout),
        "since": timezone.now().isoformat(),
        "derived": rollout.derived.all(),
        **_live_context(request, rollout),
    }
    return render(request, "rollouts/detail.html", context)


def _live_context(request: HttpRequest, rollout: Rollout) -> dict:
    """What the live part of the page needs besides the rows: controls, waves, budget."""
    allowed = lifecycle.allowed(rollout)
    return {
        "allowed": allowed,
        "can_approve_this": "approve" in allowed and can_approve(request, rollout.created_by),
        "waves": list(rollout.waves.all()),
        "events": list(rollout.events.all()[:TIMELINE_LENGTH]),
        "budget_used": _budget_used(rollout),
        "budget": engine.budget_text(rollout.failure_budget),
        "resume_choices": RESUME_LABELS,
        "revertable": rollout.servers.filter(state="succeeded")
        .exclude(previous_image_id="")
        .exists(),
    }


TIMELINE_LENGTH = 200  # newest first; the JSON export carries every event

RESUME_LABELS = [
    ("continue", "Continue with the next waves"),
    ("skip_failed", "Skip the failed servers, then continue"),
    ("retry_failed", "Plan a retry of the failed servers, and continue"),
]


def _budget_used(rollout: Rollout) -> int:
    failed = rollout.servers.filter(state=RolloutServer.State.FAILED).count()
    return max(0, failed - rollout.budget_base)


@require_GET
@require_role(VIEWER)
def poll(request: HttpRequest, rollout_id: int) -> HttpResponse:
    """The live part of the rollout page: only rows changed since the last poll.

    Reads the database only, in a fixed number of queries. Answers 204 when nothing changed
    and 286 (stop polling) once the rollout is final.
    """
    rollout = _get_rollout_for_user(request, rollout_id)
    since = _parse_since(request.GET.get("since"))
    now = timezone.now()
    changed = list(rollout.servers.filter(updated_at__gte=since)) if since else []
    final = rollout.is_final
    if not changed and since and rollout.updated_at < since and not final:
        return HttpResponse(status=204)
    context = {
        "rollout": rollout,
        "changed": changed,
        "summary": summary(rollout),
        "since": now.isoformat(),
        "polling": True,
        **_live_context(request, rollout),
    }
    response = render(request, "rollouts/detail.html#rollout-live", context)
    if final:
        response.status_code = HttpResponseStopPolling.status_code
    return response


def _parse_since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if timezone.is_aware(parsed) else None


# ---- act --------------------------------------------------------------------------------


@require_POST
@require_role(APPROVER)
def approve(request: HttpRequest, rollout_id: int) -> HttpResponse:
    rollout = _get_rollout_for_user(request, rollout_id)
    if not can_approve(request, rollout.created_by):
        _audit(
            request, "rollout.approve", rollout, outcome="refused", why="submitter cannot approve"
        )
        raise PermissionDenied(_("A second person must approve this rollout."))
    if planning.approve(rollout.pk, request.user.username, request=request):
        messages.success(request, _("Approved; the rollout starts now."))
    else:
        _refused(request, rollout, "approve")
    return redirect("rollout-detail", rollout.pk)


def _refused(request: HttpRequest, rollout: Rollout, action: str) -> None:
    """An action the rollout's state does not allow: audited, and said plainly."""
    rollout.refresh_from_db()
    _audit(request, f"rollout.{action}", rollout, outcome="refused", state=rollout.state)
    messages.error(
        request,
        _("A %(state)s rollout cannot do that (%(action)s).")
        % {"state": rollout.get_state_display().lower(), "action": action},
    )


@require_POST
@require_role(OPERATOR)
def cancel(request: HttpRequest, rollout_id: int) -> HttpResponse:
    rollout = _get_rollout_for_user(request, rollout_id)
    cancelled = control.cancel(rollout.pk, by=request.user.username, request=request)
    if cancelled is None:
        _refused(request, rollout, "cancel")
    else:
        messages.info(
            request,
            ngettext(
                "Cancelled; %(n)d server not yet sent will not be sent.",
                "Cancelled; %(n)d servers not yet sent will not be sent.",
                cancelled,
            )
            % {"n": cancelled},
        )
    return redirect("rollout-detail", rollout.pk)


@require_POST
@require_role(OPERATOR)
def pause(request: HttpRequest, rollout_id: int) -> HttpResponse:
    rollout = _get_rollout_for_user(request, rollout_id)
    if control.pause(rollout.pk, by=request.user.username, request=request):
        messages.info(request, _("Paused: nothing more is sent; jobs in flight are still tracked."))
    else:
        _refused(request, rollout, "pause")
    return redirect("rollout-detail", rollout.pk)


@require_POST
@require_role(OPERATOR)
def resume(request: HttpRequest, rollout_id: int) -> HttpResponse:
    rollout = _get_rollout_for_user(request, rollout_id)
    how = request.POST.get("how", control.CONTINUE)
    if how not in control.RESUME_CHOICES or not lifecycle.allows(rollout, "resume"):
        _audit(request, "rollout.resume", rollout, outcome="refused", how=how[:20])
        messages.error(request, _("This rollout cannot be resumed that way."))
        return redirect("rollout-detail", rollout.pk)
    resumed, retry_plan = control.resume(rollout.pk, how, by=request.user.username, request=request)
    if not resumed:
        _refused(request, rollout, "resume")
        return redirect("rollout-detail", rollout.pk)
    messages.success(request, _("Resumed."))
    if retry_plan:
        messages.info(
            request,
            _("Plan #%(id)d retries the failed servers; confirm it.") % {"id": retry_plan.pk},
        )
        return redirect("rollout-plan", retry_plan.pk)
    return redirect("rollout-detail", rollout.pk)


@require_POST
@require_role(OPERATOR)
def revert(request: HttpRequest, rollout_id: int) -> HttpResponse:
    """Plan a change of the chosen servers back to the images they ran before."""
    rollout = _get_rollout_for_user(request, rollout_id)
    if not lifecycle.allows(rollout, "revert"):
        _refused(request, rollout, "revert")
        return redirect("rollout-detail", rollout.pk)
    chosen = request.POST.getlist("server") or list(
        rollout.servers.filter(state="succeeded").values_list("server_id", flat=True)
    )
    plan = control.revert(
        rollout.pk,
        chosen,
        by=request.user.username,
        reason=f"Revert of #{rollout.pk}: {rollout.reason}"[:500],
    )
    if not plan.servers.exists():
        plan.delete()
        messages.error(request, _("None of these servers has a recorded previous image."))
        return redirect("rollout-detail", rollout.pk)
    _audit(request, "rollout.revert", plan, reverts=rollout.pk, servers=plan.servers.count())
    return redirect("rollout-plan", plan.pk)


@require_POST
@require_role(OPERATOR)
def retry(request: HttpRequest, rollout_id: int) -> HttpResponse:
    """A new plan of only the failed and unknown servers, linked to this rollout."""
    rollout = _get_rollout_for_user(request, rollout_id)
    ids = list(
        rollout.servers.filter(
            state__in=[RolloutServer.State.FAILED, RolloutServer.State.UNKNOWN]
        ).values_list("server_id", flat=True)
    )
    if not lifecycle.allows(rollout, "retry"):
        _refused(request, rollout, "retry")
        return redirect("rollout-detail", rollout.pk)
    if not ids:
        messages.error(request, _("Nothing to retry: no server failed."))
        return redirect("rollout-detail", rollout.pk)
    new_plan, errors = planning.plan_again(
        rollout,
        ids,
        created_by=request.user.username,
        reason=f"Retry of #{rollout.pk}: {rollout.reason}"[:500],
        retry_of=rollout,
        kind=Rollout.Kind.RETRY,
    )
    if new_plan is None:
        for message in errors:
            messages.error(request, message)
        return redirect("rollout-detail", rollout.pk)
    _audit(request, "rollout.retry", new_plan, retry_of=rollout.pk, servers=len(ids))
    return redirect("rollout-plan", new_plan.pk)


# ---- history and export -------------------------------------------------------------------


@require_GET
@require_role(VIEWER)
def history(request: HttpRequest) -> HttpResponse:
    rollouts = (
        Rollout.objects.prefetch_related("derived")
        .annotate(
            total=Count("servers"),
            succeeded=Count("servers", filter=Q(servers__state=RolloutServer.State.SUCCEEDED)),
            failed=Count("servers", filter=Q(servers__state=RolloutServer.State.FAILED)),
        )
        .exclude(state=Rollout.State.DISCARDED)
    )
    filters = {k: request.GET.get(k, "").strip() for k in ("state", "user", "group", "date")}
    if filters["state"]:
        rollouts = rollouts.filter(state=filters["state"])
    if filters["user"]:
        rollouts = rollouts.filter(created_by__icontains=filters["user"])
    if filters["group"]:
        rollouts = rollouts.filter(servers__group_name__icontains=filters["group"]).distinct()
    if filters["date"]:
        try:
            day = datetime.strptime(filters["date"], "%Y-%m-%d").date()
            rollouts = rollouts.filter(created_at__date=day)
        except ValueError:
            messages.error(request, "The date must look like 2026-11-26.")
    page = Paginator(rollouts.order_by("-created_at"), 50).get_page(request.GET.get("page"))
    context = {"page": page, "filters": filters, "states": Rollout.State.choices}
    return render(request, "rollouts/list.html", context)


EXPORT_FIELDS = [
    "server_id",
    "server_name",
    "group_name",
    "from_image_id",
    "to_image_id",
    "verdict",
    "reason_code",
    "state",
    "job_id",
    "error_code",
    "error_message",
    "submitted_at",
    "finished_at",
    "verified",
]
# Rollout-level columns repeated on every CSV row, so a sheet of several exports still says
# which rollout each row belongs to and where it came from.
ROLLOUT_COLUMNS = ["rollout", "kind", "origin", "follow_ups", "outcome"]


def _links(rollout: Rollout) -> tuple[str, list[dict]]:
    """ "Revert of #1" and [{"label": "Retried by", "rollout": 5}, …]."""
    origin = f"{rollout.origin_label} #{rollout.retry_of_id}" if rollout.retry_of_id else ""
    follow_ups = [
        {"label": d.follow_up_label, "rollout": d.pk, "kind": d.kind}
        for d in rollout.derived.order_by("pk")
    ]
    return origin, follow_ups


@require_GET
@require_role(VIEWER)
def export(request: HttpRequest, rollout_id: int, fmt: str) -> HttpResponse:
    if fmt not in ("csv", "json"):
        raise Http404("Export as csv or json.")
    rollout = _get_rollout_for_user(request, rollout_id)
    rows = rollout.servers.values_list(*EXPORT_FIELDS)
    origin, follow_ups = _links(rollout)
    outcome = summary(rollout).outcome
    filename = f"rollout-{rollout.pk}.{fmt}"
    if fmt == "json":
        body = {
            "rollout": rollout.pk,
            "state": rollout.state,
            "outcome": outcome,
            "kind": rollout.kind,
            "retry_of": rollout.retry_of_id,
            "origin": origin,
            "follow_ups": follow_ups,
            "created_by": rollout.created_by,
            "confirmed_by": rollout.confirmed_by,
            "approved_by": rollout.approved_by,
            "reason": rollout.reason,
            "target_image_id": rollout.target_image_id,
            "servers": [dict(zip(EXPORT_FIELDS, r, strict=True)) for r in rows],
            "events": [_event_json(e) for e in rollout.events.all()],
        }
        response = HttpResponse(
            json.dumps(body, default=str, indent=1), content_type="application/json"
        )
    else:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        writer = csv.writer(response)
        writer.writerow([*ROLLOUT_COLUMNS, *EXPORT_FIELDS])
        shared = [
            rollout.pk,
            rollout.kind,
            origin,
            "; ".join(f"{f['label']} #{f['rollout']}" for f in follow_ups),
            outcome,
        ]
        for row in rows:
            writer.writerow([safe_cell(v) for v in (*shared, *row)])
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _event_json(event) -> dict:
    return {
        "at": event.at.isoformat(),
        "wave": event.wave,
        "action": event.action,
        "from": event.from_state,
        "to": event.to_state,
        "actor": event.actor,
        "reason": event.reason,
        "details": event.details,
    }
