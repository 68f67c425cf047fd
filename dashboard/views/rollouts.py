"""Rollout pages: choose, plan, confirm, watch, retry, export.

Views read top to bottom: load, check access, validate, act, respond. The plan is stored
before it is shown; confirming submits exactly that stored plan.

Access: every viewer sees every project's rollouts. The role decorators let in whoever holds
the role globally or in some project; each action then checks the role IN THE PROJECT of the
rollout it acts on (`roles.require_in`, an audited 403). Planning needs operator in every
project of the selected servers; a selection spanning projects becomes one plan per project
(siblings sharing `Rollout.plan_set`), shown together on the plan page, each confirmed alone.
"""

import csv
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import BadRequest, PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers, patch_cache_control
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, pgettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from dashboard import audit, freetext, sso
from dashboard.exports import safe_cell
from dashboard.forms import PRESET_FIELDS, RolloutForm, ServerFilterForm
from dashboard.models import (
    Project,
    Rollout,
    RolloutServer,
    RolloutWave,
    Selection,
    Server,
    ServerGroup,
)
from dashboard.numbers import whole_number
from dashboard.roles import (
    APPROVER,
    OPERATOR,
    VIEWER,
    can_approve,
    has_role,
    require_in,
    require_role,
)
from dashboard.rollouts import control, engine, lifecycle, planning, progress, signoff
from dashboard.rollouts import selection as selections
from dashboard.rollouts.progress import summary
from dashboard.views.inventory import chosen_project
from dashboard.wording import word_list

# ---- choose and plan ------------------------------------------------------------------


def _filter_form(query: str) -> ServerFilterForm:
    return ServerFilterForm.for_fleet(QueryDict(query))


@dataclass(frozen=True)
class Scope:
    """Where a rollout form's servers come from: a stored selection, or a filter."""

    server_ids: list[str]
    selection: Selection | None = None
    filter: str = ""

    @property
    def fields(self) -> dict[str, str]:
        """The hidden fields that carry the scope (never one field per server)."""
        if self.selection is not None:
            return {"selection": str(self.selection.pk)}
        return {"filter": self.filter}


def _scope(request: HttpRequest, data: QueryDict) -> Scope | None:
    """The selection a request names (`selection=<id>` of one's own, or `filter=<query>`)."""
    if "selection" in data:
        found = selections.owned(request, data.get("selection"))
        if found is None:
            raise Http404(_("No such selection of yours."))
        _say_gone(request, selections.drop_gone(found))
        return Scope(list(found.server_ids), selection=found)
    query = data.get("filter", "")
    ids = _filter_form(query).selection()
    if ids is not None:
        return Scope(ids, filter=query)
    if isinstance(data, QueryDict) and data.getlist("server"):
        # A few servers named directly (scripts, tests); pages send a selection id instead.
        return Scope(data.getlist("server"))
    return None


def _say_gone(request: HttpRequest, names: list[str]) -> None:
    """Tell the person which servers were left out because the cloud no longer has them."""
    if not names:
        return
    messages.warning(
        request,
        ngettext(
            "%(n)d server no longer exists and was left out: %(names)s.",
            "%(n)d servers no longer exist and were left out: %(names)s.",
            len(names),
        )
        % {"n": len(names), "names": _some(names)},
    )


def _some(names: list[str], limit: int = 10) -> str:
    """ "a, b, c" — the first `limit` names, then "…" for the rest."""
    return word_list(names, limit)


def _group_of(scope: Scope | None) -> ServerGroup | None:
    """The group when the scope is exactly one group's filter (the "Update this group" path)."""
    if scope is None or not scope.filter:
        return None
    data = QueryDict(scope.filter)
    group_id = data.get("group", "")
    return ServerGroup.objects.filter(pk=group_id).first() if group_id else None


@require_http_methods(["GET", "POST"])
@require_role(OPERATOR)
def new(request: HttpRequest) -> HttpResponse:
    """Step 1. GET /rollouts/new/?selection=<id> or ?group=… (any servers-page filter);
    a POST from the servers page stores the selection and comes back here as a GET.

    Nothing selected (a bare URL, or a filter that narrows nothing) is an empty state that
    points to groups and servers, never the whole fleet.
    """
    if request.method == "POST":
        return _store_selection(request)
    query = request.GET.copy()
    if "selection" not in query:
        query = QueryDict(mutable=True)
        query["filter"] = request.GET.urlencode()
    scope = _scope(request, query)
    if scope is None:
        if "filter" in query:
            _say_refused_filters(request, query["filter"])
        return render(request, "rollouts/new.html", {"form": None, "scope": None})
    form = RolloutForm(server_ids=scope.server_ids, max_servers=settings.ROLLOUT_MAX_SERVERS)
    errors = form.selection_errors() + _not_operated_errors(request, form.servers)
    return render(request, "rollouts/new.html", _new_context(form, scope, errors=errors))


def _say_refused_filters(request: HttpRequest, query: str) -> None:
    """A filter that selects nothing because a value of it was refused: say which, rather
    than only that nothing is selected (an unknown group by its id, as the link names it)."""
    form = _filter_form(query)
    if form.is_valid():
        return
    wrong = []
    for name, errors in form.errors.items():
        value = form.data.get(name, "")
        if name == "group":
            gone = ServerGroup.objects.filter(pk=value, gone=True).first()
            wrong.append(
                _("The group “%(name)s” no longer exists.") % {"name": gone.name}
                if gone
                else _("No group with id “%(id)s”.") % {"id": value[:100]}
            )
        elif name in form.fields:
            wrong.append(f"{form[name].label}: {' '.join(errors)}")
    messages.error(
        request, _("These filters are not valid: %(errors)s") % {"errors": " ".join(wrong)}
    )


# The plan form's fields inside its "Custom settings" section.
CUSTOM_FIELDS = (*PRESET_FIELDS, "canary_session_policy", "logoff_message")
# The plan form's fields in the order the page shows them: the error summary lists their
# errors in that order.
FIELDS_AS_SHOWN = (
    "target_image",
    "one_image_for_all",
    "update_access_agent",
    "use_maintenance",
    "preset",
    "canary",
    "wave_size",
    "soak_minutes",
    "failure_budget",
    "canary_signoff",
    "session_policy",
    "canary_session_policy",
    "session_wait_minutes",
    "logoff_delay_minutes",
    "logoff_message",
    "scheduled_at",
    "start_below_sessions",
    "reason",
)


def _field_anchor(form: RolloutForm, name: str) -> str:
    """The id of the control an error summary's link for this field goes to: the field's own
    input, or the first radio of a choice the page draws itself (rollouts/new.html)."""
    if name == "target_image":
        if form.per_group:
            return "target-group"
        return "id_target_image_0" if form.options else "target-choice"
    if name == "preset":
        return f"preset-{form.presets[0][0]}" if form.presets else "preset-custom"
    return form[name].auto_id


