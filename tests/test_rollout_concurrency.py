"""Two workers on one rollout never send a server twice (PostgreSQL, where workers scale out)."""

import threading

import pytest
from django.db import connection

from dashboard import inventory
from dashboard.cloud.client import CloudClient
from dashboard.cloud.config import from_settings
from dashboard.models import Rollout, Server
from dashboard.rollouts import engine, planning
from tests.sim_fixtures import cloud_settings

CHANGE_PATH = "/app-servers/actions/batch-change-image"


@pytest.fixture
def needs_postgres():
    if connection.vendor != "postgresql":
        pytest.skip(
            "Two concurrent workers need PostgreSQL (SQLite serialises writers in one file); "
            "CI's PostgreSQL pass runs this test."
        )


@pytest.mark.django_db(transaction=True)
def test_two_workers_on_one_rollout_send_each_server_exactly_once(
    needs_postgres, simulator_factory, settings
):
    sim = simulator_factory(servers=300, latency_ms=20)
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, **cloud_settings(sim)}
    settings.ROLLOUT_CALLS_IN_FLIGHT = 2
    inventory.sync_now(client=CloudClient(from_settings()))
    servers = list(Server.objects.filter(drift=True).select_related("group"))
    group_image = servers[0].group.image_id
    servers = [s for s in servers if s.group.image_id == group_image]
    images = planning.image_map()
    rollout = planning.create_plan(
        created_by="otto", servers=servers, target=images[group_image], images=images, reason="r"
    )
    assert planning.confirm(rollout.pk, "otto").confirmed

    errors: list[BaseException] = []

    def worker() -> None:
        try:
            engine.start(rollout.pk, CloudClient(from_settings()), sleep=lambda s: None)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors
    sent = [sid for r in sim.requests("POST", CHANGE_PATH) for sid in r["body"]["server_ids"]]
    changing = set(rollout.servers.filter(verdict="change").values_list("server_id", flat=True))
    assert len(sent) == len(set(sent)), "a server was sent twice"
    assert set(sent) == changing
    assert Rollout.objects.get(pk=rollout.pk).state == Rollout.State.RUNNING


@pytest.mark.django_db(transaction=True)
def test_retries_asked_at_once_make_one_open_plan(small_fleet):
    """Six people (or scripts) clicking "Retry failed" together: one retry plan, which all of
    them are answered with. Each thread has its own connection, as each request would."""
    from dashboard.rollouts import control
    from tests.api_helpers import running_rollout

    failed = running_rollout(state="failed")
    failed.servers.update(state="failed")
    start = threading.Barrier(6)
    plans: list[int] = []
    errors: list[BaseException] = []

    def retry() -> None:
        try:
            start.wait(timeout=10)
            plans.append(control.retry(failed.pk, by="otto").plan.pk)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=retry) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors
    assert len(plans) == 6 and len(set(plans)) == 1
    assert Rollout.objects.get(pk=failed.pk).derived.count() == 1
