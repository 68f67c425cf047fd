"""The garbage collector passes less often while a sync or a submit runs, and as before once
they end: blocks at the same time share one raise of the threshold.

The sync and the submit are driven against the simulator over real HTTP; the threshold is
read at the HTTP boundary, as each call leaves."""

import gc
import threading

import pytest
import requests

from dashboard import collector, inventory
from dashboard.cloud.client import CloudClient
from dashboard.cloud.config import from_settings
from dashboard.rollouts import engine
from tests.rollout_helpers import movable
from tests.sim_fixtures import cloud_settings
from tests.test_send_statements import NO_SLEEP, Boundary, client_with, confirmed, start_fleet


@pytest.fixture(autouse=True)
def default_threshold():
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


class Thresholds(requests.adapters.HTTPAdapter):
    """Reads the collector's threshold as each call leaves."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[int] = set()

    def send(self, request, *args, **kwargs):
        self.seen.add(gc.get_threshold()[0])
        return super().send(request, *args, **kwargs)


class ThresholdsAtChanges(Boundary):
    def __init__(self) -> None:
        super().__init__()
        self.seen: set[int] = set()

    def send(self, request, *args, **kwargs):
        if request.method == "POST":
            self.seen.add(gc.get_threshold()[0])
        return super().send(request, *args, **kwargs)


def test_blocks_at_the_same_time_share_one_raise_and_the_last_to_end_lowers_it():
    inside, leave = threading.Event(), threading.Event()

    def other() -> None:
        with collector.fewer_collections():
            inside.set()
            leave.wait(5)

    thread = threading.Thread(target=other)
    with collector.fewer_collections():
        thread.start()
        inside.wait(5)
        assert gc.get_threshold() == (collector.YOUNG_THRESHOLD, 10, 10)
    assert gc.get_threshold()[0] == collector.YOUNG_THRESHOLD  # the other block still runs
    leave.set()
    thread.join(5)
    assert gc.get_threshold() == (700, 10, 10)


def test_a_higher_threshold_is_kept():
    gc.set_threshold(50_000, 10, 10)
    with collector.fewer_collections():
        assert gc.get_threshold()[0] == 50_000
    assert gc.get_threshold()[0] == 50_000


@pytest.mark.django_db
def test_a_sync_reads_with_fewer_collections_and_restores_them(simulator_factory, settings):
    sim = simulator_factory(servers=250)
    adapter = Thresholds()
    session = requests.Session()
    session.mount("http://", adapter)
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, **cloud_settings(sim)}

    run = inventory.sync_now(client=CloudClient(from_settings(), session=session))

    assert run.state == "succeeded"
    assert adapter.seen == {collector.YOUNG_THRESHOLD}
    assert gc.get_threshold() == (700, 10, 10)


@pytest.mark.django_db(transaction=True)
def test_a_submit_sends_with_fewer_collections_and_restores_them(simulator_factory, settings):
    start_fleet(simulator_factory, settings, 300)
    settings.ROLLOUT_CALLS_IN_FLIGHT = 2
    target, servers = movable(120)
    rollout = confirmed(target, servers[:120])
    boundary = ThresholdsAtChanges()

    engine.start(rollout.pk, client_with(boundary), **NO_SLEEP)

    assert boundary.seen == {collector.YOUNG_THRESHOLD}
    assert gc.get_threshold() == (700, 10, 10)