def _error_summary(form: RolloutForm, errors: list[str]) -> list[tuple[str, str]]:
    """Every problem of a refused plan form, as (id of the control to fix or "", message):
    problems with the selection or the whole form first, then each field's in page order."""
    summary = [("", str(e)) for e in errors]
    summary += [("", str(e)) for e in form.non_field_errors() if str(e) not in errors]
    order = [n for n in FIELDS_AS_SHOWN if n in form.fields]
    order += [n for n in form.fields if n not in order]
    for name in order:
        # With nothing selected the page shows no fields: their problems are said, not linked.
        anchor = _field_anchor(form, name) if form.servers else ""
        summary += [(anchor, str(e)) for e in form.errors.get(name, [])]
    return summary


def _new_context(
    form: RolloutForm,
    scope: Scope,
    errors: list[str] | None = None,
    retry_of: str = "",
    refused: bool = False,
) -> dict:
    """The plan form's page. `refused`: the answer to a submit that was refused (400), which
    opens with a summary of every problem, each linked to its field."""
    errors = form.selection_errors() if errors is None else errors
    return {
        "form": form,
        "scope": scope,
        "group": _group_of(scope),
        "errors": errors,
        "error_summary": _error_summary(form, errors) if refused else [],
        # The custom settings are open while Custom is chosen (the template), and also when
        # one of them is refused under a preset (a warning message too long, say).
        "custom_open": form.is_bound and any(n in form.errors for n in CUSTOM_FIELDS),
        "max_servers": settings.ROLLOUT_MAX_SERVERS,
        "retry_of": retry_of,  # a fresh plan still follows up this rollout
    }


def _projects_of(servers: list[Server]) -> list[Project]:
    """The projects the servers belong to, by name."""
    return list(Project.objects.filter(pk__in={s.project_id for s in servers}).order_by("name"))


def _not_operated_errors(request: HttpRequest, servers: list[Server]) -> list[str]:
    """Say so on the form when the selection holds servers of projects the person does not
    operate (planning it would be refused)."""
    missing = [p.name for p in _projects_of(servers) if not has_role(request, OPERATOR, p)]
    if not missing:
        return []
    return [
        ngettext(
            "You do not operate the project %(projects)s: leave its servers out of the selection.",
            "You do not operate the projects %(projects)s: leave their servers out of the "
            "selection.",
            len(missing),
        )
        % {"projects": word_list(missing)}
    ]


def _store_selection(request: HttpRequest) -> HttpResponse:
    """The servers page's buttons without JavaScript: the ticked servers (added to the stored
    selection), or every server matching the filter, become the selection to plan."""
    if request.POST.get("scope") == "filter":
        query = request.POST.get("filter", "")
        ids = _filter_form(query).selection()
        if ids is None:
            messages.error(request, ServerFilterForm.NOTHING_FILTERED)
            return redirect("servers")
        chosen = selections.replace(request, ids, query)
    else:
        chosen = selections.add(request, request.POST.getlist("server")[:1000])
    return redirect(f"{reverse('rollout-new')}?selection={chosen.pk}")


@require_POST
@require_role(OPERATOR)
def plan(request: HttpRequest) -> HttpResponse:
    """Step 2: validate the choice and store the plan, then show it."""
    scope = _scope(request, request.POST) or Scope([])
    form = RolloutForm(
        request.POST, server_ids=scope.server_ids, max_servers=settings.ROLLOUT_MAX_SERVERS
    )
    # Operator in every project the plan would touch (one plan per project), before anything
    # about the plan is checked or stored.
    for project in _projects_of(form.servers):
        require_in(request, OPERATOR, project)
    retry_of = _retry_source(request)
    kept_retry_of = request.POST.get("retry_of", "")
    if retry_of is not None:
        require_in(request, OPERATOR, retry_of.project)
        if not planning.follows_up(retry_of, form.servers):
            kept_retry_of = ""  # the form comes back as a new rollout, not this follow-up
            # A follow-up covers its rollout's own servers, in its project: anything else
            # would file the plan under another project's rollout.
            form.add_error(
                None,
                _(
                    "This plan cannot follow up rollout #%(id)s: a retry or revert changes "
                    "only servers of that rollout. Start a new rollout for these servers."
                )
                % {"id": retry_of.pk},
            )
    if not form.is_valid():
        audit.record(request, "rollout.plan", outcome="refused", errors=form.errors.get_json_data())
        context = _new_context(form, scope, errors=[], retry_of=kept_retry_of, refused=True)
        return render(request, "rollouts/new.html", context, status=400)
    rollout = form.create_plan(created_by=request.user.username, retry_of=retry_of)
    _audit(request, "rollout.plan", rollout, **form.audit_details(rollout))
    return redirect("rollout-plan", rollout.pk)


# ---- the stored selection (servers page) --------------------------------------------------


@require_POST
@require_role(OPERATOR)
def selection_update(request: HttpRequest) -> HttpResponse:
    """Change the person's stored selection from the servers page.

    `toggle=<id>` with `server=<id>` ticked or not; `page_all` on or off with the `page`
    ids of the page shown; `all_matching` with the page's `filter`; `clear`. An htmx
    request gets the selection bar back; a plain form goes back to the servers page.
    """
    post = request.POST
    if "clear" in post:
        selections.clear(request)
    elif "all_matching" in post:
        query = post.get("filter", "")
        ids = _filter_form(query).selection()
        if ids is not None:
            selections.replace(request, ids, query)
        else:
            messages.error(request, ServerFilterForm.NOTHING_FILTERED)
    elif "toggle" in post:
        server_id = post.get("toggle", "")
        if server_id in post.getlist("server"):
            selections.add(request, [server_id])
        else:
            selections.remove(request, [server_id])
    elif "page" in post:
        page_ids = post.getlist("page")[:500]
        if post.get("page_all"):
            selections.add(request, page_ids)
        else:
            selections.remove(request, page_ids)
    if request.htmx:
        context = {
            "selection": selections.current(request),
            "query": post.get("filter", ""),
            "filtered": bool(_filter_form(post.get("filter", "")).active_filters()),
            "matching": _int(post.get("matching")),
        }
        return render(request, "rollouts/selection_bar.html", context)
    back = post.get("filter", "")
    return redirect(f"{reverse('servers')}?{back}" if back else reverse("servers"))


def _int(value: str | None) -> int:
    return whole_number(value, digits=9) or 0


