"""The task worker: django-tasks-db on this Django version, a worker that survives a lost
database connection, and recovery of a dead worker's tasks by heartbeat."""

import os
import re
import signal
import socket
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from dashboard import heartbeat, inventory, tasks
from dashboard.management.commands.worker import ResilientWorker
from dashboard.models import SyncRun, WorkerHeartbeat
from tests.faults.procs import child_env, start, start_worker, wait_for


@pytest.mark.django_db(transaction=True)
def test_a_task_enqueued_on_the_database_backend_runs_under_db_worker_batch():
    result = tasks.record_heartbeat.enqueue("batch-worker")
    assert DBTaskResult.objects.filter(id=result.id, status="READY").exists()

    call_command("db_worker", batch=True, reload=False, verbosity=0)

    result.refresh()
    assert result.status == "SUCCESSFUL"
    assert result.return_value == "batch-worker"
    # The task's own result is the proof; a heartbeat row written once would show on the
    # overview as a worker that died 15 s later.
    assert not WorkerHeartbeat.objects.exists()


# --- recovery by heartbeat ------------------------------------------------------------------


def _worker(worker_id: str, beat_age: float, interval: float = 5.0, **fields) -> None:
    now = timezone.now()
    WorkerHeartbeat.objects.create(
        worker_id=worker_id,
        beat_at=now - timedelta(seconds=beat_age),
        started_at=now - timedelta(hours=1),
        interval_seconds=interval,
        **fields,
    )


def _running_on(worker_id: str, started_ago: float = 600) -> str:
    result = tasks.record_heartbeat.enqueue("x")
    DBTaskResult.objects.filter(id=result.id).update(
        status="RUNNING",
        worker_ids=[worker_id],
        started_at=timezone.now() - timedelta(seconds=started_ago),
    )
    return result.id


@pytest.mark.django_db
def test_a_dead_workers_running_tasks_are_put_back_at_once(settings):
    settings.WORKER_STALE_BEATS = 3
    _worker("dead", beat_age=16)  # three 5 s beats missed
    _worker("stopped", beat_age=1, stopped_at=timezone.now())
    dead, stopped = _running_on("dead", started_ago=20), _running_on("stopped", started_ago=2)

    assert heartbeat.recover_dead_workers() == 2

    ready = DBTaskResult.objects.filter(status="READY").values_list("id", flat=True)
    assert {str(i) for i in ready} == {dead, stopped}
    assert heartbeat.recover_dead_workers() == 0  # nothing is put back twice


@pytest.mark.django_db
def test_a_live_but_slow_task_is_never_put_back(settings):
    settings.WORKER_STALE_BEATS = 3
    _worker("slow", beat_age=4)  # beating, though its task started an hour ago
    _worker("unknown-to-us-is-absent", beat_age=1)
    slow = _running_on("slow", started_ago=3600)
    bare = _running_on("bare-db-worker", started_ago=3600)  # no heartbeat row: not ours

    assert heartbeat.recover_dead_workers() == 0
    assert DBTaskResult.objects.get(id=slow).status == "RUNNING"
    assert DBTaskResult.objects.get(id=bare).status == "RUNNING"


@pytest.mark.django_db
def test_staleness_is_measured_in_the_workers_own_intervals(settings):
    settings.WORKER_STALE_BEATS = 3
    _worker("fast", beat_age=2, interval=0.5)  # 4 beats missed
    _worker("slow-beat", beat_age=20, interval=10)  # 2 beats missed
    fast, slow = _running_on("fast"), _running_on("slow-beat")
    assert heartbeat.recover_dead_workers() == 1
    assert DBTaskResult.objects.get(id=fast).status == "READY"
    assert DBTaskResult.objects.get(id=slow).status == "RUNNING"


