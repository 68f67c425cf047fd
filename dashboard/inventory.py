"""Inventory sync: the database's cache of groups, servers and images.

A sync reads every page at the API's largest page size, several calls in flight, and writes
what changed as the pages arrive; nothing it writes is committed before everything is read,
so a sync that fails half-way leaves the previous snapshot intact. Servers and images that
disappeared upstream are marked gone, not silently kept. At most one sync
runs at a time per project (a partial unique index on SyncRun); a second request joins the
running one. Each project syncs on its own with its own client, so a project whose cloud is
down or whose key is refused fails its own runs and holds up no other.
"""

import logging
from collections import namedtuple
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import astuple, dataclass
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Max, Q, Sum
from django.tasks import task
from django.utils import timezone

from dashboard import bulk, collector, projects
from dashboard.cloud import inflight, records
from dashboard.cloud.errors import CloudError
from dashboard.dbloss import lost_database
from dashboard.models import (
    Image,
    InventoryFigures,
    Project,
    Server,
    ServerGroup,
    ServerImageSeen,
    SyncRun,
    search_text,
)

log = logging.getLogger(__name__)

# A "running" sync older than this is a crashed worker's leftover, not a sync to join.
STALE_SYNC = timedelta(minutes=15)
BATCH = 500  # rows a statement; also the changed rows a sync writes at a time while it reads


def request_sync(
    trigger: str, requested_by: str = "", project: Project | None = None
) -> tuple[SyncRun, bool]:
    """Start a sync of `project` (the default one) in the background, or join the one running.
    Returns (run, started)."""
    project = project or projects.default()
    _expire_stale_runs()
    try:
        with transaction.atomic():
            run = SyncRun.objects.create(
                project=project, trigger=trigger, requested_by=requested_by
            )
            transaction.on_commit(partial(_enqueue, run.pk, projects.queue_for(project)))
        return run, True
    except IntegrityError:
        running = SyncRun.objects.filter(project=project, state=SyncRun.State.RUNNING).first()
        if running is None:  # finished between our insert and this read: try once more
            return request_sync(trigger, requested_by, project)
        return running, False


@task()
def sync_inventory(run_id: int) -> str:
    """The queued sync (`request_sync` enqueues it; `dashboard.tasks` lists it)."""
    return run_sync(run_id).state


def _enqueue(run_id: int, queue: str = projects.DEFAULT_QUEUE) -> None:
    sync_inventory.using(queue_name=queue).enqueue(run_id)


def schedule_sync() -> None:
    """Heartbeat duty: start each project's sync when its last one is older than the interval."""
    interval = settings.SYNC_INTERVAL_SECONDS
    for project in projects.rows():
        last = SyncRun.objects.filter(project=project).order_by("-started_at").first()
        if last is None or (
            interval
            and last.state != SyncRun.State.RUNNING
            and timezone.now() - last.started_at >= timedelta(seconds=interval)
        ):
            request_sync("startup" if last is None else "schedule", project=project)


def _expire_stale_runs() -> None:
    SyncRun.objects.filter(
        state=SyncRun.State.RUNNING, started_at__lt=timezone.now() - STALE_SYNC
    ).update(state=SyncRun.State.FAILED, finished_at=timezone.now(), error="abandoned")