def _audit(request: HttpRequest, action: str, rollout: Rollout, **details) -> None:
    audit.record(request, action, rollout=rollout, target=f"rollout #{rollout.pk}", **details)


def _retry_source(request: HttpRequest) -> Rollout | None:
    source = whole_number(request.POST.get("retry_of"))
    if source is None:
        return None
    return Rollout.objects.select_related("project").filter(pk=source).first()


def _get_rollout_for_user(request: HttpRequest, rollout_id: int) -> Rollout:
    # Every viewer may see every project's rollouts; acting needs the role in its project.
    return get_object_or_404(Rollout.objects.select_related("project"), pk=rollout_id)


def _get_rollout_to_act_on(request: HttpRequest, rollout_id: int, role: str) -> Rollout:
    """The rollout, once the person holds `role` in its project (else an audited 403)."""
    rollout = _get_rollout_for_user(request, rollout_id)
    require_in(request, role, rollout.project, rollout=rollout.pk)
    return rollout


# ---- rows, a page at a time ----------------------------------------------------------------
# A rollout of 5,000 servers is read through its figures (per state or verdict, per wave, per
# group) and one page of rows a filter chooses. Pages run in plan order (by group, then name:
# the order rows are stored in, so by id) and page by id: `?after=<id>`, `?before=<id>` or
# `?last=1`, each an index range whatever the page's depth.

PAGE_SIZE = 100
PROBLEMS = "problems"  # failed, unknown or blocked rows (progress.problems_q)


@dataclass(frozen=True)
class RowFilter:
    """Which rows a page lists: `?state=` (a row state, or `problems`; the rollout page),
    `?verdict=` (the plan page), `?wave=` (a wave's number) and `?group=` (a group's name).
    A value that names nothing is left out, so an old or edited link still shows rows."""

    state: str = ""
    verdict: str = ""
    wave: int | None = None
    group: str = ""

    @classmethod
    def of(cls, query: QueryDict, *, plan: bool) -> "RowFilter":
        state, verdict, wave = (query.get(k, "") for k in ("state", "verdict", "wave"))
        if plan or state not in (PROBLEMS, *RolloutServer.State.values):
            state = ""
        return cls(
            state=state,
            verdict=verdict if plan and verdict in RolloutServer.Verdict.values else "",
            wave=whole_number(wave, digits=6),
            group=query.get("group", "")[:255],
        )

    def rows(self, rollout: Rollout) -> QuerySet[RolloutServer]:
        rows = rollout.servers.all()
        if self.state == PROBLEMS:
            rows = rows.filter(progress.problems_q())
        elif self.state:
            rows = rows.filter(state=self.state)
        if self.verdict:
            rows = rows.filter(verdict=self.verdict)
        if self.wave is not None:
            rows = rows.filter(wave=self.wave)
        if self.group:
            rows = rows.filter(group_name=self.group)
        return rows

    @property
    def active(self) -> bool:
        return bool(self.state or self.verdict or self.group) or self.wave is not None

    @property
    def query(self) -> str:
        """The filter as a query string, for page links ("" when it chooses nothing)."""
        pairs = [("state", self.state), ("verdict", self.verdict), ("group", self.group)]
        pairs.append(("wave", "" if self.wave is None else str(self.wave)))
        return urlencode([(k, v) for k, v in pairs if v])


@dataclass(frozen=True)
class RowPage:
    """One page of a rollout's rows, where it sits among the rows the filter matches, and
    the links to the pages around it."""

    rows: list[RolloutServer]
    total: int  # rows the filter matches
    start: int  # position of the first row shown, from 1 (0: none shown)
    filter: RowFilter

    @property
    def end(self) -> int:
        return self.start + len(self.rows) - 1 if self.rows else 0

    @property
    def has_previous(self) -> bool:
        return self.start > 1

    @property
    def has_next(self) -> bool:
        return self.end < self.total

    def _link(self, cursor: str = "") -> str:
        query = "&".join(part for part in (self.filter.query, cursor) if part)
        return f"?{query}"

    @property
    def first_link(self) -> str:
        return self._link()

    @property
    def previous_link(self) -> str:
        return self._link(f"before={self.rows[0].pk}") if self.rows else self._link()

    @property
    def next_link(self) -> str:
        return self._link(f"after={self.rows[-1].pk}") if self.rows else self._link()

    @property
    def last_link(self) -> str:
        return self._link("last=1")

    @property
    def polled(self) -> str:
        """The rows shown, for the poller: it asks only about these (ids, runs as a-b)."""
        return encode_ids([r.pk for r in self.rows])


def page_of_rows(shown: RowFilter, rollout: Rollout, query: QueryDict) -> RowPage:
    """The page of the rows `shown` matches that `query` points at (`after`, `before`,
    `last`; none: the first). Two queries: the page, and its position and total."""
    rows = shown.rows(rollout)
    after, before = _row_id(query.get("after")), _row_id(query.get("before"))
    if after is not None:
        found = list(rows.filter(pk__gt=after).order_by("pk")[:PAGE_SIZE])
    elif before is not None:
        found = list(rows.filter(pk__lt=before).order_by("-pk")[:PAGE_SIZE])[::-1]
    elif query.get("last"):
        found = list(rows.order_by("-pk")[:PAGE_SIZE])[::-1]
    else:
        found = None
    if not found or (before is not None and len(found) < PAGE_SIZE):
        # The first page; also where a link past either end (or a short page before) leads.
        found = list(rows.order_by("pk")[:PAGE_SIZE])
    if not found:
        return RowPage([], rows.count(), 0, shown)
    place = rows.aggregate(total=Count("pk"), before=Count("pk", filter=Q(pk__lt=found[0].pk)))
    return RowPage(found, place["total"], place["before"] + 1, shown)


# A selection may span hundreds of small groups: the tables show this many, the groups with
# problems first, and the Group filter offers every one.
GROUPS_SHOWN = 50


def some_groups(groups: list, problems: Callable[[Any], int]) -> tuple[list, int]:
    """(the groups a table shows, how many it leaves out), by name unless some are left out."""
    if len(groups) <= GROUPS_SHOWN:
        return groups, 0
    shown = sorted(groups, key=lambda g: problems(g) == 0)[:GROUPS_SHOWN]
    return shown, len(groups) - GROUPS_SHOWN


def _row_id(value: str | None) -> int | None:
    return whole_number(value)


def encode_ids(ids: list[int]) -> str:
    """[3, 4, 5, 9] → "3-5,9": a page's rows in a short query value."""
    runs: list[list[int]] = []
    for i in sorted(ids):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in runs)


