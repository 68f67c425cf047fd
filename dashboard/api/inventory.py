"""GET /groups, /servers, /images: the inventory pages' lists, paged by cursor.

Servers take the servers page's filters and sorts through its own form (ServerFilterForm), and
every list pages like the servers page (dashboard/keyset.py): `cursor` from the answer's
`next_cursor` or `previous_cursor`, or `last`. Every list takes `?project=<name>`, and a token
scoped to a project lists only that project's rows (auth.visible).
"""

from typing import Any

from django.db.models import CharField, F, QuerySet, Value
from django.db.models.functions import Concat
from django.http import HttpRequest
from ninja import Query, Router

from dashboard import keyset, projects
from dashboard.api import schemas
from dashboard.api.auth import by, visible
from dashboard.api.problems import Problem
from dashboard.forms import ServerFilterForm
from dashboard.models import Image, Server, ServerGroup
from dashboard.roles import VIEWER

router = Router(tags=["inventory"])

MAX_LIMIT = 200
BY_NAME = keyset.Ordering("name", str)

Cursor = Query(
    None, max_length=keyset.MAX_CURSOR_LENGTH, description="a page's next/previous cursor, or last"
)
Limit = Query(50, ge=1, le=MAX_LIMIT, description="rows per page")
ProjectName = Query(None, max_length=63, description="only this project's rows (its name)")


def listed(request: HttpRequest, rows: QuerySet, project: str | None) -> QuerySet:
    """The rows the caller may see (auth.visible), of one project when `project` names one;
    a name no configured project has is a 422."""
    rows = visible(request, rows).select_related("project")
    if not project:
        return rows
    found = projects.by_name(project)
    if found is None:
        raise Problem(
            422,
            "validation.invalid",
            errors=[{"field": "project", "message": "no configured project has this name"}],
        )
    return rows.filter(project=found)


def page(rows: QuerySet, ordering: keyset.Ordering, cursor: str | None, limit: int) -> dict:
    try:
        found = keyset.paginate(rows, ordering, cursor or "", limit)
    except keyset.BadCursor as problem:
        raise Problem(400, "cursor.invalid", str(problem).capitalize() + ".") from None
    return {
        "count": found.count,
        "next_cursor": found.next_cursor or None,
        "previous_cursor": found.previous_cursor or None,
        "items": found.rows,
    }


@router.get(
    "/groups",
    response=schemas.reads(schemas.GroupPage),
    summary="List server groups",
    auth=by(VIEWER),
)
def list_groups(
    request: HttpRequest,
    project: str | None = ProjectName,
    cursor: str | None = Cursor,
    limit: int = Limit,
):
    rows = listed(request, ServerGroup.objects.filter(gone=False), project)
    rows = rows.annotate(sort_key=F("name"))
    return page(rows, BY_NAME, cursor, limit)


@router.get(
    "/images", response=schemas.reads(schemas.ImagePage), summary="List images", auth=by(VIEWER)
)
def list_images(
    request: HttpRequest,
    project: str | None = ProjectName,
    cursor: str | None = Cursor,
    limit: int = Limit,
):
    rows = listed(request, Image.objects.filter(gone=False), project)
    # A region's public image has one id in every project: name and project make the key
    # unique with the id, so a page boundary between two projects' rows loses neither.
    by_name_then_project = Concat("name", Value("\x1f"), "project__name", output_field=CharField())
    rows = rows.annotate(sort_key=by_name_then_project)
    return page(rows, BY_NAME, cursor, limit)


@router.get(
    "/servers",
    response=schemas.reads(schemas.ServerPage),
    summary="List and filter servers",
    auth=by(VIEWER),
)
def list_servers(
    request: HttpRequest,
    filters: Query[schemas.ServerFilter],
    cursor: str | None = Cursor,
    limit: int = Limit,
):
    form = filter_form(filters)
    rows = visible(request, Server.objects.with_last_seen().select_related("project"))
    return page(form.filter(rows), form.ordering(), cursor, limit)


def filter_form(filters: schemas.ServerFilter) -> ServerFilterForm:
    """The servers page's form, bound to the API's filters; a value it refuses is a 422."""
    data: dict[str, Any] = filters.model_dump(exclude_none=True)
    form = ServerFilterForm.for_fleet(data)
    if not form.is_valid():
        raise Problem(422, "validation.invalid", errors=form_errors(form))
    return form


def form_errors(form) -> list[dict[str, str | None]]:
    """A Django form's errors as the problem document's `errors`."""
    return [
        {"field": None if name == "__all__" else name, "message": str(message)[:300]}
        for name, messages in form.errors.items()
        for message in messages
    ]
