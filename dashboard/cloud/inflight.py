"""Server listings read with several calls in flight, making exactly the calls of reading
them page after page.

The inventory sync reads the whole fleet; tracking a rollout reads its servers' groups whole
and the rest one by one. Both used to wait for one answer before asking the next. Here every
call goes through one pool of `in_flight` threads: a listing's first page tells its total,
then its remaining pages go out together, and several listings (and single servers) share
the pool, so the calls in flight never exceed `in_flight` whatever is read.
"""

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from dashboard.cloud.client import PAGE_SIZE
from dashboard.cloud.errors import CloudError
from dashboard.cloud.records import Server


class Calls:
    """A pool of `in_flight` threads that make the calls; `with` waits for them to end (and
    cancels the calls not yet sent when the block raised)."""

    def __init__(self, in_flight: int, name: str = "reads") -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, in_flight), thread_name_prefix=name)

    def __enter__(self) -> "Calls":
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=kind is not None)

    def submit(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        return self._pool.submit(call, *args, **kwargs)


def list_servers(client, calls: Calls, **filters: object) -> list[Server]:
    """Every server of one listing (see server_pages)."""
    return [server for page in server_pages(client, calls, **filters) for server in page]


def server_pages(client, calls: Calls, **filters: object) -> Iterator[list[Server]]:
    """Every server of one listing, a page at a time in offset order, each page as soon as it
    and those before it are in: the first page is sent at once, and once it has told the
    total the remaining pages go out together.

    A server already seen on an earlier page is left out, as the serial reader does when
    servers shift between pages. A short page before the end is followed one page at a
    time; if the last page reports a larger total (servers added while reading), the pages
    after it are read too. A failing page fails the listing, and the pages not yet sent are
    cancelled (as they are when the reader stops early).
    """
    first = calls.submit(client.list_servers_page, offset=0, **filters)
    return _pages_after(first, client, calls, filters)


def _pages_after(
    first: Future, client, calls: Calls, filters: dict[str, object]
) -> Iterator[list[Server]]:
    seen: set[str] = set()

    def unseen(page: list[Server]) -> list[Server]:
        fresh = [server for server in page if server.id not in seen]
        seen.update(server.id for server in fresh)
        return fresh

    total, page = first.result()
    yield unseen(page)
    offset = len(page)
    while page and offset < total:
        if len(page) < PAGE_SIZE:
            total, page = calls.submit(client.list_servers_page, offset=offset, **filters).result()
            yield unseen(page)
            offset += len(page)
            continue
        offsets = range(offset, total, PAGE_SIZE)
        futures = [calls.submit(client.list_servers_page, offset=o, **filters) for o in offsets]
        try:
            for future in futures:
                total, page = future.result()
                yield unseen(page)
        finally:
            for future in futures:
                future.cancel()  # those not sent yet, when a page failed or the reader stopped
        offset = offsets[-1] + len(page)


def listings(client, calls: Calls, group_ids: Iterable[str]) -> dict[str, dict[str, Server]]:
    """Several groups listed whole at once: group id → its servers by id."""
    group_ids = list(group_ids)
    if not group_ids:
        return {}
    # One thread per listing waits for its pages; only `calls` makes calls.
    with ThreadPoolExecutor(max_workers=len(group_ids), thread_name_prefix="listing") as waiting:
        futures = {
            g: waiting.submit(list_servers, client, calls, server_group_id=g) for g in group_ids
        }
        return {g: {s.id: s for s in future.result()} for g, future in futures.items()}


def show_servers(client, calls: Calls, server_ids: Iterable[str]) -> dict[str, Server]:
    """Servers read one by one, several at once; one the cloud does not know is left out."""
    futures = {i: calls.submit(show_or_none, client, i) for i in server_ids}
    found = {i: future.result() for i, future in futures.items()}
    return {i: server for i, server in found.items() if server is not None}


def show_or_none(client, server_id: str) -> Server | None:
    """ShowServer, or None for a server the cloud does not know."""
    try:
        return client.show_server(server_id)
    except CloudError as exc:
        if not exc.not_found:  # a 404, or the 4xx the cloud answers for "no such"
            raise
        return None