def decode_ids(text: str) -> list[int] | None:
    """The ids `encode_ids` wrote, or None when `text` is not such a value or names more rows
    than a page holds."""
    ids: list[int] = []
    for piece in text.split(",") if text else []:
        low, dash, high = piece.partition("-")
        if _row_id(low) is None or (dash and _row_id(high) is None):
            return None
        first, last = int(low), int(high or low)
        if last < first or len(ids) + last - first >= PAGE_SIZE:
            return None
        ids.extend(range(first, last + 1))
    return ids


@require_GET
@require_role(VIEWER)
def plan_detail(request: HttpRequest, rollout_id: int) -> HttpResponse:
    """The plan as stored: its figures per verdict and per group first, then its rows a page
    at a time (`?verdict=`, `?wave=`, `?group=`; blocked rows one link away). Once confirmed
    (or discarded by a confirm elsewhere) it redirects to the rollout, so the browser's Back
    never shows a live Confirm for a started rollout."""
    rollout = _get_rollout_for_user(request, rollout_id)
    if rollout.state not in (Rollout.State.PLANNED, Rollout.State.DISCARDED):
        if request.htmx:  # the rows' links of a page left open: go to the rollout, whole
            return HttpResponseClientRedirect(reverse("rollout-detail", args=[rollout.pk]))
        return redirect("rollout-detail", rollout.pk)
    shown = RowFilter.of(request.GET, plan=True)
    page = page_of_rows(shown, rollout, request.GET)
    figures = progress.plan_figures(rollout)
    per_group, groups_more = some_groups(figures.groups, _blocked)
    # Each group's image (or a revert's images) may mix types: name each type, not the first.
    types = [] if rollout.target_image_id else progress.target_types(rollout)
    protected = planning.protected_groups((g.id, g.name) for g in figures.groups)
    can_operate = has_role(request, OPERATOR, rollout.project)
    context = {
        "rollout": rollout,
        "page": page,
        "rows": page.rows,
        "counts": figures.counts,
        "calls": figures.calls,
        "sessions": figures.sessions,
        "groups": figures.groups,
        "per_group": per_group,
        "groups_more": groups_more,
        "waves": list(rollout.waves.all()),
        "allowed": lifecycle.allowed(rollout),
        "confirm_token": planning.confirm_token(rollout),
        "expires_at": planning.plan_expires_at(rollout),
        "budget": engine.budget_text(rollout.failure_budget),
        "last_event": rollout.events.first(),
        "can_operate_this": can_operate,
        "plan_set": _plan_set(request, rollout),
        "target_types": types,
        "needs_approval": protected is not None,
        "protected_groups": _some(protected or []),
        # Whoever confirms it cannot approve it either (roles.second_person).
        "cannot_approve": _people(rollout.created_by, request.user.username if can_operate else ""),
    }
    template = "rollouts/plan.html"
    if request.htmx and not request.htmx.boosted:
        template += "#plan-servers-swap"
    response = render(request, template, context)
    add_never_cache_headers(response)
    patch_cache_control(response, no_store=True)
    return response


def _people(*names: str) -> str:
    """ "otto.operator" or "otto.operator, olga.operator": who may not approve."""
    return word_list(dict.fromkeys(n for n in names if n))


@dataclass(frozen=True)
class SiblingPlan:
    """One project's plan of a selection that spanned projects."""

    plan: Rollout
    changing: int  # servers it would change
    current: bool  # the plan this page shows
    may_confirm: bool  # the person operates its project


def _plan_set(request: HttpRequest, rollout: Rollout) -> list[SiblingPlan]:
    """Every plan made from the same selection, one per project (empty for a lone plan)."""
    if not rollout.plan_set:
        return []
    plans = (
        Rollout.objects.filter(plan_set=rollout.plan_set)
        .select_related("project")
        .annotate(
            changing=Count("servers", filter=Q(servers__verdict=RolloutServer.Verdict.CHANGE))
        )
        .order_by("project__name", "pk")
    )
    return [
        SiblingPlan(
            plan=p,
            changing=p.changing,
            current=p.pk == rollout.pk,
            may_confirm=has_role(request, OPERATOR, p.project),
        )
        for p in plans
    ]


@require_POST
@require_role(OPERATOR)
def confirm(request: HttpRequest, rollout_id: int) -> HttpResponse:
    """Start exactly the plan the operator saw: the form carries that page's signed token."""
    rollout = _get_rollout_to_act_on(request, rollout_id, OPERATOR)
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
    if result.confirmed and result.rollout.state == Rollout.State.AWAITING_APPROVAL:
        messages.success(
            request,
            _(
                "Rollout #%(id)d confirmed. It starts once a second person approves it: "
                "any approver other than %(people)s."
            )
            % {"id": rollout.pk, "people": _people(*planning.cannot_approve(result.rollout))},
        )
    elif result.confirmed:
        messages.success(request, _("Rollout #%(id)d confirmed.") % {"id": rollout.pk})
    return redirect("rollout-detail", rollout.pk)  # a replayed confirm changes nothing


@require_POST
@require_role(OPERATOR)
def discard(request: HttpRequest, rollout_id: int) -> HttpResponse:
    """Cancel on the plan page: the plan is discarded (audited; on its timeline)."""
    rollout = _get_rollout_to_act_on(request, rollout_id, OPERATOR)
    if not planning.discard(rollout.pk, by=request.user.username, request=request):
        _audit(request, "rollout.discard", rollout, outcome="refused", state=rollout.state)
        messages.error(request, _("Only a plan that has not been confirmed can be discarded."))
        return redirect("rollout-detail", rollout.pk)
    messages.info(request, _("Plan #%(id)d discarded; nothing was sent.") % {"id": rollout.pk})
    if rollout.retry_of_id:  # a retry or revert: back to the rollout it follows up
        return redirect("rollout-detail", rollout.retry_of_id)
    groups = set(rollout.servers.order_by().values_list("group_id", flat=True).distinct()[:2])
    if len(groups) == 1 and None not in groups and "" not in groups:
        return redirect("groups")  # "Update this group" is where a one-group plan begins
    return redirect("servers")


