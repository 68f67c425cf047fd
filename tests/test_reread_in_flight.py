"""Tracking reads a rollout's servers with several calls in flight (ROLLOUT_CALLS_IN_FLIGHT),
making exactly the calls of reading them one after the other, and finding the same servers.

Against the simulator over real HTTP; calls are counted (and slowed, so that they overlap)
at the HTTP boundary (tests/http_boundary.py).
"""

import pytest
import requests

from dashboard import inventory
from dashboard.cloud.client import CloudClient
from dashboard.cloud.config import from_settings
from dashboard.cloud.errors import CloudError
from dashboard.models import RolloutServer, Server
from dashboard.rollouts import planning
from dashboard.rollouts.reread import reread_servers
from tests.http_boundary import Overlapping
from tests.rollout_helpers import movable
from tests.sim_fixtures import cloud_settings

pytestmark = pytest.mark.django_db


def client_with(adapter: requests.adapters.HTTPAdapter) -> CloudClient:
    session = requests.Session()
    session.mount("http://", adapter)
    return CloudClient(from_settings(), session=session, sleep=lambda s: None)


@pytest.fixture
def rows(simulator_factory, settings) -> list[RolloutServer]:
    """A plan's rows: most servers of some groups (read whole) and a few of others (read one
    by one). The first row's server is gone from the cloud."""
    sim = simulator_factory(servers=1500)
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, **cloud_settings(sim), "RETRY_DEADLINE": 0.0}
    inventory.sync_now(client=CloudClient(from_settings()))
    target, servers = movable(300)
    by_group: dict[str, list[Server]] = {}
    for server in servers:
        by_group.setdefault(server.group_id, []).append(server)
    groups = sorted(by_group.values(), key=len, reverse=True)
    chosen = [s for group in groups[:3] for s in group] + [g[0] for g in groups[3:8]]
    rollout = planning.create_plan(
        created_by="otto", servers=chosen, target=target, images=planning.image_map(), reason="r"
    )
    sim.state.delete_server(chosen[0].id)  # listed whole, but no longer there
    return sorted(rollout.servers.all(), key=lambda row: row.server_id != chosen[0].id)


def test_reads_in_flight_find_the_same_servers_with_the_same_calls(rows) -> None:
    one_by_one, together = Overlapping(pause=0), Overlapping()

    serial = reread_servers(client_with(one_by_one), rows, in_flight=1)
    parallel = reread_servers(client_with(together), rows, in_flight=4)

    assert parallel == serial
    assert rows[0].server_id not in parallel and len(parallel) == len(rows) - 1
    assert together.paths() == one_by_one.paths()
    assert one_by_one.most == 1
    assert 2 <= together.most <= 4
    # Both ways were used: whole groups and single servers.
    assert together.paths()["app-servers"] >= 3 and together.calls > 8


def test_tracking_reads_with_the_calls_in_flight_the_setting_allows(rows, settings) -> None:
    settings.ROLLOUT_CALLS_IN_FLIGHT = 3
    adapter = Overlapping()

    found = reread_servers(client_with(adapter), rows)

    assert len(found) == len(rows) - 1
    assert 2 <= adapter.most <= 3


def test_a_failing_read_in_flight_fails_the_reread(rows) -> None:
    adapter = Overlapping(pause=0, fail="/app-servers/")  # every ShowServer answers 500

    with pytest.raises(CloudError):
        reread_servers(client_with(adapter), rows, in_flight=4)
