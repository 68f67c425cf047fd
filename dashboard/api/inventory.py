"""GET /groups, /servers, /images: the inventory pages' lists, paged by cursor.

Servers take the servers page's filters and sorts through its own form (ServerFilterForm), and
every list pages like the servers page (dashboard/keyset.py): `cursor` from the answer's
`next_cursor` or `previous_cursor`, or `last`.
"""

from typing import Any

from django.db.models import F, QuerySet
from django.http import HttpRequest
from ninja import Query, Router

from dashboard import keyset
from dashboard.api import schemas
from dashboard.api.auth import by
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
def list_groups(request: HttpRequest, cursor: str | None = Cursor, limit: int = Limit):
    rows = ServerGroup.objects.filter(gone=False).annotate(sort_key=F("name"))
    return page(rows, BY_NAME, cursor, limit)


@router.get(
    "/images", response=schemas.reads(schemas.ImagePage), summary="List images", auth=by(VIEWER)
)
def list_images(request: HttpRequest, cursor: str | None = Cursor, limit: int = Limit):
    rows = Image.objects.filter(gone=False).annotate(sort_key=F("name"))
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
    return page(form.filter(Server.objects.all()), form.ordering(), cursor, limit)


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