@require_POST
@require_role(OPERATOR)
def replan(request: HttpRequest, rollout_id: int) -> HttpResponse:
    """A fresh plan for the same servers, image and options (after a stale, expired or
    discarded plan). Servers the cloud no longer has are left out, and said so; when no plan
    can be made, the form comes back with the plan's choices filled in."""
    old = _get_rollout_to_act_on(request, rollout_id, OPERATOR)
    names = dict(old.servers.values_list("server_id", "server_name"))
    server_ids, gone = planning.without_gone(list(names), names)
    _say_gone(request, gone)
    rollout, errors = planning.plan_again(
        old,
        server_ids,
        created_by=request.user.username,
        reason=old.reason,
        retry_of=old.retry_of,
        kind=old.kind,
        safety=planning.Safety.of(old),
        reuse=False,
    )
    if rollout is None:
        chosen = selections.replace(request, server_ids)
        form = RolloutForm(
            initial=RolloutForm.initial_of(old),
            server_ids=server_ids,
            max_servers=settings.ROLLOUT_MAX_SERVERS,
        )
        scope = Scope(server_ids, selection=chosen)
        retry_of = str(old.retry_of_id or "")
        context = _new_context(form, scope, errors=errors, retry_of=retry_of, refused=True)
        return render(request, "rollouts/new.html", context, status=400)
    _audit(request, "rollout.plan", rollout, replaces=old.pk)
    return redirect("rollout-plan", rollout.pk)


# ---- watch ------------------------------------------------------------------------------


@require_GET
@require_role(VIEWER)
def detail(request: HttpRequest, rollout_id: int) -> HttpResponse:
    """The rollout as it runs: its summary first (outcome, controls, waves, counts per state
    and per group, the timeline), then one page of its rows (`?state=`, `?wave=`, `?group=`;
    the problems one link away). The poller asks only about the rows of that page.

    An htmx request (the rows' filters and page links) gets the rows and, beside them, a
    fresh summary and poller, so every part of the page speaks of the same moment.
    """
    rollout = _get_rollout_for_user(request, rollout_id)
    if rollout.state == Rollout.State.PLANNED:
        return redirect("rollout-plan", rollout.pk)
    now = timezone.now()  # before any row is read: the poller then misses no change
    page = page_of_rows(RowFilter.of(request.GET, plan=False), rollout, request.GET)
    totals = summary(rollout)
    groups = progress.by_group(rollout)
    events = list(rollout.events.all()[: TIMELINE_LENGTH + 1])
    context = {
        "rollout": rollout,
        "page": page,
        "rows": page.rows,
        "summary": totals,
        **_groups(groups),
        "group_names": [g.key for g in groups if g.key],
        "state_choices": RolloutServer.State.choices,
        # A discarded follow-up changed nothing: it is in the audit, not on the summary.
        "derived": rollout.derived.exclude(state=Rollout.State.DISCARDED),
        "demo": sso.demo_identities(request),
        **_timeline(events, whole=True),
        "poll_query": _poll_query(now, page.polled, _newest(events), page),
        **_live_context(request, rollout, totals),
    }
    template = "rollouts/detail.html"
    if request.htmx and not request.htmx.boosted:
        context["polling"] = True
        template += "#rollout-servers-swap"
    return render(request, template, context)


def _groups(groups: list[progress.Tally]) -> dict:
    """The per-group table's context: it is sent (again) because some row moved."""
    shown, more = some_groups(groups, lambda g: g.problems)
    return {"groups": shown, "groups_more": more, "groups_moved": True}


def _blocked(group: progress.GroupChange) -> int:
    return group.blocked


def _timeline(events: list, *, whole: bool) -> dict:
    """The timeline's events (newest first) and whether the page replaces its timeline
    (`whole`) or adds them at its top."""
    return {
        "events": events[:TIMELINE_LENGTH],
        "more_events": len(events) > TIMELINE_LENGTH,
        "whole_timeline": whole,
    }


def _newest(events: list) -> int:
    return max((e.pk for e in events), default=0)


def _poll_query(
    now: datetime, rows: str | None, event: int, page: "RowPage | Matching | None" = None
) -> str:
    """The poller's query: the answer's time, the rows the page shows (None: the first
    page's), the newest event it has, and for a filtered list its filter and how many rows it
    matched when shown (so the poll can tell when rows join or leave it)."""
    pairs = [("since", now.isoformat()), ("event", str(event))]
    if rows is not None:
        pairs.append(("rows", rows))
    query = urlencode(pairs, safe=",")
    if page is not None and page.filter.active:
        query += f"&{page.filter.query}&{urlencode([('matched', page.total)])}"
    return query


@dataclass(frozen=True)
class Matching:
    """A filtered list as the poll sees it: its filter, the rows it matched when shown
    (`total`, carried along by the poller) and the rows it matches now (None: not counted,
    as no row moved)."""

    filter: RowFilter
    total: int
    now: int | None


def _matching(request: HttpRequest, rollout: Rollout, moved: bool) -> Matching | None:
    """For a filtered list, how many rows it matches now (one count, only when a row moved):
    rows that join the filter are not added to the page shown, so the page says so."""
    shown = RowFilter.of(request.GET, plan=False)
    matched = _int(request.GET.get("matched"))
    if not shown.active or "matched" not in request.GET:
        return None
    return Matching(shown, matched, shown.rows(rollout).count() if moved else None)


def _live_context(request: HttpRequest, rollout: Rollout, totals: progress.Summary) -> dict:
    """What the live part of the page needs besides the rows and the timeline: controls,
    waves (each with its rows counted by state), budget."""
    allowed = lifecycle.allowed(rollout)
    tallies = progress.by_wave(rollout)
    failed = totals.counts.get(RolloutServer.State.FAILED, 0)
    waves = [
        (wave, tallies.get(wave.number) or progress.Tally("wave", wave.number))
        for wave in rollout.waves.all()
    ]
    # A wave stopped by a pause or halt keeps its state, but its jobs may all have ended.
    settled = [
        w.number for w, t in waves if w.state == RolloutWave.State.STOPPED and not t.in_flight
    ]
    ended = progress.last_ended(rollout, settled)
    waves = [(w, t, ended.get(w.number)) for w, t in waves]
    # A wave waiting for its users is not sent yet: no estimate from the pace holds then.
    users = (RolloutWave.State.DRAINING, RolloutWave.State.LOGGING_OFF)
    waiting = next((w for w, _t, _e in waves if w.state in users), None)
    return {
        "allowed": allowed,
        "waiting_for_users": waiting if rollout.state == Rollout.State.RUNNING else None,
        "can_operate_this": has_role(request, OPERATOR, rollout.project),
        "can_approve_this": "approve" in allowed and can_approve(request, rollout),
        "can_reject_this": "reject" in allowed and has_role(request, APPROVER, rollout.project),
        "approval": _approval(rollout),
        "waves": waves,
        "budget_used": max(0, failed - rollout.budget_base),
        "budget": engine.budget_text(rollout.failure_budget),
        "resume_choices": _resume_choices(failed),
        "signoff_pending": signoff.pending(rollout),
        "revertable": bool(totals.counts.get(RolloutServer.State.SUCCEEDED))
        and rollout.servers.filter(state="succeeded").exclude(previous_image_id="").exists(),
    }


