"""The client's session APIs against the simulator: list, warn and log off, by the clock."""

import re

import pytest

from dashboard.cloud.client import CloudClient
from dashboard.cloud.errors import CloudError
from dashboard.cloud.records import SessionState
from tests.sim_fixtures import RunningSimulator
from tests.sim_fixtures import signed_call as call


def _busy(sim: RunningSimulator, count: int = 2) -> list[str]:
    """Ids of servers that have sessions, most sessions first."""
    servers = sorted(sim.state.servers.values(), key=lambda s: -s.session_count)
    busy = [s.id for s in servers if s.session_count][:count]
    assert len(busy) == count, "the test fleet needs servers with sessions"
    return busy


def _logoff_path(sim: RunningSimulator) -> str:
    return f"/v1/{sim.config.project_id}/session/logoff"


def test_sessions_match_each_servers_session_count(
    simulator: RunningSimulator, cloud_client: CloudClient
) -> None:
    servers = {s.id: s for s in cloud_client.list_servers()}
    sessions = cloud_client.list_sessions()
    assert sessions, "the seeded fleet has sessions"
    for server_id, server in servers.items():
        mine = [s for s in sessions if s.server_id == server_id]
        assert len(mine) == server.session_count
        assert len({s.user_name for s in mine}) == len(mine)  # one session per user
    assert all(re.fullmatch(r"[a-z]+\.[a-z]+", s.user_name) for s in sessions)
    assert {s.state for s in sessions} <= set(SessionState.LIVE)
    assert all(s.start_time is not None and s.end_time is None for s in sessions)


def test_the_seeded_sessions_are_deterministic(simulator_factory) -> None:
    first, second = simulator_factory(), simulator_factory()
    names = [[(u.id, u.user_name) for u in sim.state.user_sessions()] for sim in (first, second)]
    assert names[0] == names[1]


def test_sessions_of_some_servers(simulator: RunningSimulator, cloud_client: CloudClient) -> None:
    busy = _busy(simulator)
    found = cloud_client.list_sessions(busy)
    expected = {u.id for b in busy for u in simulator.state.sessions_of(b)}
    assert {s.id for s in found} == expected
    assert {s.server_id for s in found} == set(busy)
    assert cloud_client.calls_by_api["ShowServer"] == 2


def test_warn_then_log_off_after_the_delay(
    simulator: RunningSimulator, cloud_client: CloudClient
) -> None:
    busy = _busy(simulator)
    sessions = cloud_client.list_sessions(busy)
    cloud_client.logoff_sessions(
        [s.id for s in sessions],
        delay_seconds=300,
        title="Image update",
        message="This server gets a new image in 5 minutes. Please save your work.",
    )
    messages = simulator.state.messages()
    assert {m["session_id"] for m in messages} == {s.id for s in sessions}
    assert {m["user_name"] for m in messages} == {s.user_name for s in sessions}
    assert all(m["title"] == "Image update" and m["message_type"] == 1 for m in messages)
    assert all(m["delay_time"] == 300 for m in messages)

    simulator.advance(299)
    assert len(cloud_client.list_sessions(busy)) == len(sessions)  # still working
    simulator.advance(1)
    assert cloud_client.list_sessions(busy) == []
    assert all(cloud_client.show_server(b).session_count == 0 for b in busy)
    ended = cloud_client.list_sessions(busy, states=[SessionState.SIGNED_OUT])
    assert {s.id for s in ended} == {s.id for s in sessions}
    assert all(s.end_time is not None for s in ended)


def test_a_second_logoff_never_postpones_the_first(
    simulator: RunningSimulator, cloud_client: CloudClient
) -> None:
    (server_id,) = _busy(simulator, 1)
    ids = [s.id for s in cloud_client.list_sessions([server_id])]
    cloud_client.logoff_sessions(ids, delay_seconds=60)
    cloud_client.logoff_sessions(ids, delay_seconds=600)  # a retry or a second warning
    simulator.advance(60)
    assert simulator.state.servers[server_id].session_count == 0
    assert len(simulator.state.messages()) == 2 * len(ids)  # each user saw both messages


def test_a_zero_delay_logs_off_at_once_and_unknown_ids_are_ignored(
    simulator: RunningSimulator, cloud_client: CloudClient
) -> None:
    (server_id,) = _busy(simulator, 1)
    ids = [s.id for s in cloud_client.list_sessions([server_id])]
    cloud_client.logoff_sessions([*ids, "no-such-session"], delay_seconds=0)
    assert cloud_client.show_server(server_id).session_count == 0
    # Logging off sessions that have already ended is harmless.
    cloud_client.logoff_sessions(ids, delay_seconds=0)
    assert len(simulator.state.messages()) == len(ids)