@pytest.mark.django_db
def test_the_overview_lists_each_worker(viewer_client):
    _worker("host-a-11", beat_age=1, hostname="host-a")
    _worker("host-b-22", beat_age=600, hostname="host-b")
    _running_on("host-b-22")
    page = viewer_client.get("/").content.decode()
    assert "host-a-11" in page and "host-b-22" in page
    assert "dead" in page


# --- a cut database connection ----------------------------------------------------------------


def _terminate_other_backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_worker_survives_its_connection_cut_mid_task_and_runs_the_task_again(
    simulator_factory, tmp_path
):
    if connection.vendor != "postgresql":
        pytest.skip("pg_terminate_backend needs PostgreSQL")
    sim = simulator_factory(servers=60, latency_ms=400)  # a sync that takes a few seconds
    run, _ = inventory.request_sync("manual")
    worker = start_worker(tmp_path, sim)
    try:
        wait_for(
            lambda: DBTaskResult.objects.filter(status="RUNNING").exists(), 60, "the sync to start"
        )
        assert _terminate_other_backends() >= 1

        def finished():
            return SyncRun.objects.filter(pk=run.pk).exclude(state="running").first()

        wait_for(finished, 90, "the sync run to end")  # never left "running"
        task = wait_for(
            lambda: DBTaskResult.objects.filter(
                task_path="dashboard.inventory.sync_inventory", status="SUCCESSFUL"
            ).first(),
            30,
            "the sync task to be run again",
        )
        assert worker.alive(), worker.output()
        assert len(task.worker_ids) == 2, "put back and run again by the same, living worker"
        assert "put back to run again" in worker.output()
        # The worker carries on with new work after reconnecting.
        after = tasks.record_heartbeat.enqueue("after-the-cut")
        wait_for(
            lambda: DBTaskResult.objects.filter(id=after.id, status="SUCCESSFUL").exists(),
            30,
            "a task after the cut",
        )
    finally:
        worker.stop()


# --- serve keeps its children running -------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.django_db(transaction=True)
def test_serve_restarts_a_worker_that_was_killed(simulator, tmp_path):
    serve = start(
        ["serve", "--no-simulator", "--port", str(_free_port())],
        child_env(simulator),
        tmp_path / "serve.log",
    )
    try:
        first = int(
            wait_for(
                lambda: re.search(r"serve: worker started \(pid (\d+)\)", serve.output()),
                60,
                "serve to start its worker",
            ).group(1)
        )
        wait_for(
            lambda: WorkerHeartbeat.objects.filter(worker_id__contains=f"-{first}-").exists(),
            60,
            "the first worker's heartbeat",
        )
        os.kill(first, signal.SIGKILL)

        restarted = wait_for(
            lambda: re.findall(r"serve: worker started \(pid (\d+)\)", serve.output())[1:],
            60,
            "serve to restart the worker",
        )
        assert f"worker (pid {first}) exited with code -9; restarting in 1s" in serve.output()
        second = int(restarted[0])
        assert second != first
        wait_for(
            lambda: WorkerHeartbeat.objects.filter(worker_id__contains=f"-{second}-").exists(),
            60,
            "the new worker's heartbeat",
        )
        assert serve.alive(), serve.output()
    finally:
        serve.stop()


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_task_that_swallowed_a_lost_connection_is_run_again_not_marked_done(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("pg_terminate_backend needs PostgreSQL")

    def sync_that_loses_its_connection(*args, **kwargs) -> SyncRun:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        except DatabaseError:
            pass  # a task that carries on regardless
        return SyncRun(state=SyncRun.State.SUCCEEDED)

    monkeypatch.setattr(inventory, "run_sync", sync_that_loses_its_connection)
    result = tasks.sync_inventory.enqueue(0)
    worker = ResilientWorker(
        queue_names=["default"],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=1,
        worker_id="in-test",
        excluded_queue_names=[],
    )
    worker.run()

    task = DBTaskResult.objects.get(id=result.id)
    assert task.status == "READY"
    assert task.run_after > timezone.now()
    assert task.worker_ids == ["in-test"]
