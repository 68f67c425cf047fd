"""Tracking reads a rollout's servers with several calls in flight (ROLLOUT_CALLS_IN_FLIGHT),
making exactly the calls of reading them one after the other, and finding the same servers.

Against the simulator over real HTTP; calls are counted (and slowed, so that they overlap)
at the HTTP boundary by a transport adapter.
"""

import threading
import time
from collections import Counter

import pytest
import requests

from dashboard import inventory
from dashboard.cloud.client import CloudClient
from dashboard.cloud.config import from_settings
from dashboard.cloud.errors import CloudError
from dashboard.models import RolloutServer, Server
from dashboard.rollouts import planning
from dashboard.rollouts.reread import reread_servers
from tests.rollout_helpers import movable
from tests.sim_fixtures import cloud_settings

pytestmark = pytest.mark.django_db


class Counting(requests.adapters.HTTPAdapter):
    """Counts calls by path and the most in flight at once; each call takes `pause` seconds
    longer, so calls that may overlap do. `fail` makes GETs whose URL contains it answer 500."""

    def __init__(self, pause: float = 0.0, fail: str = "") -> None:
        super().__init__()
        self.pause, self.fail = pause, fail
        self.lock = threading.Lock()
        self.active = self.most = 0
        self.paths: Counter[str] = Counter()

    def send(self, request, *args, **kwargs):
        with self.lock:
            self.active += 1
            self.most = max(self.most, self.active)
            self.paths[request.path_url.split("?")[0].rsplit("/", 1)[-1]] += 1
        try:
            time.sleep(self.pause)
            if self.fail and self.fail in request.url:
                answer = requests.Response()
                answer.status_code, answer._content, answer.url = 500, b"{}", request.url
                return answer
            return super().send(request, *args, **kwargs)
        finally:
            with self.lock:
                self.active -= 1


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
    one_by_one, together = Counting(), Counting(pause=0.02)

    serial = reread_servers(client_with(one_by_one), rows, in_flight=1)
    parallel = reread_servers(client_with(together), rows, in_flight=4)

    assert parallel == serial
    assert rows[0].server_id not in parallel and len(parallel) == len(rows) - 1
    assert together.paths == one_by_one.paths
    assert one_by_one.most == 1
    assert 2 <= together.most <= 4
    # Both ways were used: whole groups and single servers.
    assert together.paths["app-servers"] >= 3 and sum(together.paths.values()) > 8


def test_tracking_reads_with_the_calls_in_flight_the_setting_allows(rows, settings) -> None:
    settings.ROLLOUT_CALLS_IN_FLIGHT = 3
    adapter = Counting(pause=0.02)

    found = reread_servers(client_with(adapter), rows)

    assert len(found) == len(rows) - 1
    assert 2 <= adapter.most <= 3


def test_a_failing_read_in_flight_fails_the_reread(rows) -> None:
    adapter = Counting(fail="/app-servers/")  # every ShowServer answers 500

    with pytest.raises(CloudError):
        reread_servers(client_with(adapter), rows, in_flight=4)
