"""Keyset paging: pages that start after (or end before) a row, never at an OFFSET.

A list is ordered by (`sort_key`, `id`), both in one direction, where `sort_key` is an
annotation on the queryset. A page is found with an index range from its boundary row, so
the last page of 50,000 rows costs what the first does. Links carry an opaque cursor that
names the boundary row's (sort key, id) and the sort it was made for:

- no cursor: the first page;
- `last`: the last page;
- a cursor made by `Page.next_cursor` / `Page.previous_cursor`: the rows after / before it.

A cursor that does not decode, or that was made for another sort, raises BadCursor.
"""

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

LAST = "last"
MAX_CURSOR_LENGTH = 1024


class BadCursor(ValueError):
    """The cursor is not one this page made (tampered, truncated, or for another sort)."""


@dataclass(frozen=True)
class Ordering:
    """The sort a list is paged by: its name (stored in cursors), the type of its key, and
    whether it runs from the largest key down."""

    name: str
    key_type: type
    descending: bool = False

    def order_by(self, reverse: bool = False) -> list[str]:
        down = self.descending != reverse
        return ["-sort_key", "-id"] if down else ["sort_key", "id"]


@dataclass
class Page:
    """One page of rows; iterable like Django's Page."""

    rows: list
    count: int
    has_next: bool
    has_previous: bool
    next_cursor: str = ""
    previous_cursor: str = ""
    last_cursor: str = LAST
    notes: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def has_other_pages(self) -> bool:
        return self.has_next or self.has_previous

    @property
    def paginator(self) -> "Page":
        """Templates written for Django's Page read `page.paginator.count`."""
        return self


def paginate(rows: QuerySet, ordering: Ordering, cursor: str, size: int) -> Page:
    """The page of `rows` (annotated with `sort_key`) that `cursor` points at.

    Two queries: the count of `rows`, and at most size + 1 rows (the extra one says
    whether there is a page beyond). Raises BadCursor.
    """
    kind, key, row_id = _decode(cursor, ordering) if cursor else ("first", None, None)
    count = rows.order_by().count()
    if kind == "first":
        found = list(rows.order_by(*ordering.order_by())[: size + 1])
        return _page(found[:size], count, ordering, has_next=len(found) > size, has_prev=False)
    if kind == "after":
        after = _beyond(key, row_id, up=not ordering.descending)
        found = list(rows.filter(after).order_by(*ordering.order_by())[: size + 1])
        return _page(found[:size], count, ordering, has_next=len(found) > size, has_prev=True)
    if kind == "before":
        before = _beyond(key, row_id, up=ordering.descending)
        found = list(rows.filter(before).order_by(*ordering.order_by(reverse=True))[: size + 1])
        return _page(found[:size][::-1], count, ordering, has_next=True, has_prev=len(found) > size)
    found = list(rows.order_by(*ordering.order_by(reverse=True))[: size + 1])  # last
    return _page(found[:size][::-1], count, ordering, has_next=False, has_prev=len(found) > size)


def _beyond(key: Any, row_id: str, *, up: bool) -> Q:
    """Rows past (key, id) going up (or down). The leading `>=` lets an index range do it."""
    if up:
        return Q(sort_key__gte=key) & (Q(sort_key__gt=key) | Q(id__gt=row_id))
    return Q(sort_key__lte=key) & (Q(sort_key__lt=key) | Q(id__lt=row_id))


def _page(rows: list, count: int, ordering: Ordering, *, has_next: bool, has_prev: bool) -> Page:
    return Page(
        rows=rows,
        count=count,
        has_next=has_next,
        has_previous=has_prev,
        next_cursor=_encode("after", rows[-1], ordering) if rows and has_next else "",
        previous_cursor=_encode("before", rows[0], ordering) if rows and has_prev else "",
    )


def _encode(kind: str, row: Any, ordering: Ordering) -> str:
    key = row.sort_key
    value = key.isoformat() if isinstance(key, datetime) else key
    raw = json.dumps([kind, ordering.name, value, row.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str, ordering: Ordering) -> tuple[str, Any, str | None]:
    if cursor == LAST:
        return LAST, None, None
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise BadCursor("the page link is too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kind, sort, value, row_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise BadCursor("the page link is damaged") from None
    if kind not in ("after", "before") or not isinstance(row_id, str):
        raise BadCursor("the page link is damaged")
    if sort != ordering.name:
        raise BadCursor("the page link was made for another sort order")
    return kind, _key(value, ordering.key_type), row_id


def _key(value: Any, key_type: type) -> Any:
    if key_type is datetime:
        try:
            parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            raise BadCursor("the page link is damaged")
        return parsed
    if type(value) is not key_type:  # bool is not an int here, nor a str a number
        raise BadCursor("the page link is damaged")
    return value
