"""Run the task worker: django-tasks-db's worker loop, made to survive a lost database, plus a
heartbeat thread with its duties (recovery of dead workers' tasks, the sync schedule).

A cut database connection (a failover, `pg_terminate_backend`, a restart) no longer ends the
process: polling backs off and reconnects, and a task that lost its connection is put back to
run again (tasks are idempotent: the rows are the truth) instead of being marked failed on a
connection that is gone. Outcomes are written only while the task is still ours, so a worker
that was presumed dead and recovered from cannot overwrite the task's new run.
"""

import contextlib
import logging
import threading
import time
import traceback
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.db import (
    DatabaseError,
    OperationalError,
    close_old_connections,
    connection,
)
from django.utils import timezone
from django_tasks_db.compat import TaskContext, task_finished, task_started
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

from dashboard import audit, inventory, projects, upstream
from dashboard.dbloss import lost_database
from dashboard.heartbeat import (
    Heart,
    forget_old_workers,
    mark_stopped,
    recover_dead_workers,
    this_worker_id,
)
from dashboard.rollouts import planning, recovery

log = logging.getLogger("dashboard.worker")

RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)  # seconds, then 10 s until the database answers
MAX_CLAIMS = 10  # a task that lost its connection this often is marked failed instead
PUT_BACK_DELAY_CAP = 30.0
STOPPING_WRITE_ATTEMPTS = 3
STOP_WAIT_SECONDS = 30.0  # a project thread's task in hand gets this long to finish at a stop


def scheduled_duties() -> list:
    return [
        recover_dead_workers,
        forget_old_workers,
        upstream.prune_rate_windows,
        audit.summarize_refusals,  # a quiet minute after refusals gets its summary too
        inventory.schedule_sync,
        recovery.resume_stalled,
        planning.expire_plans,
    ]


def _connection_broke() -> bool:
    """True if this thread's connection failed during the task and no longer answers."""
    return bool(connection.connection is not None and connection.errors_occurred) and not (
        connection.is_usable()
    )


def _reset_connections() -> None:
    """Close whatever connection broke, so the next query opens a fresh one."""
    # Closing a dead connection can fail; Django has forgotten it either way.
    with contextlib.suppress(DatabaseError):
        close_old_connections()