def run_sync(run_id: int, client=None) -> SyncRun:
    """Execute a requested sync: read the project's whole inventory, then write it at once."""
    run = SyncRun.objects.select_related("project").get(pk=run_id)
    if run.state != SyncRun.State.RUNNING:
        return run
    if client is None:
        try:
            client = projects.client_for(run.project)
        except projects.NotConfigured as exc:
            return _finish(run, SyncRun.State.FAILED, 0, error=str(exc))
    calls_before = client.calls
    try:
        seen, gone = _read_and_store(client, run.project)
    except Exception as exc:
        if lost_database(exc):
            # Left RUNNING, not failed: the worker puts the task back, and its rerun finds the
            # run still running and does the sync (a FAILED mark would make the rerun give up).
            log.warning("inventory sync %s lost its database connection; left to its rerun", run_id)
            raise
        if isinstance(exc, CloudError):
            log.warning("inventory sync %s failed: %s", run_id, exc)
            return _finish(run, SyncRun.State.FAILED, client.calls - calls_before, error=str(exc))
        log.exception("inventory sync %s failed", run_id)
        _finish(run, SyncRun.State.FAILED, client.calls - calls_before, error=type(exc).__name__)
        raise
    return _finish(run, SyncRun.State.SUCCEEDED, client.calls - calls_before, seen, gone)


def sync_now(trigger: str = "manual", client=None, project: Project | None = None) -> SyncRun:
    """Run a sync in this process (management command, tests). Joins none: fails if busy."""
    run, started = request_sync(trigger, project=project)
    if not started:
        return run
    return run_sync(run.pk, client)


def _finish(run: SyncRun, state: str, calls: int, seen=0, gone=0, error="") -> SyncRun:
    SyncRun.objects.filter(pk=run.pk, state=SyncRun.State.RUNNING).update(
        state=state,
        finished_at=timezone.now(),
        api_calls=calls,
        servers_seen=seen,
        servers_gone=gone,
        error=error[:2000],
    )
    run.refresh_from_db()
    return run


def _read_and_store(client, project: Project) -> tuple[int, int]:
    """Read the project's whole inventory and store it: nothing is committed unless
    everything was read. Returns (seen, gone).

    Up to SYNC_CALLS_IN_FLIGHT calls are out at once: the group and image listings beside the
    first ListServers page, then, once it has told the total, the remaining pages together
    (inflight.server_pages: exactly the calls of reading page after page). Meanwhile this
    thread reads the stored servers, turns every page that has arrived into rows, and
    writes those that changed a batch at a time (_Writes), so that once the last page is in
    little is left to do. A failing call aborts the sync, cancels the pages not yet sent,
    and writes nothing.
    """
    now = timezone.now()
    with ExitStack() as held:
        held.enter_context(collector.fewer_collections())
        writes = _Writes(_stored_time()(now), held)
        calls = held.enter_context(inflight.Calls(settings.SYNC_CALLS_IN_FLIGHT, "sync"))
        groups = calls.submit(client.list_server_groups)
        images = calls.submit(client.list_images)
        pages = inflight.server_pages(client, calls)
        # Only the sync writes servers, one at a time per project: the stored rows read
        # now cannot change before the write.
        rows = ServerRows(project, groups.result(), _stored_servers(project), writes)
        for page in pages:
            rows.add(page)
        rows.write()
        images_seen = images.result()
        with transaction.atomic():
            writes.finish()
            return store(rows, images_seen, now)


class _Writes:
    """Where a sync's changed servers (and their images' sightings) go, a batch at a time
    while the pages are read: a stage (bulk.Stage), published into the real tables.

    On PostgreSQL each batch is published at once, in the sync's transaction, open from
    before the first page: its row locks hold up no one (only the sync writes servers), and
    the database works on its own core while the calls are out. SQLite lets one connection
    write at a time: a transaction open while reading would make every other process's
    writes wait, and the reading threads' own rate counter with them. There the stage is
    published by `finish`, in the transaction of the store.
    """

    def __init__(self, stamp, held: ExitStack) -> None:
        self.stamp = stamp  # synced_at, first and last seen, as the driver takes them
        self.at_once = connection.vendor == "postgresql"
        if self.at_once:
            held.enter_context(transaction.atomic())
        self._stage = held.enter_context(bulk.Stage(Server, SERVER_COLUMNS, "servers"))

    def add(self, rows: list["ServerRow"]) -> None:
        self._stage.add(rows)
        if self.at_once:
            self._publish()
            self._stage.clear()

    def finish(self) -> None:
        """Publish what is staged (in the store's transaction)."""
        if not self.at_once:
            self._publish()

    def _publish(self) -> None:
        columns = {name: name for name in SERVER_COLUMNS}
        self._stage.publish(
            Server,
            {**columns, "synced_at": (self.stamp,)},
            unique=("id",),
            update=(*SERVER_COLUMNS[1:], "synced_at"),  # all but the key
        )
        self._stage.publish(
            ServerImageSeen,
            {"server_id": "id", "image_id": "image_id"}
            | {"first_seen": (self.stamp,), "last_seen": (self.stamp,)},
            where=f"{connection.ops.quote_name('image_id')} <> ''",
            **SIGHTING_CONFLICT,
        )


