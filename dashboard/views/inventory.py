"""Inventory pages: overview, groups, servers, server detail, images, and the sync button.

Every page reads the database only, in a fixed number of queries, and says how fresh
its data is. With several projects every page shows all of them, with a project column;
`?project=<name>` narrows a page to one, and the links a page builds keep it.
"""

from dataclasses import dataclass
from urllib.parse import urlencode

from django.contrib import messages
from django.db.models import Count, F, QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from dashboard import audit, inventory, keyset, projects
from dashboard.forms import ServerFilterForm
from dashboard.models import (
    Image,
    InventoryFigures,
    Project,
    Rollout,
    RolloutServer,
    Server,
    ServerGroup,
    SyncRun,
)
from dashboard.roles import OPERATOR, VIEWER, projects_with, require_in, require_role
from dashboard.rollouts import selection as selections
from dashboard.rollouts import signoff

PAGE_SIZE = 50


@dataclass(frozen=True)
class ProjectChoice:
    """What a page's `?project=` chose."""

    project: Project | None  # None: every project
    # A name no configured project has (cut to a name's length): the page shows every
    # project and says so.
    unknown: str
    several: bool  # more than one project configured: project columns and the switcher
    params: QueryDict  # the request's query, an unknown project left out

    @property
    def query(self) -> str:
        """`project=<name>` for the links a page builds ("" for every project)."""
        return urlencode({"project": self.project.name}) if self.project else ""


def chosen_project(request: HttpRequest) -> ProjectChoice:
    """The configured project `?project=` names. Asked once per request: the navigation's
    switcher asks again."""
    choice = getattr(request, "_project_choice", None)
    if choice is None:
        name = request.GET.get("project", "")
        project = projects.by_name(name) if name else None
        unknown = name[:63] if name and project is None else ""
        params = request.GET.copy()
        if unknown:
            params.pop("project")
        choice = ProjectChoice(project, unknown, projects.several(), params)
        request._project_choice = choice
    return choice


def _in(project: Project | None, rows: QuerySet) -> QuerySet:
    return rows if project is None else rows.filter(project=project)


def freshness_of(project: Project | None) -> dict:
    """What the freshness badge shows of one project, or of all (then the stalest)."""
    fresh = inventory.freshness(project)
    stalest = min(
        fresh["projects_freshness"],
        # Never synced is the stalest of all.
        key=lambda f: (f.last_synced is not None, f.last_synced or 0),
        default=None,
    )
    return {
        **fresh,
        "stalest": stalest,
        "freshness_project": project,
        "several_projects": projects.several(),
    }


def _image_names(project: Project | None = None) -> dict[str, Image]:
    """Images by cloud id. A public image has one id in every project of a region and is
    the same image in each, so one row per id is enough to name it."""
    return {i.id: i for i in _in(project, Image.objects.all())}


@require_GET
@require_role(VIEWER)
def overview(request: HttpRequest) -> HttpResponse:
    choice = chosen_project(request)
    project = choice.project
    # Figures the sync stored with its snapshot: no server is counted per request.
    figures = inventory.fleet_figures(project)
    totals = {
        "servers": figures.servers,
        "drift": figures.servers_drifted,
        "maintenance": figures.servers_in_maintenance,
        "sessions": figures.sessions,
        "busy": figures.servers_busy,
    }
    drifted_groups = (
        _in(project, ServerGroup.objects.filter(gone=False, servers_drifted__gt=0))
        .select_related("project")
        .annotate(drift=F("servers_drifted"))
        .order_by("-servers_drifted", "name")
    )
    active = _in(project, Rollout.objects.filter(state__in=Rollout.ACTIVE_STATES))
    fresh = freshness_of(project)
    context = {
        "totals": totals,
        "group_count": figures.groups,
        "drifted_groups": drifted_groups,
        "active_rollouts": active.select_related("project").annotate(
            awaiting_signoff=signoff.held_for_signoff()
        )[:20],
        "last_run": _in(project, SyncRun.objects.select_related("project"))
        .order_by("-started_at")
        .first(),
        "project_rows": _project_rows(fresh) if choice.several and project is None else [],
        "project_choice": choice,
        **fresh,
    }
    return render(request, "overview.html", context)


