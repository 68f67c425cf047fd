"""The servers someone picked, stored on the server side.

A selection survives paging and filter changes on the servers page (the page only adds or
removes the servers it shows), and a plan carries its id instead of one form field per
server. Each person has one current selection (its id is kept in their session); a selection
belongs to the person who made it and nobody else can read or plan it.
"""

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest

from dashboard.models import Selection, Server
from dashboard.numbers import whole_number
from dashboard.rollouts.planning import without_gone

SESSION_KEY = "selection_id"


def _username(request: HttpRequest) -> str:
    return request.user.get_username() if request.user.is_authenticated else ""


def owned(request: HttpRequest, selection_id: str | int | None) -> Selection | None:
    """The selection with this id if it belongs to the requesting person, else None."""
    pk = whole_number(str(selection_id or "").strip())
    if pk is None:
        return None
    return Selection.objects.filter(pk=pk, created_by=_username(request)).first()


def current(request: HttpRequest) -> Selection | None:
    """The person's current selection (None until they pick a server)."""
    return owned(request, request.session.get(SESSION_KEY))


def _current_or_new(request: HttpRequest) -> Selection:
    selection = current(request)
    if selection is None:
        selection = Selection.objects.create(created_by=_username(request))
        request.session[SESSION_KEY] = selection.pk
    return selection


def _cap(ids: list[str]) -> list[str]:
    # One more than a rollout holds, so the plan page can say the selection is too large.
    return ids[: settings.ROLLOUT_MAX_SERVERS + 1]


def add(request: HttpRequest, server_ids: list[str]) -> Selection:
    """Add live servers to the current selection (unknown ids are left out)."""
    with transaction.atomic():
        selection = _current_or_new(request)
        have = set(selection.server_ids)
        wanted = [i for i in dict.fromkeys(server_ids) if i not in have]
        live = set(
            Server.objects.filter(id__in=wanted[:1000], gone=False).values_list("id", flat=True)
        )
        selection.server_ids = _cap([*selection.server_ids, *(i for i in wanted if i in live)])
        selection.filter = ""
        selection.save(update_fields=["server_ids", "filter", "updated_at"])
    return selection


def remove(request: HttpRequest, server_ids: list[str]) -> Selection:
    with transaction.atomic():
        selection = _current_or_new(request)
        dropped = set(server_ids)
        selection.server_ids = [i for i in selection.server_ids if i not in dropped]
        selection.filter = ""
        selection.save(update_fields=["server_ids", "filter", "updated_at"])
    return selection


def replace(request: HttpRequest, server_ids: list[str], filter_query: str = "") -> Selection:
    """Make these servers (e.g. every one matching a filter) the current selection."""
    with transaction.atomic():
        selection = _current_or_new(request)
        selection.server_ids = _cap(list(dict.fromkeys(server_ids)))
        selection.filter = filter_query[:2000]
        selection.save(update_fields=["server_ids", "filter", "updated_at"])
    return selection


def drop_gone(selection: Selection) -> list[str]:
    """Leave out of the selection the servers deleted in the cloud since they were picked,
    so the rest can still be planned. Returns what to call those left out (name, else id)."""
    live, gone = without_gone(list(selection.server_ids))
    if gone:
        selection.server_ids = live
        selection.save(update_fields=["server_ids", "updated_at"])
    return gone


def clear(request: HttpRequest) -> None:
    selection = current(request)
    if selection is not None:
        selection.server_ids = []
        selection.filter = ""
        selection.save(update_fields=["server_ids", "filter", "updated_at"])
