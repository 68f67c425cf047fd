"""Read a rollout's servers back from the cloud in the fewest calls the API allows.

Whole groups (100 servers a page) where a group holds more of the rows than it has pages,
one by one otherwise. Sending (send.py), the start checks (engine.py, waves.py) and tracking
(refresh.py) all read through here.
"""

import threading
import time
from collections import defaultdict

from django.conf import settings
from django.db.models import Count, Q

from dashboard.cloud import inflight, records
from dashboard.models import RolloutServer, Server

PAGE = 100


class GroupReads:
    """Whole-group listings shared by the chunks of one wave for a few seconds.

    Chunks of 50 straddle group boundaries; without this, neighbouring chunks would list the
    same group again moments apart. A listing older than `ttl` is read again. With `pages`
    (an inflight.Calls), a listing's pages after the first are read together on it: the same
    calls, a large group's listing in two rounds of calls instead of one a page.
    """

    def __init__(self, client, ttl: float = 15.0, pages: inflight.Calls | None = None) -> None:
        self.client = client
        self.ttl = ttl
        self.pages = pages
        self.lock = threading.Lock()
        self.locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self.groups: dict[str, tuple[float, dict[str, records.Server]]] = {}

    def group(self, group_id: str) -> dict[str, records.Server]:
        with self.lock:
            group_lock = self.locks[group_id]
        with group_lock:  # one listing per group at a time, even with calls in flight
            read_at, servers = self.groups.get(group_id, (0.0, {}))
            if time.monotonic() - read_at > self.ttl:
                servers = {s.id: s for s in self._listing(group_id)}
                self.groups[group_id] = (time.monotonic(), servers)
            return servers

    def _listing(self, group_id: str) -> list[records.Server]:
        if self.pages is None:
            return self.client.list_servers(server_group_id=group_id)
        return inflight.list_servers(self.client, self.pages, server_group_id=group_id)


def reread_servers(
    client, rows: list[RolloutServer], reads: GroupReads | None = None, in_flight: int | None = None
) -> dict[str, records.Server]:
    """Read the rows' servers from the API in the fewest calls: whole groups or one by one.

    Without shared `reads`, up to `in_flight` (ROLLOUT_CALLS_IN_FLIGHT) of those calls are
    out at once (cloud.inflight): the same calls, without waiting for each answer in turn.
    """
    by_group: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        by_group[row.group_id].add(row.server_id)
    # The live count inside the aggregate, not the WHERE: the group index does the work, where
    # `gone=False` in the WHERE made SQLite walk every live server of the fleet.
    counted = (
        Server.objects.filter(group_id__in=[g for g in by_group if g])
        .values_list("group_id")
        .annotate(n=Count("id", filter=Q(gone=False)))
        .values_list("group_id", "n")
    )
    sizes = {group_id: n for group_id, n in counted if n}  # as before: groups with live servers
    in_flight = in_flight or settings.ROLLOUT_CALLS_IN_FLIGHT
    if in_flight > 1 and reads is None:
        return _in_flight(client, by_group, sizes, in_flight)
    found: dict[str, records.Server] = {}
    for group_id, ids in by_group.items():
        if _whole(group_id, ids, sizes):
            listing = (reads or GroupReads(client)).group(group_id)
            found.update({i: listing[i] for i in ids if i in listing})
        for server_id in ids - found.keys():
            server = inflight.show_or_none(client, server_id)
            if server is not None:
                found[server_id] = server
    return found


def _whole(group_id: str | None, ids: set[str], sizes: dict[str, int]) -> bool:
    """Whether listing the group whole takes fewer calls than reading its rows one by one."""
    return bool(group_id) and -(-sizes.get(group_id, 10**9) // PAGE) < len(ids)


def _in_flight(
    client, by_group: dict[str, set[str]], sizes: dict[str, int], in_flight: int
) -> dict[str, records.Server]:
    """reread_servers' calls, several at once: the servers read one by one go out beside the
    group listings; a server its group's listing did not show is then read on its own."""
    whole = {g: ids for g, ids in by_group.items() if _whole(g, ids, sizes)}
    singles = [i for g, ids in by_group.items() if g not in whole for i in ids]
    with inflight.Calls(in_flight) as calls:
        shown = {i: calls.submit(inflight.show_or_none, client, i) for i in singles}
        listed = inflight.listings(client, calls, whole)
        found = {i: listed[g][i] for g, ids in whole.items() for i in ids if i in listed[g]}
        moved = [i for ids in whole.values() for i in ids if i not in found]
        found.update(inflight.show_servers(client, calls, moved))
        found.update({i: s for i, f in shown.items() if (s := f.result()) is not None})
    return found
