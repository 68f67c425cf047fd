"""The sync reads several list pages at once, with exactly the calls of a serial read."""

import math
import threading
from urllib.parse import parse_qs, urlsplit

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

    settings.SYNC_CALLS_IN_FLIGHT = 3

    run = inventory.sync_now(client=CloudClient(from_settings(), session=session))

    assert run.state == SyncRun.State.SUCCEEDED
    assert not adapter.pair.broken
    assert 2 <= adapter.most <= 3
    assert sorted(Server.objects.values_list("id", flat=True)) == sorted(sim.state.servers)
    assert len(sim.requests("GET", SERVERS_PATH)) == 5


class FailOnServerPage(requests.adapters.HTTPAdapter):
    def __init__(self, offset: int) -> None:
        super().__init__()
        self.offset = str(offset)

    def send(self, request, *args, **kwargs):
        query = parse_qs(urlsplit(request.url).query)
        if SERVERS_PATH + "?" in request.url and query.get("offset") == [self.offset]:
            raise requests.ConnectionError("connection reset by peer")
        return super().send(request, *args, **kwargs)


def test_a_page_failing_in_flight_fails_the_sync_and_writes_nothing(simulator_factory, settings):
    sim = simulator_factory(servers=950)
    point_at(sim, settings, RETRY_DEADLINE=0.0)
    settings.SYNC_CALLS_IN_FLIGHT = 4
    session = requests.Session()
    session.mount("http://", FailOnServerPage(200))

    run = inventory.sync_now(client=CloudClient(from_settings(), session=session))

    assert run.state == SyncRun.State.FAILED
    assert "connection" in run.error
    assert not Server.objects.exists()
    assert len(sim.requests("GET", SERVERS_PATH)) <= 9  # never more pages than there are


def test_a_page_failing_after_servers_were_written_leaves_the_last_snapshot(
    simulator_factory, settings
):
    """The sync writes changed servers while it still reads (straight into the tables in
    its transaction on PostgreSQL, into a stage on SQLite): a page failing after several
    batches were written must leave the stored inventory as the last sync left it."""
    sim = simulator_factory(servers=1650)
    point_at(sim, settings, RETRY_DEADLINE=0.0)
    settings.SYNC_CALLS_IN_FLIGHT = 1  # pages in order: the failing one comes after 3 batches
    assert inventory.sync_now().state == SyncRun.State.SUCCEEDED
    before = dict(Server.objects.values_list("id", "name"))
    for server in list(sim.state.servers.values())[:1600]:  # three batches (inventory.BATCH)
        server.name = f"{server.name}-renamed"
    session = requests.Session()
    session.mount("http://", FailOnServerPage(1600))

    run = inventory.sync_now(client=CloudClient(from_settings(), session=session))

    assert run.state == SyncRun.State.FAILED
    assert dict(Server.objects.values_list("id", "name")) == before
    assert len(before) == 1650