# A seen-image row for every written server's image: its first and last sighting now, or
# only its last when the pair is known.
SIGHTING_CONFLICT = {"unique": ("server_id", "image_id"), "update": ("last_seen",)}


class ServerRows:
    """A snapshot's servers as Server column values (ServerRow), built page by page: every
    row (the servers seen, the figures) and those that differ from the stored row, written
    a batch at a time."""

    def __init__(
        self,
        project: Project,
        groups: list[records.ServerGroup],
        stored: dict[str, tuple],
        writes: _Writes,
    ) -> None:
        self.project = project
        self.groups = groups
        self.stored = stored
        self.all: list[ServerRow] = []
        self.changed: list[ServerRow] = []
        self._writes = writes
        self._unwritten = 0  # the last rows of `changed`, not written yet
        self._group_images = {g.id: g.image_id for g in groups}
        # Values as the database driver takes and returns them, compared with the stored
        # rows without Django's conversion of each value on the way in and out.
        self._stored_time = _stored_time()

    def add(self, servers: Iterable[records.Server]) -> None:
        groups, project_id, stored_time = self._group_images, self.project.pk, self._stored_time
        rows = [_server_row(s, groups, project_id, stored_time) for s in servers]
        self.all.extend(rows)
        stored = self.stored
        changed = [row for row in rows if stored.get(row.id) != row[1:]]
        self.changed.extend(changed)
        self._unwritten += len(changed)
        if self._unwritten >= BATCH:
            self.write()

    def write(self) -> None:
        """Write the changed rows not written yet."""
        if self._unwritten:
            self._writes.add(self.changed[-self._unwritten :])
            self._unwritten = 0


def store(rows: ServerRows, images: list[records.Image], now) -> tuple[int, int]:
    """Store a read snapshot whose changed servers are written, and mark what vanished as
    gone. Returns (seen, gone).

    Only servers whose facts changed are written (with their current image's sighting): a
    repeat sync of a quiet fleet writes almost nothing, where stamping every server and
    sighting rewrote 100,000 rows at 50,000 servers. When a sync last saw a live server is
    its project's last sync (Server.objects.with_last_seen()); a server that vanished, and
    an image a server left, were last seen by the sync before this one. The figures the
    pages show (per group and for the fleet) are counted from the snapshot and stored with
    it: the snapshot's servers are exactly the live servers once it is stored.
    """
    project, stored = rows.project, rows.stored
    figures = InventoryFigures.objects.filter(project=project).first()
    last_sync = figures.updated_at if figures else None  # this store replaces it
    _store_images(images, now, project)
    by_group = _count_by_group(rows.all)
    _store_groups(rows.groups, by_group, now, project)
    _store_totals(project, sum(by_group.values(), Figures()), len(rows.groups), now)
    seen = {row.id for row in rows.all}
    vanished = [i for i, values in stored.items() if not values[_GONE] and i not in seen]
    last_seen = {"synced_at": last_sync} if last_sync else {}
    gone = 0
    for start in range(0, len(vanished), BATCH):
        chunk = vanished[start : start + BATCH]
        gone += Server.objects.filter(id__in=chunk).update(gone=True, drift=False, **last_seen)
    if last_sync:
        _images_left(stored, rows.changed, vanished, last_sync)
    return len(rows.all), gone


