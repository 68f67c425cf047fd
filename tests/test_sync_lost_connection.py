"""A sync whose worker lost its database connection is run again by the same worker, and the
rerun does the sync: no requested sync is lost to a failover."""

import pytest
from django.db import OperationalError, connection
from django_tasks_db.models import DBTaskResult

from dashboard import inventory
from dashboard.models import Server, SyncRun
from tests.faults.procs import start_worker, wait_for


def _terminate_other_backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_sync_cut_off_from_the_database_is_done_by_its_rerun(simulator_factory, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("pg_terminate_backend needs PostgreSQL")
    sim = simulator_factory(servers=60, latency_ms=400)  # a sync that takes a few seconds
    run, _ = inventory.request_sync("manual", requested_by="alice")
    worker = start_worker(tmp_path, sim)
    try:
        wait_for(
            lambda: DBTaskResult.objects.filter(status="RUNNING").exists(), 60, "the sync to start"
        )
        assert _terminate_other_backends() >= 1
        task = wait_for(
            lambda: DBTaskResult.objects.filter(
                task_path__endswith=".sync_inventory", status__in=["SUCCESSFUL", "FAILED"]
            ).first(),
            90,
            "the sync task to be run again and end",
        )
        assert "put back to run again" in worker.output()
        assert len(task.worker_ids) == 2, worker.output()
    finally:
        worker.stop()

    runs = list(SyncRun.objects.order_by("pk").values_list("pk", "state", "error"))
    assert task.status == "SUCCESSFUL", task.traceback
    assert task.return_value == SyncRun.State.SUCCEEDED, runs
    assert SyncRun.objects.get(pk=run.pk).state == SyncRun.State.SUCCEEDED, runs
    assert Server.objects.filter(gone=False).count() == 60


class CutOffClient:
    """Wraps a real client: the group listing fails as a cut database connection does when the
    shared pacing counter (a database row) is read."""

    def __init__(self, client):
        self.client = client

    def __getattr__(self, name):
        return getattr(self.client, name)

    def list_server_groups(self):
        raise OperationalError("terminating connection due to administrator command")


@pytest.mark.django_db
def test_a_sync_that_lost_its_database_stays_running_for_its_rerun(sim_settings, cloud_client):
    run, started = inventory.request_sync("manual")
    assert started

    with pytest.raises(OperationalError):  # the worker sees it, and puts the task back
        inventory.run_sync(run.pk, client=CutOffClient(cloud_client))
    run.refresh_from_db()
    assert (run.state, run.error) == (SyncRun.State.RUNNING, "")

    rerun = inventory.run_sync(run.pk, client=cloud_client)
    assert rerun.state == SyncRun.State.SUCCEEDED
    assert Server.objects.filter(gone=False).count() == len(sim_settings.state.servers)


@pytest.mark.django_db
def test_a_sync_that_failed_for_another_reason_is_still_marked_failed(cloud_client):
    run, _ = inventory.request_sync("manual")

    class Broken(CutOffClient):
        def list_server_groups(self):
            raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        inventory.run_sync(run.pk, client=Broken(cloud_client))
    run.refresh_from_db()
    assert (run.state, run.error) == (SyncRun.State.FAILED, "ValueError")