def _project_rows(fresh: dict) -> list[tuple[inventory.ProjectFreshness, InventoryFigures]]:
    """Each project's freshness beside the figures its last sync stored (a row each)."""
    return [(f, inventory.fleet_figures(f.project)) for f in fresh["projects_freshness"]]


@require_GET
@require_role(VIEWER)
def groups(request: HttpRequest) -> HttpResponse:
    choice = chosen_project(request)
    # Per-group figures the sync stored (`sessions` is a stored field of its own).
    rows = (
        _in(choice.project, ServerGroup.objects.filter(gone=False))
        .select_related("project")
        .annotate(
            live=F("servers_live"),
            drift=F("servers_drifted"),
            maintenance=F("servers_in_maintenance"),
        )
    )
    context = {
        "groups": rows,
        "images": _image_names(choice.project),
        "project_choice": choice,
        **freshness_of(choice.project),
    }
    return render(request, "groups/list.html", context)


@require_GET
@require_role(VIEWER)
def servers(request: HttpRequest) -> HttpResponse:
    choice = chosen_project(request)
    group_list = list(_in(choice.project, ServerGroup.objects.filter(gone=False)))
    image_rows = sorted(
        _in(choice.project, Image.objects.select_related("project")), key=_by_name_and_project
    )
    images = {i.id: i for i in image_rows}
    form, refused = _applied_filters(choice.params, group_list, image_rows)
    matching = form.filter(Server.objects.select_related("group", "project"))
    ordering = form.ordering()
    try:
        page = keyset.paginate(matching, ordering, request.GET.get("cursor", ""), PAGE_SIZE)
    except keyset.BadCursor as problem:
        # An old or damaged page link: the first page, saying why, rather than an error.
        page = keyset.paginate(matching, ordering, "", PAGE_SIZE)
        page.notes.append(f"{str(problem).capitalize()}; showing the first page.")
    context = {
        "form": form,
        "refused_filters": refused,
        # Actions on every matching server only for a filter that narrows the fleet and
        # holds no refused value: the list then shows exactly what the URL asked for.
        "whole_filter": not refused and bool(form.active_filters()),
        "page": page,
        "images": images,
        # Links never carry a cursor into another filter or sort: those start at page one.
        # They keep a refused value, so every page of the list says it was refused.
        "query": _query_without(choice.params, "page", "cursor"),
        "sort_query": _query_without(choice.params, "page", "cursor", "sort"),
        "current_sort": ordering.name,
        # The stored selection: ticks survive paging and filter changes.
        "selection": (chosen := selections.current(request)),
        "selected_ids": set(chosen.server_ids) if chosen else set(),
        "project_choice": choice,
        **freshness_of(choice.project),
    }
    template = "servers/list.html"
    # A history restore (Back after htmx paging) replaces the whole body: the full page.
    if request.htmx and not (request.htmx.boosted or request.htmx.history_restore_request):
        template += "#server-results"
    return render(request, template, context)


def _applied_filters(
    params: QueryDict, groups: list[ServerGroup], images: list[Image]
) -> tuple[ServerFilterForm, list[tuple[str, str]]]:
    """The filter form of the values that are valid, and (label, reason) of each refused one.

    A refused value is left out rather than the whole form: an invalid form would filter
    nothing while its widgets still showed every value as applied.
    """

    def bound(data: QueryDict) -> ServerFilterForm:
        return ServerFilterForm(data or None, groups=groups, images=images)

    asked = bound(params)
    if not asked.errors:
        return asked, []
    refused = [
        (asked[name].label if name in asked.fields else "", error)
        for name, errors in asked.errors.items()
        for error in errors
    ]
    return bound(_without(params, *asked.errors)), refused


def _by_name_and_project(image: Image) -> tuple[str, str]:
    return image.name.lower(), image.project.name


def _without(params: QueryDict, *names: str) -> QueryDict:
    query = params.copy()
    for name in names:
        query.pop(name, None)
    return query


def _query_without(params: QueryDict, *names: str) -> str:
    return _without(params, *names).urlencode()


