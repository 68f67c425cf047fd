"""Read-only pages. (Filled in by the inventory, rollout and audit issues.)"""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dashboard.models import Image, Rollout, Server, ServerGroup
from dashboard.roles import VIEWER, require_role


@require_GET
@require_role(VIEWER)
def overview(request: HttpRequest) -> HttpResponse:
    context = {
        "server_count": Server.objects.filter(gone=False).count(),
        "group_count": ServerGroup.objects.filter(gone=False).count(),
        "image_count": Image.objects.filter(gone=False).count(),
    }
    return render(request, "overview.html", context)


@require_GET
@require_role(VIEWER)
def groups(request: HttpRequest) -> HttpResponse:
    return render(request, "groups/list.html", {"groups": ServerGroup.objects.filter(gone=False)})


@require_GET
@require_role(VIEWER)
def servers(request: HttpRequest) -> HttpResponse:
    rows = Server.objects.filter(gone=False).select_related("group")[:100]
    return render(request, "servers/list.html", {"servers": rows})


@require_GET
@require_role(VIEWER)
def images(request: HttpRequest) -> HttpResponse:
    return render(request, "images/list.html", {"images": Image.objects.filter(gone=False)})


@require_GET
@require_role(VIEWER)
def rollouts(request: HttpRequest) -> HttpResponse:
    return render(request, "rollouts/list.html", {"rollouts": Rollout.objects.all()[:100]})
