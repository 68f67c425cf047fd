"""The worker's heartbeat (read by /healthz) and its periodic duties."""

import logging
import socket
import threading
from collections.abc import Callable

from django.db import close_old_connections
from django.utils import timezone

from dashboard.models import WorkerHeartbeat

log = logging.getLogger(__name__)


def beat(worker_id: str, started_at) -> None:
    WorkerHeartbeat.objects.update_or_create(
        worker_id=worker_id,
        defaults={
            "beat_at": timezone.now(),
            "started_at": started_at,
            "hostname": socket.gethostname(),
        },
    )


class Heart(threading.Thread):
    """Beats every `interval` seconds and runs `duties` (e.g. the sync schedule) each time."""

    def __init__(self, worker_id: str, interval: float, duties: list[Callable[[], None]]) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.worker_id = worker_id
        self.interval = interval
        self.duties = duties
        self.stopped = threading.Event()
        self.started_at = timezone.now()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                close_old_connections()
                beat(self.worker_id, self.started_at)
                for duty in self.duties:
                    duty()
            except Exception:
                # A database hiccup must not kill the heartbeat thread; the next beat retries.
                log.exception("heartbeat failed")
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()
