"""A project whose cloud does not answer holds up no other project: the worker serves each
project's queue on its own thread (a real `manage.py worker` process, two projects)."""

import socket
import threading

import pytest
from django.db import connection

from dashboard import inventory, projects
from dashboard.models import Server, SyncRun
from dashboard.simulator.state import SimProject
from tests.faults.procs import start_worker, wait_for

pytestmark = [
    pytest.mark.faults,
    pytest.mark.postgres_only,
    pytest.mark.django_db(transaction=True),
]

BEIJING = SimProject(
    project_id="b" * 32, region="cn-north-4", ak="BEIJINGACCESSKEY0001", sk="beijing-secret"
)
SILENT = SimProject(
    project_id="5" * 32, region="ap-southeast-1", ak="SILENTACCESSKEY00001", sk="silent-secret"
)


@pytest.fixture
def silent_cloud():
    """Accepts connections and never answers: a cloud that hangs until the read timeout."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=2)
    for conn in held:
        conn.close()
    listener.close()


def test_a_hanging_cloud_holds_up_only_its_own_project(
    simulator_factory, silent_cloud, tmp_path, settings, monkeypatch
):
    sim = simulator_factory(projects=(BEIJING, SILENT))
    projects_file = tmp_path / "projects.toml"
    projects_file.write_text(
        f"""
[[project]]
name = "silent"
region = "ap-southeast-1"
project_id = "{SILENT.project_id}"
ak_env = "T_SILENT_AK"
sk_env = "T_SILENT_SK"
[project.endpoints]
workspaceapp = "{silent_cloud}"
workspace = "{silent_cloud}"
ims = "{silent_cloud}"
iam = "{silent_cloud}"

[[project]]
name = "beijing"
region = "cn-north-4"
project_id = "{BEIJING.project_id}"
ak_env = "T_BJ_AK"
sk_env = "T_BJ_SK"
"""
    )
    keys = {
        "T_BJ_AK": BEIJING.ak,
        "T_BJ_SK": BEIJING.sk,
        "T_SILENT_AK": SILENT.ak,
        "T_SILENT_SK": SILENT.sk,
    }
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    settings.CLOUD_PROJECTS = projects.configuration.load(projects_file)
    silent, beijing = projects.rows()
    hung, _ = inventory.request_sync("manual", project=silent)  # first in line
    synced, _ = inventory.request_sync("manual", project=beijing)
    connection.close()

    worker = start_worker(
        tmp_path,
        sim,
        CLOUD_PROJECTS_FILE=str(projects_file),
        HUAWEICLOUD_READ_TIMEOUT="25",
        HUAWEICLOUD_RETRY_DEADLINE="0",
        **keys,
    )
    try:
        _wait_for(
            worker,
            lambda: SyncRun.objects.get(pk=synced.pk).state == SyncRun.State.SUCCEEDED,
            60,
            "beijing's sync while silent's cloud hangs",
        )
        # Beijing's sync finished while silent's was still waiting for its cloud.
        assert SyncRun.objects.get(pk=hung.pk).state == SyncRun.State.RUNNING
        assert Server.objects.filter(project=beijing, gone=False).count() == 24
        assert not Server.objects.filter(project=silent).exists()
        failed = _wait_for(
            worker,
            lambda: SyncRun.objects.filter(pk=hung.pk, state=SyncRun.State.FAILED).first(),
            90,
            "silent's sync to fail at its read timeout",
        )
        assert failed.error
    finally:
        worker.stop()
    assert "Traceback" not in worker.output()


def _wait_for(worker, condition, timeout: float, what: str):
    """wait_for, with the worker's log in the failure."""
    try:
        return wait_for(condition, timeout, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- worker log ---\n{worker.output()[-4000:]}") from None