# Newest first. A wave adds about six events, so a rollout of many small waves has hundreds:
# the page shows the latest, the JSON export carries every one.
TIMELINE_LENGTH = 50

RESUME_LABELS = [
    ("continue", gettext_lazy("Continue with the next waves")),
    ("skip_failed", gettext_lazy("Skip the failed servers, then continue")),
    ("retry_failed", gettext_lazy("Plan a retry of the failed servers, and continue")),
]


def _resume_choices(failed: int) -> list[tuple[str, str, str]]:
    """(value, label, why it is not offered) for the resume menu: with no failed server,
    skipping or retrying the failed ones would do nothing."""
    why = "" if failed else _("no server failed")
    return [
        (value, label, "" if value == control.CONTINUE else why) for value, label in RESUME_LABELS
    ]


@dataclass(frozen=True)
class ApprovalWait:
    """Why a rollout waits, and who may release it."""

    groups: str  # its protected groups, named ("": none named, or the policy changed)
    not_by: str  # who may not approve: who planned and who confirmed it


def _approval(rollout: Rollout) -> ApprovalWait | None:
    """For a rollout awaiting approval (one query then, none otherwise)."""
    if rollout.state != Rollout.State.AWAITING_APPROVAL:
        return None
    groups = _some(planning.approval_needed(rollout) or [])
    return ApprovalWait(groups, _people(*planning.cannot_approve(rollout)))


@require_GET
@require_role(VIEWER)
def poll(request: HttpRequest, rollout_id: int) -> HttpResponse:
    """The live part of the rollout page: what changed since the last poll, and only that.

    `since` is the last answer's time, `rows` the rows the page shows (`encode_ids`; without
    it, the first page's), `event` the newest timeline event the page has. Reads the database
    only, in a fixed number of queries whatever the size: 204 when nothing changed; else the
    summary (the per-group counts only when some row moved), the page's rows that moved (never
    a row the page does not show) and the new events; 286 (stop polling) once the rollout is
    final, with nothing more.
    """
    rollout = _get_rollout_for_user(request, rollout_id)
    since = _parse_since(request.GET.get("since"))
    shown = decode_ids(request.GET.get("rows", ""))
    if shown is None:
        raise BadRequest(_("The rows to poll are not a page's rows."))
    seen = _int(request.GET.get("event"))
    now = timezone.now()
    final = rollout.is_final
    moved = since is None or rollout.servers.filter(updated_at__gte=since).exists()
    if not moved and rollout.updated_at < since and not final:
        return HttpResponse(status=204)
    changed = []
    if since is not None and moved:
        if "rows" in request.GET:
            on_page = Q(pk__in=shown)
        else:
            on_page = Q(pk__in=Subquery(rollout.servers.order_by("pk").values("pk")[:PAGE_SIZE]))
        changed = list(rollout.servers.filter(on_page, updated_at__gte=since))
    if seen:
        events = list(rollout.events.filter(pk__gt=seen)[:TIMELINE_LENGTH])
    else:
        events = list(rollout.events.all()[: TIMELINE_LENGTH + 1])
    totals = summary(rollout)
    rows = encode_ids(shown) if "rows" in request.GET else None
    matching = _matching(request, rollout, moved)
    context = {
        "rollout": rollout,
        "changed": changed,
        "summary": totals,
        "polling": True,
        **(_groups(progress.by_group(rollout)) if moved else {"groups_moved": False}),
        **_timeline(events, whole=not seen),
        "matching": matching,
        "poll_query": _poll_query(now, rows, max(seen, _newest(events)), matching),
        **_live_context(request, rollout, totals),
    }
    response = render(request, "rollouts/detail.html#rollout-poll", context)
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
    rollout = _get_rollout_to_act_on(request, rollout_id, APPROVER)
    approval = planning.approve(rollout.pk, request.user.username, request=request)
    if approval.refused == planning.SAME_PERSON:
        _audit(
            request, "rollout.approve", rollout, outcome="refused", why="submitter cannot approve"
        )
        raise PermissionDenied(_("A second person must approve this rollout."))
    if approval.approved:
        messages.success(request, _("Approved; the rollout starts now."))
    else:
        _refused(request, rollout, "approve")
    return redirect("rollout-detail", rollout.pk)


@require_POST
@require_role(APPROVER)
def reject(request: HttpRequest, rollout_id: int) -> HttpResponse:
    """An approver turns the rollout down, saying why (shown on its timeline)."""
    rollout = _get_rollout_to_act_on(request, rollout_id, APPROVER)
    reason = request.POST.get("reason", "").strip()
    if not reason or len(reason) > 500:
        messages.error(request, _("Say why it is rejected (at most 500 characters)."))
        return redirect("rollout-detail", rollout.pk)
    if freetext.hides_direction(reason):
        messages.error(request, freetext.HIDDEN_DIRECTION)
        return redirect("rollout-detail", rollout.pk)
    if control.reject(rollout.pk, request.user.username, reason, request=request):
        messages.success(request, _("Rejected: nothing of this rollout will be sent."))
    else:
        _refused(request, rollout, "reject")
    return redirect("rollout-detail", rollout.pk)


# What a refused action would have done to the rollout, in the reader's language.
_DONE = {
    "approve": pgettext_lazy("rollout", "approved"),
    "reject": pgettext_lazy("rollout", "rejected"),
    "cancel": pgettext_lazy("rollout", "cancelled"),
    "pause": pgettext_lazy("rollout", "paused"),
    "resume": pgettext_lazy("rollout", "resumed"),
    "revert": pgettext_lazy("rollout", "reverted"),
    "retry": pgettext_lazy("rollout", "retried"),
}


def _refused(request: HttpRequest, rollout: Rollout, action: str) -> None:
    """An action the rollout's state does not allow (someone else, or the worker, moved it
    meanwhile): audited, and said plainly with what to do."""
    rollout.refresh_from_db()
    _audit(request, f"rollout.{action}", rollout, outcome="refused", state=rollout.state)
    messages.error(
        request,
        _(
            "Rollout #%(id)s is %(state)s now, so it cannot be %(done)s. Its page below "
            "shows what it can do now and, on its timeline, who moved it last."
        )
        % {
            "id": rollout.pk,
            "state": rollout.get_state_display().lower(),
            "done": _DONE.get(action, action),
        },
    )