def test_sessions_come_and_go(simulator: RunningSimulator, cloud_client: CloudClient) -> None:
    quiet = next(s for s in simulator.state.servers.values() if s.session_count == 0)
    session = simulator.state.add_session(quiet.id, "alice.wong")
    (listed,) = cloud_client.list_sessions([quiet.id])
    assert (listed.id, listed.user_name, listed.server_id) == (session.id, "alice.wong", quiet.id)
    assert cloud_client.show_server(quiet.id).session_count == 1
    simulator.state.end_session(session.id)
    assert cloud_client.list_sessions([quiet.id]) == []
    assert cloud_client.show_server(quiet.id).session_count == 0


def test_patching_session_count_adds_or_ends_sessions(
    simulator: RunningSimulator, cloud_client: CloudClient
) -> None:
    quiet = next(s for s in simulator.state.servers.values() if s.session_count == 0)
    simulator.state.patch_server(quiet.id, session_count=4)
    assert len(cloud_client.list_sessions([quiet.id])) == 4
    simulator.state.patch_server(quiet.id, session_count=1)
    assert len(cloud_client.list_sessions([quiet.id])) == 1


def test_many_servers_are_listed_from_the_fleet(
    simulator: RunningSimulator, cloud_client: CloudClient
) -> None:
    ids = list(simulator.state.servers)
    found = cloud_client.list_sessions(ids)
    assert len(found) == sum(s.session_count for s in simulator.state.servers.values())
    assert cloud_client.calls_by_api["ShowServer"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"session_ids": [], "delay_time": 0, "message_type": 1},
        {"session_ids": [f"s-{i}" for i in range(1000)], "delay_time": 0, "message_type": 1},
        {"session_ids": ["s-1"], "message_type": 1},
        {"session_ids": ["s-1"], "delay_time": 1_000_000, "message_type": 1},
        {"session_ids": ["s-1"], "delay_time": -1, "message_type": 1},
        {"session_ids": ["s-1"], "delay_time": 10},
        {"session_ids": ["s-1"], "delay_time": 10, "message_type": 5},
        {"session_ids": ["s-1"], "delay_time": 10, "message_type": True},
        {"session_ids": ["s" * 65], "delay_time": 10, "message_type": 1},
        {"session_ids": ["s-1"], "delay_time": 10, "message_type": 1, "message": "m" * 256},
        {"session_ids": ["s-1"], "delay_time": 10, "message_type": 1, "title": "t" * 256},
        {"session_ids": ["s-1"], "delay_time": 10, "message_type": 1, "transaction_id": "x" * 32},
        {"session_ids": ["s-1"], "delay_time": "10", "message_type": 1},
        {"session_ids": [1], "delay_time": 10, "message_type": 1},
        {"session_ids": ["s-1"], "delay_time": 10, "message_type": 1, "message": 5},
        ["s-1"],
    ],
)
def test_the_simulator_refuses_bad_logoff_requests(simulator: RunningSimulator, body) -> None:
    answer = call(simulator, "POST", _logoff_path(simulator), body=body)
    assert answer.status_code == 400
    assert answer.json()["error_code"] == "WKS.00211102"
    assert simulator.state.messages() == []


def test_the_limits_are_inclusive(simulator: RunningSimulator) -> None:
    ids = [f"s-{i}" for i in range(998)] + ["s" * 64]
    body = {"session_ids": ids, "delay_time": 999_999, "message_type": 4, "message": "m" * 255,
            "title": "t" * 255, "transaction_id": "x" * 31}  # fmt: skip
    assert call(simulator, "POST", _logoff_path(simulator), body=body).status_code == 200


@pytest.mark.parametrize(
    "params",
    [
        [],
        [("query_begin_time", "2026-01-01T00:00:00.000Z")],
        [("query_begin_time", "yesterday"), ("query_end_time", "2026-01-01T00:00:00.000Z")],
        [("query_begin_time", "2026-02-01T00:00:00Z"), ("query_end_time", "2026-01-01T00:00:00Z")],
        [("query_begin_time", "2026-01-01T00:00:00Z"), ("query_end_time", "2099-01-01T00:00:00Z"),
         ("session_state", "Active,Sleeping")],
        [("query_begin_time", "2026-01-01T00:00:00Z"), ("query_end_time", "2099-01-01T00:00:00Z"),
         ("limit", "101")],
    ],
)  # fmt: skip
def test_the_simulator_refuses_bad_listings(simulator: RunningSimulator, params) -> None:
    path = f"/v1/{simulator.config.project_id}/session/list-sessions"
    answer = call(simulator, "GET", path, params)
    assert answer.status_code == 400
    assert answer.json()["error_code"] == "WKS.00211102"


def test_a_refused_logoff_reaches_the_client_as_rejected(
    simulator: RunningSimulator, cloud_client: CloudClient
) -> None:
    simulator.state.set_faults(denied_apis=["LogoffUserSession"])  # the key may not log off
    with pytest.raises(CloudError) as raised:
        cloud_client.logoff_sessions(["s-1"], delay_seconds=10)
    assert raised.value.status == 403
    assert cloud_client.calls_by_api["LogoffUserSession"] == 1