def _store_images(images: list[records.Image], now, project: Project) -> None:
    rows = [
        Image(
            project=project,
            id=i.id,
            name=i.name,
            image_type=i.image_type,
            os_type=i.os_type,
            os_version=i.os_version,
            architecture=i.architecture,
            status=i.status,
            min_disk=i.min_disk,
            paid=i.paid,
            product_code=i.product_code,
            created_at=i.created_at,
            gone=False,
            synced_at=now,
        )
        for i in images
    ]
    Image.objects.bulk_create(
        rows,
        batch_size=BATCH,
        update_conflicts=True,
        unique_fields=["project", "id"],
        update_fields=[
            f.name for f in Image._meta.fields if f.name not in ("row", "project", "id")
        ],
    )
    Image.objects.filter(project=project, gone=False).exclude(synced_at=now).update(gone=True)


def _store_groups(groups: list[records.ServerGroup], figures: dict, now, project: Project) -> None:
    rows = [
        ServerGroup(
            project=project,
            id=g.id,
            name=g.name,
            description=g.description,
            os_type=g.os_type,
            image_id=g.image_id,
            image_name=g.image_name,
            image_type=g.image_type,
            image_product_id=g.image_product_id,
            app_type=g.app_type,
            architecture=g.architecture,
            system_disk_size=g.system_disk_size,
            server_count=g.server_count,
            gone=False,
            synced_at=now,
            **figures.get(g.id, Figures()).group_fields(),
        )
        for g in groups
    ]
    _upsert(ServerGroup, rows, [f.name for f in ServerGroup._meta.fields if f.name != "id"])
    ServerGroup.objects.filter(project=project, gone=False).exclude(synced_at=now).update(gone=True)


BUSY_JOB_STATUSES = frozenset({"WAITING", "RUNNING"})


