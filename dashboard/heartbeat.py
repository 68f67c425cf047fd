"""Worker heartbeats: who is alive, what a dead worker left running, and its periodic duties.

Every worker process (`manage.py worker`) writes its WorkerHeartbeat row every `interval`
seconds from a thread of its own, so a long task never stops the beat. A worker whose beat is
older than `WORKER_STALE_BEATS` of its intervals (or that stopped) is dead: the tasks it still
had RUNNING are put back READY at once and another worker runs them again. Tasks are idempotent
(the rows are the truth), and a live worker, however slow its task, keeps beating, so its task
is never run twice. The row also carries the worker's last cloud contact (cloud/limits.py),
which /healthz and the pages read instead of calling the cloud themselves.
"""

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from dashboard.cloud import limits
from dashboard.models import WorkerHeartbeat
from dashboard.upstream import CloudStatus, cloud_status

log = logging.getLogger(__name__)

FORGET_AFTER = timedelta(days=1)  # a dead worker's row leaves the overview after this
SHOWN_FOR = timedelta(hours=1)  # dead or stopped workers stay on the overview this long


def this_worker_id() -> str:
    """Unique per process start, at most 64 characters (django-tasks-db's limit). The random
    part matters in containers, where a restarted worker has the same host name and pid."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(4)}"


def beat(worker_id: str, started_at: datetime, interval: float = 5.0) -> None:
    """Write this worker's row: alive now, and the last cloud contact of this process."""
    values: dict = {
        "beat_at": timezone.now(),
        "started_at": started_at,
        "hostname": socket.gethostname()[:255],
        "interval_seconds": interval,
        "stopped_at": None,
    }
    contact = limits.contact()
    if contact is not None:
        values |= {
            "cloud_ok_at": contact.ok_at,
            "cloud_failed_at": contact.failed_at,
            "cloud_error": contact.error[:255],
            "cloud_unreachable_since": contact.unreachable_since,
        }
    WorkerHeartbeat.objects.update_or_create(worker_id=worker_id, defaults=values)


def mark_stopped(worker_id: str) -> None:
    WorkerHeartbeat.objects.filter(worker_id=worker_id).update(stopped_at=timezone.now())


def is_dead(row: WorkerHeartbeat, now: datetime) -> bool:
    stale_after = timedelta(seconds=row.interval_seconds * settings.WORKER_STALE_BEATS)
    return row.stopped_at is not None or now - row.beat_at > stale_after


def live_workers(now: datetime | None = None) -> list[WorkerHeartbeat]:
    now = now or timezone.now()
    rows = WorkerHeartbeat.objects.filter(stopped_at=None, beat_at__gte=now - FORGET_AFTER)
    return [row for row in rows if not is_dead(row, now)]


def recover_dead_workers(now: datetime | None = None) -> int:
    """Put back READY every task still RUNNING on a dead worker. Returns how many.

    A task whose worker never wrote a heartbeat (a bare `db_worker`) is not ours to judge and
    is left alone. The update is conditional on the claim we saw, so a task another worker
    recovered (and perhaps claimed) in the meantime is not touched twice.
    """
    now = now or timezone.now()
    running = list(
        DBTaskResult.objects.filter(status="RUNNING").values_list(
            "id", "worker_ids", "started_at", "task_path"
        )
    )
    owners = {ids[-1] for _, ids, _, _ in running if ids}
    if not owners:
        return 0
    dead = {
        row.worker_id
        for row in WorkerHeartbeat.objects.filter(worker_id__in=owners)
        if is_dead(row, now)
    }
    recovered = 0
    for task_id, worker_ids, started_at, task_path in running:
        if not worker_ids or worker_ids[-1] not in dead:
            continue
        if DBTaskResult.objects.filter(id=task_id, status="RUNNING", started_at=started_at).update(
            status="READY"
        ):
            recovered += 1
            log.warning(
                "task %s (%s) put back to run again: its worker %s is gone (heartbeat stale)",
                task_id,
                task_path.rsplit(".", 1)[-1],
                worker_ids[-1],
            )
    return recovered


def forget_old_workers(now: datetime | None = None) -> None:
    now = now or timezone.now()
    WorkerHeartbeat.objects.filter(beat_at__lt=now - FORGET_AFTER).delete()


@dataclass(frozen=True)
class WorkerView:
    worker_id: str
    hostname: str
    state: str  # live, stopped, dead
    beat_age_seconds: float
    started_at: datetime
    running: int  # tasks it holds RUNNING


def workers(now: datetime | None = None) -> list[WorkerView]:
    """Every worker seen lately, for /healthz and the overview page."""
    now = now or timezone.now()
    rows = list(WorkerHeartbeat.objects.filter(beat_at__gte=now - SHOWN_FOR))
    holding: dict[str, int] = {}
    for ids in DBTaskResult.objects.filter(status="RUNNING").values_list("worker_ids", flat=True):
        if ids:
            holding[ids[-1]] = holding.get(ids[-1], 0) + 1
    views = []
    for row in rows:
        state = "dead" if is_dead(row, now) else "live"
        if row.stopped_at is not None:
            state = "stopped"
        views.append(
            WorkerView(
                worker_id=row.worker_id,
                hostname=row.hostname,
                state=state,
                beat_age_seconds=round((now - row.beat_at).total_seconds(), 1),
                started_at=row.started_at,
                running=holding.get(row.worker_id, 0),
            )
        )
    return views


def cloud() -> CloudStatus:
    """The cloud as the live workers last saw it ("cloud unreachable since …")."""
    return cloud_status(live_workers())


class Heart(threading.Thread):
    """Beats every `interval` seconds, then runs `duties` (recovery, sync schedule…) each time."""

    def __init__(self, worker_id: str, interval: float, duties: list[Callable[[], object]]) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.worker_id = worker_id
        self.interval = interval
        self.duties = duties
        self.stopped = threading.Event()
        self.started_at = timezone.now()

    def beat_now(self) -> None:
        beat(self.worker_id, self.started_at, self.interval)

    def run(self) -> None:
        while not self.stopped.is_set():
            # A dropped connection is closed here and reopened by the next query.
            close_old_connections()
            try:
                self.beat_now()
            except Exception:
                # A database hiccup must not kill the heartbeat thread; the next beat retries.
                log.exception("heartbeat failed")
                close_old_connections()
            for duty in self.duties:
                try:
                    duty()
                except Exception:
                    log.exception("worker duty %s failed", getattr(duty, "__name__", duty))
            self.stopped.wait(self.interval)
        close_old_connections()

    def stop(self) -> None:
        self.stopped.set()