@require_http_methods(["GET", "POST"])
@require_role(OPERATOR)
def cancel(request: HttpRequest, rollout_id: int) -> HttpResponse:
    """GET: a confirmation that says what cancelling stops; POST: cancel."""
    rollout = _get_rollout_to_act_on(request, rollout_id, OPERATOR)
    if request.method == "GET":
        if not lifecycle.allows(rollout, "cancel"):
            return redirect("rollout-detail", rollout.pk)
        states = Counter(rollout.servers.values_list("state", flat=True))
        context = {
            "rollout": rollout,
            "not_sent": states[RolloutServer.State.PENDING] + states[RolloutServer.State.PLANNED],
            "in_flight": sum(states[s] for s in RolloutServer.ACTIVE_STATES)
            - states[RolloutServer.State.PENDING],
            "done": states[RolloutServer.State.SUCCEEDED] + states[RolloutServer.State.FAILED],
        }
        return render(request, "rollouts/cancel.html", context)
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
    rollout = _get_rollout_to_act_on(request, rollout_id, OPERATOR)
    if control.pause(rollout.pk, by=request.user.username, request=request):
        messages.info(request, _("Paused: nothing more is sent; jobs in flight are still tracked."))
    else:
        _refused(request, rollout, "pause")
    return redirect("rollout-detail", rollout.pk)


@require_POST
@require_role(OPERATOR)
def resume(request: HttpRequest, rollout_id: int) -> HttpResponse:
    """Go on after a pause, a halt or the canary's sign-off hold."""
    rollout = _get_rollout_to_act_on(request, rollout_id, OPERATOR)
    how = request.POST.get("how", control.CONTINUE)
    if how not in control.RESUME_CHOICES:
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


@require_http_methods(["GET", "POST"])
@require_role(OPERATOR)
def revert(request: HttpRequest, rollout_id: int) -> HttpResponse:
    """GET: pick which servers go back (their previous image by name, and whether that
    re-creates drift from their group's image). POST: plan the revert of those."""
    rollout = _get_rollout_to_act_on(request, rollout_id, OPERATOR)
    if not lifecycle.allows(rollout, "revert"):
        if request.method == "GET":  # a look is no attempt: said, not audited (as cancel's)
            state = rollout.get_state_display().lower()
            text = _("This rollout cannot be reverted while it is %(state)s.")
            messages.info(request, text % {"state": state})
            return redirect("rollout-detail", rollout.pk)
        _refused(request, rollout, "revert")
        return redirect("rollout-detail", rollout.pk)
    if request.method == "GET":
        return render(request, "rollouts/revert.html", _revert_context(rollout))
    chosen = [i for i in request.POST.getlist("server") if i]
    if not chosen and "picked" in request.POST:
        # The page's list was sent with nothing ticked; a script that names no server gets
        # every succeeded one, as the API does.
        messages.error(request, _("Choose at least one server to revert."))
        return redirect("rollout-revert", rollout.pk)
    reverted = control.revert(rollout.pk, chosen, by=request.user.username)
    if not _followed_up(request, rollout, "revert", reverted):
        return redirect("rollout-detail", rollout.pk)
    plan = reverted.plan
    _audit(request, "rollout.revert", plan, reverts=rollout.pk, servers=plan.servers.count())
    return redirect("rollout-plan", plan.pk)


def _followed_up(
    request: HttpRequest, rollout: Rollout, action: str, follow_up: control.FollowUp
) -> bool:
    """Whether a retry or revert made its plan; if not, the person is told why."""
    if follow_up.refused == control.STATE_CONFLICT:
        _refused(request, rollout, action)
    for message in follow_up.errors:
        messages.error(request, message)
    return follow_up.plan is not None


@dataclass(frozen=True)
class RevertRow:
    row: RolloutServer
    previous_name: str
    group_image_name: str
    drift: bool  # going back puts it on another image than its group's


def _revert_context(rollout: Rollout) -> dict:
    rows = list(
        rollout.servers.filter(state=RolloutServer.State.SUCCEEDED).exclude(previous_image_id="")
    )
    images = planning.image_map(rollout.project_id)
    servers = Server.objects.select_related("group").in_bulk([r.server_id for r in rows])
    listed = []
    for row in rows:
        server = servers.get(row.server_id)
        group = server.group if server else None
        group_image = group.image_id if group else ""
        previous = images.get(row.previous_image_id)
        listed.append(
            RevertRow(
                row=row,
                previous_name=previous.name if previous else row.previous_image_id,
                group_image_name=getattr(images.get(group_image), "name", group_image),
                drift=bool(group_image) and row.previous_image_id != group_image,
            )
        )
    return {"rollout": rollout, "rows": listed, "drifting": sum(r.drift for r in listed)}


@require_POST
@require_role(OPERATOR)
def retry(request: HttpRequest, rollout_id: int) -> HttpResponse:
    """A new plan of only the failed and unknown servers, linked to this rollout."""
    rollout = _get_rollout_to_act_on(request, rollout_id, OPERATOR)
    already = {p.pk for p in planning.open_follow_ups(rollout, Rollout.Kind.RETRY)}
    retried = control.retry(rollout.pk, by=request.user.username)
    if not _followed_up(request, rollout, "retry", retried):
        return redirect("rollout-detail", rollout.pk)
    plan = retried.plan
    if plan.pk in already:  # asked again: the open retry plan, not one more beside it
        messages.info(
            request,
            _("Plan #%(id)d already retries these servers: confirm or discard it.")
            % {"id": plan.pk},
        )
        return redirect("rollout-plan", plan.pk)
    _audit(request, "rollout.retry", plan, retry_of=rollout.pk, servers=retried.servers)
    return redirect("rollout-plan", plan.pk)


# ---- history and export -------------------------------------------------------------------


@require_GET
@require_role(VIEWER)
def history(request: HttpRequest) -> HttpResponse:
    rollouts = (
        Rollout.objects.select_related("project")
        .prefetch_related("derived")
        .annotate(
            total=Count("servers"),
            # As the rollout page counts "N of M servers done": skipped servers never change.
            to_change=Count(
                "servers",
                filter=Q(servers__verdict=RolloutServer.Verdict.CHANGE)
                & ~Q(servers__state=RolloutServer.State.SKIPPED),
            ),
            succeeded=Count("servers", filter=Q(servers__state=RolloutServer.State.SUCCEEDED)),
            failed=Count("servers", filter=Q(servers__state=RolloutServer.State.FAILED)),
            awaiting_signoff=signoff.held_for_signoff(),
        )
        .exclude(state=Rollout.State.DISCARDED)
    )
    # Every project, or the one `?project=` names (an unknown name: every project, said so).
    choice = chosen_project(request)
    if choice.project is not None:
        rollouts = rollouts.filter(project=choice.project)
    filters = {k: request.GET.get(k, "").strip() for k in ("state", "user", "group", "date")}
    # A value that cannot be is named and left out, the other filters still apply (as on the
    # servers and audit pages): filtering by it would show nothing while the form showed "any".
    refused = []
    if filters["state"] in Rollout.State.values:
        rollouts = rollouts.filter(state=filters["state"])
    elif filters["state"]:
        refused.append(
            (_("State"), _("No state is called “%(value)s”.") % {"value": filters["state"]})
        )
    if filters["user"]:
        rollouts = rollouts.filter(created_by__icontains=filters["user"])
    if filters["group"]:
        rollouts = rollouts.filter(servers__group_name__icontains=filters["group"]).distinct()
    if filters["date"]:
        try:
            day = datetime.strptime(filters["date"], "%Y-%m-%d").date()
            rollouts = rollouts.filter(created_at__date=day)
        except ValueError:
            refused.append((_("Date"), _("The date must look like 2026-11-26.")))
    page = Paginator(rollouts.order_by("-created_at"), 50).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "filters": filters,
        "refused_filters": refused,
        "states": Rollout.State.choices,
        "project_choice": choice,
        "query": choice.params.urlencode(),
    }
    return render(request, "rollouts/list.html", context)