@dataclass(frozen=True)
class Figures:
    """Counts of live servers: what the overview and groups pages show."""

    servers: int = 0
    drifted: int = 0
    in_maintenance: int = 0
    busy: int = 0
    sessions: int = 0

    def __add__(self, other: "Figures") -> "Figures":
        return Figures(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    def group_fields(self) -> dict[str, int]:
        return {
            "servers_live": self.servers,
            "servers_drifted": self.drifted,
            "servers_in_maintenance": self.in_maintenance,
            "servers_busy": self.busy,
            "sessions": self.sessions,
        }


def _count_by_group(rows: list["ServerRow"]) -> dict[str | None, Figures]:
    """Figures per group id (None: servers in no group the snapshot knows)."""
    counts: dict[str | None, list[int]] = {}
    for row in rows:  # plain integers: this runs once per server
        c = counts.setdefault(row.group_id, [0, 0, 0, 0, 0])
        c[0] += 1
        c[1] += row.drift
        c[2] += row.maintain_status
        c[3] += row.job_status in BUSY_JOB_STATUSES
        c[4] += row.session_count
    return {group_id: Figures(*c) for group_id, c in counts.items()}


def _store_totals(project: Project, totals: Figures, groups: int, now) -> None:
    InventoryFigures.objects.update_or_create(
        project=project,
        defaults={
            "servers": totals.servers,
            "servers_drifted": totals.drifted,
            "servers_in_maintenance": totals.in_maintenance,
            "servers_busy": totals.busy,
            "sessions": totals.sessions,
            "groups": groups,
            "updated_at": now,
        },
    )


def recount_figures() -> None:
    """Count the stored figures again from the servers table.

    The sync never needs this (it counts its snapshot); it is for servers written some
    other way, such as fixtures and the page benchmark.
    """
    counts = {
        "servers": Count("id"),
        "drifted": Count("id", filter=Q(drift=True)),
        "in_maintenance": Count("id", filter=Q(maintain_status=True)),
        "busy": Count("id", filter=Q(job_status__in=BUSY_JOB_STATUSES)),
        "sessions": Sum("session_count", default=0),
    }
    owners = set(Server.objects.values_list("project", flat=True).distinct())
    owners |= set(ServerGroup.objects.values_list("project", flat=True).distinct())
    for project in Project.objects.filter(pk__in=owners):
        live = Server.objects.filter(project=project, gone=False)
        rows = live.values("group_id").annotate(**counts)
        by_group = {row.pop("group_id"): Figures(**row) for row in rows}
        groups = list(ServerGroup.objects.filter(project=project, gone=False))
        for group in groups:
            for name, value in by_group.get(group.id, Figures()).group_fields().items():
                setattr(group, name, value)
        ServerGroup.objects.bulk_update(groups, list(Figures().group_fields()), batch_size=BATCH)
        _store_totals(project, sum(by_group.values(), Figures()), len(groups), timezone.now())


FIGURE_FIELDS = ("servers", "servers_drifted", "servers_in_maintenance", "servers_busy")


def fleet_figures(project: Project | None = None) -> InventoryFigures:
    """The totals the last syncs stored: one project's, or every project's added up (zeros
    before the first sync). One query over one row per project."""
    rows = InventoryFigures.objects.all()
    if project is not None:
        rows = rows.filter(project=project)
    rows = list(rows)
    if len(rows) == 1:
        return rows[0]
    total = InventoryFigures()
    for name in (*FIGURE_FIELDS, "sessions", "groups"):
        setattr(total, name, sum(getattr(r, name) for r in rows))
    total.updated_at = min((r.updated_at for r in rows if r.updated_at), default=None)
    return total


# The columns a snapshot decides, in the order of ServerRow (the primary key first): what
# the sync writes (with synced_at) and compares with the stored row to see what changed.
SERVER_COLUMNS = (
    "id",
    "project_id",
    "name",
    "machine_name",
    "group_id",
    "image_id",
    "os_type",
    "os_version",
    "architecture",
    "system_disk_size",
    "status",
    "vm_status",
    "task_status",
    "maintain_status",
    "session_count",
    "frozen",
    "ip_addresses",
    "availability_zone",
    "job_id",
    "job_type",
    "job_status",
    "job_time",
    "created_at",
    "drift",
    "search_text",
    "gone",
)
ServerRow = namedtuple("ServerRow", SERVER_COLUMNS)
# Positions in a stored row (_stored_servers), which leaves out the id.
_GONE = SERVER_COLUMNS.index("gone") - 1
_IMAGE = SERVER_COLUMNS.index("image_id") - 1


def _stored_servers(project: Project) -> dict[str, tuple]:
    """Every stored server of `project` (gone ones included): id → the other SERVER_COLUMNS,
    as the database driver returns them (no field conversion: compared with ServerRow)."""
    rows = Server.objects.filter(project=project).order_by().values_list(*SERVER_COLUMNS)
    sql, params = rows.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {values[0]: tuple(values[1:]) for values in cursor.fetchall()}


def _server_row(
    s: records.Server, group_images: dict[str, str], project_id: int, stored_time: Callable
) -> ServerRow:
    """A snapshot server as its Server column values, all but `synced_at`, in the types the
    database driver takes and returns."""
    ip_addresses = " ".join(s.ip_addresses)[:1024]
    group_image = group_images.get(s.group_id, "")
    return ServerRow(
        s.id,
        project_id,
        s.name,
        s.machine_name,
        s.group_id if s.group_id in group_images else None,
        s.image_id,
        s.os_type,
        s.os_version,
        s.architecture,
        s.system_disk_size,
        s.status,
        s.vm_status,
        s.task_status,
        s.maintain_status,
        s.session_count,
        s.frozen,
        ip_addresses,
        s.availability_zone,
        s.job_id,
        s.job_type,
        s.job_status,
        stored_time(s.job_time),
        stored_time(s.create_time),
        bool(group_image) and s.image_id != group_image,
        search_text(s.name, s.machine_name, ip_addresses),
        False,
    )


def _stored_time() -> Callable[[datetime | None], datetime | None]:
    """A time as the database driver takes and returns it: aware on PostgreSQL; naive in the
    connection's zone on SQLite, whose driver reads a stored time back naive."""
    if connection.features.supports_timezones:
        return lambda moment: moment
    zone = connection.timezone
    return lambda moment: moment and moment.astimezone(zone).replace(tzinfo=None)


def _images_left(stored: dict, changed: list, vanished: list[str], last_sync) -> None:
    """The images servers ran until this sync (servers that changed image, or vanished) were
    last seen on them by the previous sync: one UPDATE per image left."""
    now_on = {row.id: row.image_id for row in changed}
    left: dict[str, list[str]] = {}
    for server_id in [*now_on, *vanished]:
        values = stored.get(server_id)
        was = values[_IMAGE] if values and not values[_GONE] else ""
        if was and was != now_on.get(server_id):
            left.setdefault(was, []).append(server_id)
    for image_id, server_ids in left.items():
        for start in range(0, len(server_ids), BATCH):
            ServerImageSeen.objects.filter(
                image_id=image_id, server_id__in=server_ids[start : start + BATCH]
            ).update(last_seen=last_sync)


def _upsert(model, rows: list, update_fields: list[str]) -> None:
    model.objects.bulk_create(
        rows,
        batch_size=BATCH,
        update_conflicts=True,
        unique_fields=["id"],
        update_fields=update_fields,
    )


def last_sync(project: Project | None = None) -> SyncRun | None:
    runs = SyncRun.objects.exclude(state=SyncRun.State.RUNNING)
    if project is not None:
        runs = runs.filter(project=project)
    return runs.order_by("-started_at").first()


@dataclass(frozen=True)
class ProjectFreshness:
    project: Project
    last_synced: object  # datetime | None
    sync_running: bool
    failed_at: object  # datetime | None: the last run failed (after the last success)
    error: str


def freshness(project: Project | None = None) -> dict:
    """What every page shows about how fresh its data is, per project (two queries; a third
    only when a project's last run failed).

    `last_synced` is the stalest project's last success (a page is as fresh as its oldest
    part); `projects_freshness` tells each project's, with the error of a failing one.
    """
    shown = [project] if project is not None else projects.rows()
    latest = (
        SyncRun.objects.filter(project__in=shown)
        .values("project", "state")
        .annotate(at=Max("finished_at"), started=Max("started_at"))
    )
    synced, running, failed = {}, set(), {}
    for row in latest:
        if row["state"] == SyncRun.State.SUCCEEDED:
            synced[row["project"]] = row["at"]
        elif row["state"] == SyncRun.State.RUNNING:
            running.add(row["project"])
        elif row["state"] == SyncRun.State.FAILED:
            failed[row["project"]] = row["at"]
    # A failure counts until a success comes after it.
    failing = [pk for pk, at in failed.items() if at and (not synced.get(pk) or at > synced[pk])]
    errors = {}
    if failing:
        runs = SyncRun.objects.filter(project__in=failing, state=SyncRun.State.FAILED)
        for run in runs.order_by("-finished_at")[: len(failing) * 5]:
            errors.setdefault(run.project_id, run.error)
    rows = [
        ProjectFreshness(
            project=p,
            last_synced=synced.get(p.pk),
            sync_running=p.pk in running,
            failed_at=failed[p.pk] if p.pk in failing else None,
            error=errors.get(p.pk, ""),
        )
        for p in shown
    ]
    times = [r.last_synced for r in rows]
    return {
        "last_synced": None if not times or None in times else min(times),
        "sync_running": bool(running),
        "projects_freshness": rows,
        "failing_projects": [r for r in rows if r.failed_at],
    }