class ResilientWorker(Worker):
    companions: list["ResilientWorker"] = []  # the project threads a main loop stops with it

    def shutdown(self, signum, frame) -> None:
        for other in self.companions:
            other.running = False  # they finish the task in hand; the main loop waits for them
        super().shutdown(signum, frame)

    def run(self) -> None:
        failures = 0
        last_failure = 0.0
        while self.running:
            try:
                super().run()
                return
            except DatabaseError as exc:
                if time.monotonic() - last_failure > 60:
                    failures = 0
                delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
                failures += 1
                last_failure = time.monotonic()
                log.warning(
                    "worker %s lost the database (%s); reconnecting in %.1fs",
                    self.worker_id,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                    delay,
                )
                _reset_connections()
                self.startup_delay = False
                time.sleep(delay)

    def run_task(self, db_task_result: DBTaskResult) -> None:
        claimed_at = db_task_result.started_at
        try:
            self.running_task = True
            task = db_task_result.task
            task_result = db_task_result.task_result
            task_started.send(sender=type(task.get_backend()), task_result=task_result)
            if task.takes_context:
                value = task.call(
                    TaskContext(task_result=task_result), *task_result.args, **task_result.kwargs
                )
            else:
                value = task.call(*task_result.args, **task_result.kwargs)
        except (KeyboardInterrupt, SystemExit):
            self._put_back(db_task_result, claimed_at, "the worker was stopped", delay=0)
            raise
        except BaseException as exc:
            if lost_database(exc):
                self._put_back_after_loss(db_task_result, claimed_at, exc)
            else:
                self._finish(db_task_result, claimed_at, error=exc)
        else:
            if _connection_broke():
                # The task swallowed a database error and may have stopped half-way: run it again.
                lost = OperationalError("the connection broke while the task ran")
                self._put_back_after_loss(db_task_result, claimed_at, lost)
            else:
                self._finish(db_task_result, claimed_at, value=value)
        finally:
            self.running_task = False
            self._run_tasks += 1

    # --- writing the outcome while the task is still ours --------------------------------

    def _put_back_after_loss(self, db_task: DBTaskResult, claimed_at, exc: BaseException) -> None:
        claims = len(db_task.worker_ids)
        if claims >= MAX_CLAIMS:
            self._finish(db_task, claimed_at, error=exc)
            return
        delay = min(PUT_BACK_DELAY_CAP, 2.0 ** (claims - 1))
        self._put_back(db_task, claimed_at, f"it lost its database connection ({exc})", delay)

    def _put_back(self, db_task: DBTaskResult, claimed_at, why: str, delay: float) -> None:
        fields: dict[str, Any] = {"status": "READY"}
        if delay:
            fields["run_after"] = timezone.now() + timedelta(seconds=delay)
        if self._write(db_task, claimed_at, fields):
            log.warning(
                "task %s (%s) put back to run again in %.0fs: %s",
                db_task.id,
                db_task.task_name,
                delay,
                str(why).strip().splitlines()[0],
            )

    def _finish(self, db_task: DBTaskResult, claimed_at, *, value=None, error=None) -> None:
        fields: dict[str, Any] = {"finished_at": timezone.now()}
        if error is None:
            fields |= {"status": "SUCCESSFUL", "return_value": value}
            fields |= {"exception_class_path": "", "traceback": ""}
        else:
            fields |= {"status": "FAILED", "return_value": None, **_failure(error)}
        try:
            written = self._write(db_task, claimed_at, fields)
        except (TypeError, ValueError) as exc:  # a return value JSON cannot hold
            fields |= {"status": "FAILED", "return_value": None, **_failure(exc)}
            written = self._write(db_task, claimed_at, fields)
        if not written:
            return
        for name, field_value in fields.items():
            setattr(db_task, name, field_value)
        try:
            task_finished.send(
                sender=type(db_task.task.get_backend()), task_result=db_task.task_result
            )
        except Exception:
            log.exception("task %s finished, but reporting it failed", db_task.id)

    def _write(self, db_task: DBTaskResult, claimed_at, fields: dict) -> bool:
        """Update the task if it is still the run we claimed; keep trying while the database
        is away (a failover), a few times only when stopping. True if written."""
        attempt = 0
        while True:
            _reset_connections()
            try:
                written = DBTaskResult.objects.filter(
                    id=db_task.id, status="RUNNING", started_at=claimed_at
                ).update(**fields)
            except DatabaseError as exc:
                attempt += 1
                if not self.running and attempt >= STOPPING_WRITE_ATTEMPTS:
                    log.error("task %s: outcome not written (%s)", db_task.id, exc)
                    return False
                delay = RECONNECT_DELAYS[min(attempt - 1, len(RECONNECT_DELAYS) - 1)]
                log.warning(
                    "task %s: writing its outcome failed (%s); again in %.1fs",
                    db_task.id,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                    delay,
                )
                time.sleep(delay)
                continue
            if not written:
                log.warning(
                    "task %s is no longer this worker's (recovered elsewhere); outcome dropped",
                    db_task.id,
                )
            return bool(written)


def _failure(exc: BaseException) -> dict[str, str]:
    return {
        "exception_class_path": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "traceback": "".join(traceback.format_exception(exc)),
    }


class Command(BaseCommand):
    help = "Run background tasks (rollout submission, job refresh, inventory sync)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--interval", type=float, default=0.5, help="Queue poll interval (s).")
        parser.add_argument("--heartbeat", type=float, default=5.0, help="Heartbeat interval (s).")

    def handle(self, *, interval: float, heartbeat: float, **options) -> None:
        worker_id = this_worker_id()
        heart = Heart(worker_id, heartbeat, scheduled_duties())
        heart.beat_now()  # before the first claim: every task we hold has a heartbeat row
        heart.start()
        self.stdout.write(f"worker {worker_id} started")
        main, *others = [_worker(queue, interval, worker_id) for queue in projects.queues()]
        # One thread per project queue beside the main loop (the default queue): a project whose
        # cloud is slow or refuses the key keeps only its own thread busy.
        threads = [
            threading.Thread(target=w.run, name=f"worker-{w.queue_names[0]}", daemon=True)
            for w in others
        ]
        main.companions = others
        main.configure_signals()
        for thread in threads:
            thread.start()
        try:
            main.run()
        finally:
            for other in others:
                other.running = False
            for thread in threads:
                thread.join(timeout=STOP_WAIT_SECONDS)
            heart.stop()
            # Without a database the beat goes stale instead; other workers recover our tasks.
            with contextlib.suppress(DatabaseError):
                mark_stopped(worker_id)
            self.stdout.write(f"worker {worker_id} stopped")


def _worker(queue: str, interval: float, worker_id: str) -> "ResilientWorker":
    return ResilientWorker(
        queue_names=[queue],
        interval=interval,
        batch=False,
        backend_name="default",
        startup_delay=True,
        max_tasks=None,
        worker_id=worker_id,
        excluded_queue_names=[],
    )