EXPORT_FIELDS = [
    "server_id",
    "server_name",
    "group_name",
    "from_image_id",
    "from_image_name",
    "to_image_id",
    "to_image_name",
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
ROLLOUT_COLUMNS = ["rollout", "url", "kind", "origin", "follow_ups", "outcome"]
# The CSV's header row in the language of the person downloading it; the JSON export keeps
# these names as its stable keys.
COLUMN_TITLES = {
    "rollout": pgettext_lazy("export column", "rollout"),
    "url": pgettext_lazy("export column", "url"),
    "kind": pgettext_lazy("export column", "kind"),
    "origin": pgettext_lazy("export column", "origin"),
    "follow_ups": pgettext_lazy("export column", "follow_ups"),
    "outcome": pgettext_lazy("export column", "outcome"),
    "server_id": pgettext_lazy("export column", "server_id"),
    "server_name": pgettext_lazy("export column", "server_name"),
    "group_name": pgettext_lazy("export column", "group_name"),
    "from_image_id": pgettext_lazy("export column", "from_image_id"),
    "from_image_name": pgettext_lazy("export column", "from_image_name"),
    "to_image_id": pgettext_lazy("export column", "to_image_id"),
    "to_image_name": pgettext_lazy("export column", "to_image_name"),
    "verdict": pgettext_lazy("export column", "verdict"),
    "reason_code": pgettext_lazy("export column", "reason_code"),
    "state": pgettext_lazy("export column", "state"),
    "job_id": pgettext_lazy("export column", "job_id"),
    "error_code": pgettext_lazy("export column", "error_code"),
    "error_message": pgettext_lazy("export column", "error_message"),
    "submitted_at": pgettext_lazy("export column", "submitted_at"),
    "finished_at": pgettext_lazy("export column", "finished_at"),
    "verified": pgettext_lazy("export column", "verified"),
}


def _iso(value):
    """Times as ISO 8601 in UTC ("2026-12-01T20:35:00Z"); anything else unchanged."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


def _links(rollout: Rollout) -> tuple[str, list[dict]]:
    """ "Revert of #1" and [{"label": "Retried by", "rollout": 5, "state": …}, …]: with its
    state, so a revert only planned does not read as done."""
    origin = f"{rollout.origin_label} #{rollout.retry_of_id}" if rollout.retry_of_id else ""
    follow_ups = [
        {
            "label": d.follow_up_label,
            "rollout": d.pk,
            "kind": d.kind,
            "state": d.state,
            "url": _url(d.pk),
        }
        for d in rollout.derived.order_by("pk")
    ]
    return origin, follow_ups


def _follow_up_cell(follow_up: dict) -> str:
    """ "Reverted by #5" once it succeeded, else with its state ("Reverted by #5 (Planned)",
    "(Running)", "(Cancelled)"), so a follow-up not done does not read as done."""
    text = f"{follow_up['label']} #{follow_up['rollout']}"
    if follow_up["state"] != Rollout.State.SUCCEEDED:
        text += f" ({Rollout.State(follow_up['state']).label})"
    return text


def _url(rollout_id: int) -> str:
    return settings.DASHBOARD_BASE_URL + reverse("rollout-detail", args=[rollout_id])


@require_GET
@require_role(VIEWER)
def export(request: HttpRequest, rollout_id: int, fmt: str) -> HttpResponse:
    if fmt not in ("csv", "json"):
        raise Http404(_("Export as csv or json."))
    rollout = _get_rollout_for_user(request, rollout_id)
    rows = [[_iso(v) for v in r] for r in rollout.servers.values_list(*EXPORT_FIELDS)]
    origin, follow_ups = _links(rollout)
    outcome = summary(rollout).outcome
    filename = f"rollout-{rollout.pk}.{fmt}"
    if fmt == "json":
        body = {
            "rollout": rollout.pk,
            "project": rollout.project.name,
            "state": rollout.state,
            "outcome": outcome,
            "kind": rollout.kind,
            "url": _url(rollout.pk),
            "retry_of": rollout.retry_of_id,
            "retry_of_url": _url(rollout.retry_of_id) if rollout.retry_of_id else None,
            "origin": origin,
            "follow_ups": follow_ups,
            "created_by": rollout.created_by,
            "confirmed_by": rollout.confirmed_by,
            "approved_by": rollout.approved_by,
            "reason": rollout.reason,
            "target_image_id": rollout.target_image_id,
            "target_image_name": rollout.target_image_name,
            "preset": rollout.preset,
            "created_at": _iso(rollout.created_at),
            "confirmed_at": _iso(rollout.confirmed_at),
            "started_at": _iso(rollout.started_at),
            "finished_at": _iso(rollout.finished_at),
            "servers": [dict(zip(EXPORT_FIELDS, r, strict=True)) for r in rows],
            "events": [_event_json(e) for e in rollout.events.all()],
        }
        response = HttpResponse(
            json.dumps(body, default=str, indent=1), content_type="application/json"
        )
    else:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        writer = csv.writer(response)
        writer.writerow([str(COLUMN_TITLES.get(c, c)) for c in (*ROLLOUT_COLUMNS, *EXPORT_FIELDS)])
        shared = [
            rollout.pk,
            _url(rollout.pk),
            rollout.kind,
            origin,
            "; ".join(_follow_up_cell(f) for f in follow_ups),
            outcome,
        ]
        for row in rows:
            writer.writerow([safe_cell(v) for v in (*shared, *row)])
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _event_json(event) -> dict:
    return {
        "at": _iso(event.at),
        "wave": event.wave,
        "action": event.action,
        "from": event.from_state,
        "to": event.to_state,
        "actor": event.actor,
        "reason": event.reason,
        "details": event.details,
    }
