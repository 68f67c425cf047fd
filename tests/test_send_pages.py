"""The submit's re-read of a large group: its pages after the first are read together, the
same calls and the same servers as reading them one after the other.

Against the simulator over real HTTP; the listing calls are counted and held at the HTTP
boundary so that calls made together are seen together.
"""

import requests

from dashboard.cloud import inflight
from dashboard.cloud.client import CloudClient
from dashboard.cloud.config import from_settings
from dashboard.rollouts.reread import GroupReads
from tests.http_boundary import Overlapping
from tests.sim_fixtures import cloud_settings

LISTING = "/app-servers"


def listings() -> Overlapping:
    """Counts the ListServers calls and how many are out at once (each held a moment)."""
    return Overlapping(
        pause=0.05,
        watch=lambda r: r.method == "GET" and r.path_url.split("?")[0].endswith(LISTING),
    )


def client_counted(adapter: Overlapping) -> CloudClient:
    session = requests.Session()
    session.mount("http://", adapter)
    return CloudClient(from_settings(), session=session, sleep=lambda s: None)


def one_large_group(sim, size: int) -> str:
    """Put `size` of the simulator's servers in one group (three pages of 100)."""
    state = sim.state
    with state.lock:
        group_id = next(iter(state.groups))
        for server in list(state.servers.values())[:size]:
            state._by_group.get(server.group_id, {}).pop(server.id, None)
            server.group_id = group_id
            state._by_group.setdefault(group_id, {})[server.id] = server
    return group_id


def test_a_large_groups_pages_after_the_first_are_read_together(
    simulator_factory, settings
) -> None:
    sim = simulator_factory(servers=400)
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, **cloud_settings(sim)}
    group_id = one_large_group(sim, 250)
    one_by_one, together = listings(), listings()

    serial = GroupReads(client_counted(one_by_one)).group(group_id)
    with inflight.Calls(4) as pages:
        paged = GroupReads(client_counted(together), pages=pages).group(group_id)

    assert len(serial) >= 250 and paged == serial
    assert one_by_one.calls == together.calls == 3
    assert one_by_one.most == 1 and together.most == 2  # pages two and three together
