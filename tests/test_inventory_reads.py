"""The sync reads several list pages at once, with exactly the calls of a serial read."""

import math
import threading

import pytest
import requests

from dashboard import inventory
from dashboard.cloud.client import IMS_PAGE_SIZE, CloudClient
from dashboard.cloud.config import from_settings
from dashboard.models import Server, SyncRun
from tests.sim_fixtures import cloud_settings

pytestmark = pytest.mark.django_db

SERVERS_PATH = "/app-servers"


def serial_calls(sim) -> int:
    """ceil(servers/100) ListServers + ListServerGroups pages + IMS marker pages."""
    state = sim.state
    return (
        max(1, math.ceil(len(state.servers) / 100))
        + max(1, math.ceil(len(state.groups) / 100))
        + len(state.images) // IMS_PAGE_SIZE
        + 1
    )


def point_at(sim, settings, **extra) -> None:
    settings.HUAWEICLOUD = {
        **settings.HUAWEICLOUD,
        **cloud_settings(sim),
        "SECURITY_TOKEN": "",
        "VERIFY_TLS": False,
        **extra,
    }


@pytest.mark.parametrize("in_flight", [1, 4])
def test_reads_in_flight_make_exactly_the_serial_calls(simulator_factory, settings, in_flight):
    sim = simulator_factory(servers=1234)
    point_at(sim, settings)
    settings.SYNC_CALLS_IN_FLIGHT = in_flight
    client = CloudClient(from_settings())

    run = inventory.sync_now(client=client)

    assert run.state == SyncRun.State.SUCCEEDED
    assert len(sim.requests("GET", SERVERS_PATH)) == math.ceil(1234 / 100)
    assert len(sim.requests()) == serial_calls(sim) == run.api_calls == client.calls
    assert set(Server.objects.filter(gone=False).values_list("id", flat=True)) == set(
        sim.state.servers
    )


class InFlight(requests.adapters.HTTPAdapter):
    """Counts requests in flight; server pages after the first meet in pairs at a barrier.

    A serial reader never has two server pages out at once, so its first page after the
    first would break the barrier (after its timeout) instead of passing it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.active = 0
        self.most = 0
        self.pair = threading.Barrier(2, timeout=10)

    def send(self, request, *args, **kwargs):
        with self.lock:
            self.active += 1
            self.most = max(self.most, self.active)
        try:
            if SERVERS_PATH + "?" in request.url and "offset=0" not in request.url:
                self.pair.wait()
            return super().send(request, *args, **kwargs)
        finally:
            with self.lock:
                self.active -= 1


def test_server_pages_go_out_together_and_never_more_than_the_setting(simulator_factory, settings):
    sim = simulator_factory(servers=450)  # the first page, then four pages that pair up
    point_at(sim, settings)
    adapter = InFlight()
    session = requests.Session()
    session.mount("http://", adapter)

    snapshot = inventory.fetch(CloudClient(from_settings(), session=session), in_flight=3)

    assert not adapter.pair.broken
    assert 2 <= adapter.most <= 3
    assert sorted(s.id for s in snapshot.servers) == sorted(sim.state.servers)
    assert len(sim.requests("GET", SERVERS_PATH)) == 5


class FailOnThirdServerPage(requests.adapters.HTTPAdapter):
    def send(self, request, *args, **kwargs):
        if SERVERS_PATH + "?" in request.url and "offset=200" in request.url:
            raise requests.ConnectionError("connection reset by peer")
        return super().send(request, *args, **kwargs)


def test_a_page_failing_in_flight_fails_the_sync_and_writes_nothing(simulator_factory, settings):
    sim = simulator_factory(servers=950)
    point_at(sim, settings, RETRY_DEADLINE=0.0)
    settings.SYNC_CALLS_IN_FLIGHT = 4
    session = requests.Session()
    session.mount("http://", FailOnThirdServerPage())

    run = inventory.sync_now(client=CloudClient(from_settings(), session=session))

    assert run.state == SyncRun.State.FAILED
    assert "connection" in run.error
    assert not Server.objects.exists()
    assert len(sim.requests("GET", SERVERS_PATH)) <= 9  # never more pages than there are