@require_GET
@require_role(VIEWER)
def server_detail(request: HttpRequest, server_id: str) -> HttpResponse:
    servers = Server.objects.with_last_seen().select_related("group", "project")
    server = get_object_or_404(servers, pk=server_id)
    images = _image_names(server.project)
    seen = list(server.images_seen.all())
    for sighting in seen:
        if not server.gone and sighting.image_id == server.image_id:
            sighting.last_seen = server.last_seen  # still on it at the last sync
    context = {
        "server": server,
        "image": images.get(server.image_id),
        "group_image": images.get(server.group.image_id) if server.group else None,
        "images": images,
        "seen": seen,
        "rollout_rows": RolloutServer.objects.filter(server_id=server.id)
        .select_related("rollout")
        .order_by("-rollout__created_at")[:50],
        # The freshness of the server's own project, whichever the page was asked for.
        **freshness_of(server.project),
    }
    return render(request, "servers/detail.html", context)


@require_GET
@require_role(VIEWER)
def images(request: HttpRequest) -> HttpResponse:
    choice = chosen_project(request)
    project = choice.project
    running = {
        (project_id, image_id): n
        for project_id, image_id, n in _in(project, Server.objects.filter(gone=False))
        .values_list("project_id", "image_id")
        .annotate(n=Count("id"))
        .values_list("project_id", "image_id", "n")
    }
    used_by: dict[tuple[int, str], list[ServerGroup]] = {}
    for group in _in(project, ServerGroup.objects.filter(gone=False)):
        used_by.setdefault((group.project_id, group.image_id), []).append(group)
    rows = [
        (image, running.get(key, 0), used_by.get(key, []))
        for image in _in(project, Image.objects.filter(gone=False)).select_related("project")
        for key in [(image.project_id, image.id)]
    ]
    context = {"rows": rows, "project_choice": choice, **freshness_of(project)}
    return render(request, "images/list.html", context)


@require_POST
@require_role(OPERATOR)
def sync(request: HttpRequest) -> HttpResponse:
    """Start (or join) a sync of the page's project, or of every project. From htmx: the
    freshness badge, swapped in place, which then polls until the syncs are done. From a
    plain form: back to the page it came from."""
    project = projects.by_name(request.POST.get("project", ""))
    who = request.user.username
    if project is not None:
        require_in(request, OPERATOR, project)
        requested = [inventory.request_sync("manual", who, project)]
    else:
        # Every project the person operates (all of them with the global role).
        mine = projects_with(request, OPERATOR)
        requested = [
            inventory.request_sync("manual", who, p)
            for p in projects.rows()
            if mine is None or p.name in mine
        ]
    for run, started in requested:
        target = f"sync #{run.pk}"
        # Joining a running sync changes nothing: such rows count against the source's ration,
        # so a script pressing refresh cannot grow the trail without end.
        if started or audit.within_ration(request, "sync.request", target=target):
            audit.record(
                request, "sync.request", target=target, project=run.project_id, joined=not started
            )
    if request.htmx:
        return _freshness_badge(request, freshness_of(project))
    if any(started for _run, started in requested):
        messages.info(request, _("Inventory refresh started."))
    else:
        messages.info(request, _("A refresh is already running; you joined it."))
    return redirect(local_path(request, request.POST.get("next", "")))


@require_GET
@require_role(VIEWER)
def sync_status(request: HttpRequest) -> HttpResponse:
    """The freshness badge (of `?project=`, or of every project); polls while a sync runs
    and stops (286) when it is done."""
    freshness = freshness_of(chosen_project(request).project)
    # Only a running badge polls, so a poll that finds no sync saw its sync finish.
    finished = bool(request.htmx) and not freshness["sync_running"]
    response = _freshness_badge(request, freshness, was_running=finished)
    if finished:
        response.status_code = 286  # htmx: swap this in and stop polling
    return response


def _freshness_badge(
    request: HttpRequest, freshness: dict, *, was_running: bool = False
) -> HttpResponse:
    context = {**freshness, "was_running": was_running}
    return render(request, "inventory/freshness.html", context)


def local_path(request: HttpRequest, target: str) -> str:
    """`target` when it is a path on this site ("/servers/?q=a"), else the overview.

    A redirect to `//evil.example`, `/\\evil.example` or `https://evil.example` would send an
    operator's browser anywhere the link's author liked.
    """
    if (
        target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
    ):
        return target
    return reverse("overview")
