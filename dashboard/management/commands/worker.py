"""Run the task worker: django-tasks-db's db_worker, plus a heartbeat and the sync schedule."""

import os
import socket

from django.core.management import call_command
from django.core.management.base import BaseCommand

from dashboard.heartbeat import Heart


def scheduled_duties() -> list:
    from dashboard import inventory
    from dashboard.rollouts import recovery

    return [inventory.schedule_sync, recovery.resume_stalled]


class Command(BaseCommand):
    help = "Run background tasks (rollout submission, job refresh, inventory sync)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--interval", type=float, default=0.5, help="Queue poll interval (s).")
        parser.add_argument("--heartbeat", type=float, default=5.0, help="Heartbeat interval (s).")

    def handle(self, *, interval: float, heartbeat: float, **options) -> None:
        worker_id = f"{socket.gethostname()}-{os.getpid()}"
        heart = Heart(worker_id, heartbeat, scheduled_duties())
        heart.start()
        self.stdout.write(f"worker {worker_id} started")
        try:
            call_command(
                "db_worker",
                interval=interval,
                reload=False,
                worker_id=worker_id[:64],
                verbosity=options.get("verbosity", 1),
            )
        finally:
            heart.stop()
            self.stdout.write(f"worker {worker_id} stopped")
