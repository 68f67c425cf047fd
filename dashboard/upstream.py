"""The cloud guard's shared memory in the database, and what the pages say about the cloud.

`DatabaseStore` is the `limits.Store` every worker shares (one counter row per API class and
second; one statement per call). `cloud_status()` is the cloud's health as the workers last
saw it, from their heartbeat rows: /healthz and the pages read it instead of calling the cloud.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from dashboard.models import CloudRateWindow, WorkerHeartbeat


class DatabaseStore:
    """`limits.Store` over CloudRateWindow: an atomic upsert, so workers never lose a count."""

    def hit(self, key: str, ttl: float) -> int:
        if connection.in_atomic_block:
            # The counter row would stay locked until the caller's transaction ends, stalling
            # every other worker (or deadlocking a thread of this one). Cloud calls belong
            # outside transactions; one made inside goes unpaced rather than blocking.
            return 1
        table = connection.ops.quote_name(CloudRateWindow._meta.db_table)
        expires = timezone.now() + timedelta(seconds=ttl)
        # PostgreSQL and SQLite (3.35+) both take INSERT … ON CONFLICT … RETURNING.
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (key, count, expires_at) VALUES (%s, 1, %s) "  # noqa: S608
                f"ON CONFLICT (key) DO UPDATE SET count = {table}.count + 1 RETURNING count",
                [key, expires],
            )
            return int(cursor.fetchone()[0])


def prune_rate_windows() -> int:
    """Heartbeat duty: forget the seconds that have passed."""
    deleted, _ = CloudRateWindow.objects.filter(expires_at__lt=timezone.now()).delete()
    return deleted


@dataclass(frozen=True)
class CloudStatus:
    reachable: bool | None  # None: no live worker has talked to the cloud yet
    unreachable_since: datetime | None
    last_ok_at: datetime | None
    last_failed_at: datetime | None
    last_error: str


def cloud_status(live_workers: list[WorkerHeartbeat]) -> CloudStatus:
    """The freshest word on the cloud among `live_workers` (see heartbeat.live_workers).

    Unreachable while a live worker's circuit breaker is open (it saw several failures in a
    row), or when no worker has ever had an answer; "since" is the earliest such failure.
    """
    ok = [w.cloud_ok_at for w in live_workers if w.cloud_ok_at]
    failed = [w.cloud_failed_at for w in live_workers if w.cloud_failed_at]
    last_ok, last_failed = max(ok, default=None), max(failed, default=None)
    if last_ok is None and last_failed is None:
        return CloudStatus(None, None, None, None, "")
    open_since = [w.cloud_unreachable_since for w in live_workers if w.cloud_unreachable_since]
    failing = bool(open_since) or last_ok is None
    errors = [w for w in live_workers if w.cloud_failed_at == last_failed]
    return CloudStatus(
        reachable=not failing,
        unreachable_since=min(open_since or [last_failed]) if failing else None,
        last_ok_at=last_ok,
        last_failed_at=last_failed,
        last_error=errors[0].cloud_error if errors and failing else "",
    )
