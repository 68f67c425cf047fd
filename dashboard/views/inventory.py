"""Inventory pages: overview, groups, servers, server detail, images, and the sync button.

Every page reads the database only, in a fixed number of queries, and says how fresh
its data is.
"""

from django.contrib import messages
from django.db.models import Count, F
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from dashboard import audit, inventory, keyset
from dashboard.forms import ServerFilterForm
from dashboard.models import Image, Rollout, RolloutServer, Server, ServerGroup, SyncRun
from dashboard.roles import OPERATOR, VIEWER, require_role
from dashboard.rollouts import selection as selections

PAGE_SIZE = 50


def _image_names() -> dict[str, Image]:
    return {i.id: i for i in Image.objects.all()}


@require_GET
@require_role(VIEWER)
def overview(request: HttpRequest) -> HttpResponse:
    # Figures the sync stored with its snapshot: no server is counted per request.
    figures = inventory.fleet_figures()
    totals = {
        "servers": figures.servers,
        "drift": figures.servers_drifted,
        "maintenance": figures.servers_in_maintenance,
        "sessions": figures.sessions,
        "busy": figures.servers_busy,
    }
    drifted_groups = (
        ServerGroup.objects.filter(gone=False, servers_drifted__gt=0)
        .annotate(drift=F("servers_drifted"))
        .order_by("-servers_drifted", "name")
    )
    context = {
        "totals": totals,
        "group_count": figures.groups,
        "drifted_groups": drifted_groups,
        "active_rollouts": Rollout.objects.filter(state__in=Rollout.ACTIVE_STATES)[:20],
        "last_run": SyncRun.objects.order_by("-started_at").first(),
        **inventory.freshness(),
    }
    return render(request, "overview.html", context)


@require_GET
@require_role(VIEWER)
def groups(request: HttpRequest) -> HttpResponse:
    # Per-group figures the sync stored (`sessions` is a stored field of its own).
    rows = ServerGroup.objects.filter(gone=False).annotate(
        live=F("servers_live"),
        drift=F("servers_drifted"),
        maintenance=F("servers_in_maintenance"),
    )
    context = {"groups": rows, "images": _image_names(), **inventory.freshness()}
    return render(request, "groups/list.html", context)


@require_GET
@require_role(VIEWER)
def servers(request: HttpRequest) -> HttpResponse:
    group_list = list(ServerGroup.objects.filter(gone=False))
    images = _image_names()
    form = ServerFilterForm(
        request.GET or None, groups=group_list, images=sorted(images.values(), key=_by_name)
    )
    matching = form.filter(Server.objects.select_related("group"))
    ordering = form.ordering()
    try:
        page = keyset.paginate(matching, ordering, request.GET.get("cursor", ""), PAGE_SIZE)
    except keyset.BadCursor as problem:
        # An old or damaged page link: the first page, saying why, rather than an error.
        page = keyset.paginate(matching, ordering, "", PAGE_SIZE)
        page.notes.append(f"{str(problem).capitalize()}; showing the first page.")
    context = {
        "form": form,
        "page": page,
        "images": images,
        # Links never carry a cursor into another filter or sort: those start at page one.
        "query": _query_without(request, "page", "cursor"),
        "sort_query": _query_without(request, "page", "cursor", "sort"),
        "current_sort": request.GET.get("sort", "name"),
        # The stored selection: ticks survive paging and filter changes.
        "selection": (chosen := selections.current(request)),
        "selected_ids": set(chosen.server_ids) if chosen else set(),
        **inventory.freshness(),
    }
    template = "servers/list.html"
    if request.htmx and not request.htmx.boosted:
        template += "#server-results"
    return render(request, template, context)


def _by_name(image: Image) -> str:
    return image.name.lower()


def _query_without(request: HttpRequest, *names: str) -> str:
    query = request.GET.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()


@require_GET
@require_role(VIEWER)
def server_detail(request: HttpRequest, server_id: str) -> HttpResponse:
    server = get_object_or_404(Server.objects.select_related("group"), pk=server_id)
    images = _image_names()
    context = {
        "server": server,
        "image": images.get(server.image_id),
        "group_image": images.get(server.group.image_id) if server.group else None,
        "images": images,
        "seen": server.images_seen.all(),
        "rollout_rows": RolloutServer.objects.filter(server_id=server.id)
        .select_related("rollout")
        .order_by("-rollout__created_at")[:50],
        **inventory.freshness(),
    }
    return render(request, "servers/detail.html", context)


@require_GET
@require_role(VIEWER)
def images(request: HttpRequest) -> HttpResponse:
    running = dict(
        Server.objects.filter(gone=False)
        .values_list("image_id")
        .annotate(n=Count("id"))
        .values_list("image_id", "n")
    )
    used_by: dict[str, list[ServerGroup]] = {}
    for group in ServerGroup.objects.filter(gone=False):
        used_by.setdefault(group.image_id, []).append(group)
    rows = [
        (image, running.get(image.id, 0), used_by.get(image.id, []))
        for image in Image.objects.filter(gone=False)
    ]
    return render(request, "images/list.html", {"rows": rows, **inventory.freshness()})


@require_POST
@require_role(OPERATOR)
def sync(request: HttpRequest) -> HttpResponse:
    """Start (or join) a sync. From htmx: the freshness badge, swapped in place, which then
    polls until the sync is done. From a plain form: back to the page it came from."""
    run, started = inventory.request_sync("manual", request.user.username)
    audit.record(request, "sync.request", target=f"sync #{run.pk}", joined=not started)
    if request.htmx:
        return _freshness_badge(request)
    if started:
        messages.info(request, _("Inventory refresh started."))
    else:
        messages.info(request, _("A refresh is already running; you joined it."))
    return redirect(local_path(request, request.POST.get("next", "")))


@require_GET
@require_role(VIEWER)
def sync_status(request: HttpRequest) -> HttpResponse:
    """The freshness badge; polls while a sync runs and stops (286) when it is done."""
    freshness = inventory.freshness()
    # Only a running badge polls, so a poll that finds no sync saw its sync finish.
    finished = bool(request.htmx) and not freshness["sync_running"]
    response = _freshness_badge(request, freshness, was_running=finished)
    if finished:
        response.status_code = 286  # htmx: swap this in and stop polling
    return response


def _freshness_badge(
    request: HttpRequest, freshness: dict | None = None, *, was_running: bool = False
) -> HttpResponse:
    context = {**(freshness or inventory.freshness()), "was_running": was_running}
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
