"""CloudClient's session APIs over real HTTP against a scripted loopback server.

ListSessions (every page, a start-time window, live states, sessions resolved to servers by
machine name) and LogoffUserSession (≤999 ids per call, validated, retried as idempotent).
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dashboard.cloud import client as client_module
from dashboard.cloud import wire
from dashboard.cloud.client import CloudClient
from dashboard.cloud.errors import CloudError, Outcome
from dashboard.cloud.records import SessionState
from dashboard.cloud.signing import verify
from tests.test_cloud_client import (
    AK,
    PROJECT,
    RESET,
    SERVERS,
    SK,
    FakeCloud,
    FakeTime,
    Reply,
    Seen,
    make_client,
    server_json,
)

SESSIONS = f"/v1/{PROJECT}/session/list-sessions"
LOGOFF = f"/v1/{PROJECT}/session/logoff"
NOW = datetime(2026, 11, 2, 10, 28, 38, 755000, tzinfo=UTC)


@pytest.fixture
def fake() -> Iterator[FakeCloud]:
    cloud = FakeCloud()
    yield cloud
    cloud.close()


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def cloud(fake: FakeCloud, clock: FakeTime, monkeypatch: pytest.MonkeyPatch) -> CloudClient:
    monkeypatch.setattr(client_module, "_utcnow", lambda: NOW)
    return make_client(fake.url, clock)


def session_json(n: int, machine: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"sess-{n:04d}",
        "login_user": f"user{n}.wong",
        "session_state": "Active",
        "start_time": "2026-11-02T08:00:00.000Z",
        "end_time": None,
        "machine_name": machine,
        "vm_ip": "10.0.0.1",
        "app_server_group_id": "sg-1",
        "app_name": "Excel",
        "session_type": "2",
        **extra,
    }


def paged(key: str, items: list[dict[str, Any]]):
    def route(seen: Seen) -> Reply:
        offset, limit = int(seen.param("offset") or 0), int(seen.param("limit") or 10)
        return Reply(200, {"count": len(items), key: items[offset : offset + limit]})

    return route


# --- ListSessions ------------------------------------------------------------------------


def test_every_session_is_listed_in_pages_with_its_server(
    fake: FakeCloud, cloud: CloudClient
) -> None:
    fake.route("GET", SERVERS, paged("items", [server_json(i) for i in range(3)]))
    sessions = [session_json(n, f"APS-M{n % 4:04d}") for n in range(250)]
    sessions[1]["machine_name"] = "aps-m0001"  # the cloud's case is not ours to trust
    fake.route("GET", SESSIONS, paged("items", sessions))
    found = cloud.list_sessions()
    assert [s.id for s in found] == [f"sess-{n:04d}" for n in range(250)]
    assert found[0].server_id == "srv-0000"
    assert found[1].server_id == "srv-0001"
    assert found[3].server_id == ""  # APS-M0003 is on no known server
    seen = fake.seen(SESSIONS)
    assert [(r.param("offset"), r.param("limit")) for r in seen] == [
        ("0", "100"),
        ("100", "100"),
        ("200", "100"),
    ]
    assert cloud.calls_by_api["ListSessions"] == 3


def test_the_window_and_live_states_are_always_sent(fake: FakeCloud, cloud: CloudClient) -> None:
    fake.route("GET", SERVERS, paged("items", []))
    fake.on("GET", SESSIONS, Reply(200, {"count": 0, "items": []}))
    assert cloud.list_sessions() == []
    seen = fake.seen(SESSIONS)[0]
    assert seen.param("query_begin_time") == "2026-10-03T10:28:38.755Z"  # 30 days back
    assert seen.param("query_end_time") == "2026-11-03T10:28:38.755Z"  # a day of skew ahead
    assert seen.param("session_state") == "Active,Disconnected,AppcInit"
    ak = verify(seen.method, seen.path, seen.query, seen.headers, seen.body,
                lambda key: SK if key == AK else None, datetime.now(UTC))  # fmt: skip
    assert ak == AK


def test_other_states_can_be_asked_for(fake: FakeCloud, cloud: CloudClient) -> None:
    fake.route("GET", SERVERS, paged("items", []))
    fake.on("GET", SESSIONS, Reply(200, {"count": 0, "items": []}))
    cloud.list_sessions(states=[SessionState.SIGNED_OUT])
    cloud.list_sessions(states=())
    first, second = fake.seen(SESSIONS)
    assert first.param("session_state") == "SignedOut"
    assert second.param("session_state") is None


def test_a_few_servers_are_asked_for_by_machine_name(fake: FakeCloud, cloud: CloudClient) -> None:
    for i in (1, 2):
        fake.on("GET", f"{SERVERS}/srv-000{i}", Reply(200, server_json(i)))

    def by_machine(seen: Seen) -> Reply:
        machine = seen.param("machine_name")
        # A fuzzy match on the cloud's side must not leak another server's sessions.
        items = [session_json(1, machine), session_json(2, f"{machine}-OLD")]
        return Reply(200, {"count": 2, "items": items})

    fake.route("GET", SESSIONS, by_machine)
    found = cloud.list_sessions(["srv-0001", "srv-0002", "srv-0001"])
    assert [(s.server_id, s.machine_name) for s in found] == [
        ("srv-0001", "APS-M0001"),
        ("srv-0002", "APS-M0002"),
    ]
    assert [r.param("machine_name") for r in fake.seen(SESSIONS)] == ["APS-M0001", "APS-M0002"]
    assert fake.seen(SERVERS) == []  # no fleet listing for two servers


def test_a_server_that_is_gone_has_no_sessions(fake: FakeCloud, cloud: CloudClient) -> None:
    assert cloud.list_sessions(["srv-gone"]) == []  # the fake answers 404
    assert fake.seen(SESSIONS) == []
    assert cloud.list_sessions([]) == []


def test_a_server_without_machine_name_is_matched_by_address(
    fake: FakeCloud, cloud: CloudClient
) -> None:
    nic = [{"addr": "10.0.0.9"}]
    fake.on("GET", f"{SERVERS}/srv-0001", Reply(200, server_json(1, machine_name="",
                                                                  host_address=nic)))  # fmt: skip
    fake.on("GET", SESSIONS, Reply(200, {"count": 1, "items": [
        session_json(1, "", vm_ip="10.0.0.9")]}))  # fmt: skip
    found = cloud.list_sessions(["srv-0001"])
    assert [s.server_id for s in found] == ["srv-0001"]
    assert fake.seen(SESSIONS)[0].param("vm_ip") == "10.0.0.9"


def test_many_servers_use_one_fleet_listing(fake: FakeCloud, cloud: CloudClient) -> None:
    fake.route("GET", SERVERS, paged("items", [server_json(i) for i in range(30)]))
    sessions = [session_json(n, f"APS-M{n:04d}") for n in range(30)]
    fake.route("GET", SESSIONS, paged("items", sessions))
    wanted = [f"srv-{i:04d}" for i in range(0, 30, 2)]
    found = cloud.list_sessions(wanted)
    assert sorted(s.server_id for s in found) == sorted(wanted)
    assert cloud.calls_by_api["ShowServer"] == 0
    assert cloud.calls_by_api["ListSessions"] == 1


def test_session_parsing_is_tolerant() -> None:
    session = wire.session(
        {"id": "s-1", "login_user": "alice.wong", "session_state": "Disconnected",
         "start_time": "2026-11-02T08:00:00Z", "end_time": "null", "session_type": 2}
    )  # fmt: skip
    assert session.user_name == "alice.wong"
    assert session.state == SessionState.DISCONNECTED
    assert session.start_time == datetime(2026, 11, 2, 8, tzinfo=UTC)
    assert session.end_time is None
    assert session.session_type == "2"
    assert wire.session({}).id == ""


def test_a_failed_listing_page_is_retried(
    fake: FakeCloud, cloud: CloudClient, clock: FakeTime
) -> None:
    fake.route("GET", SERVERS, paged("items", []))
    fake.on("GET", SESSIONS, Reply(503), Reply(200, {"count": 0, "items": []}))
    assert cloud.list_sessions() == []
    assert len(fake.seen(SESSIONS)) == 2
    assert len(clock.sleeps) == 1


# --- LogoffUserSession -------------------------------------------------------------------


def test_logoff_sends_999_sessions_at_a_time(fake: FakeCloud, cloud: CloudClient) -> None:
    fake.on("POST", LOGOFF, Reply(200))
    ids = [f"s-{i}" for i in range(2100)]
    cloud.logoff_sessions(ids + ids[:5], delay_seconds=300, message="Maintenance at 22:00",
                          title="Image update")  # fmt: skip
    bodies = [r.json() for r in fake.seen(LOGOFF)]
    assert [len(b["session_ids"]) for b in bodies] == [999, 999, 102]
    assert [i for b in bodies for i in b["session_ids"]] == ids
    assert bodies[0] == {
        "session_ids": ids[:999],
        "delay_time": 300,
        "message_type": 1,
        "message": "Maintenance at 22:00",
        "title": "Image update",
    }


def test_logoff_leaves_out_empty_optional_fields(fake: FakeCloud, cloud: CloudClient) -> None:
    fake.on("POST", LOGOFF, Reply(200))
    cloud.logoff_sessions(["s-1"], delay_seconds=0, message_type=2, transaction_id="tx-1")
    assert fake.seen(LOGOFF)[0].json() == {
        "session_ids": ["s-1"],
        "delay_time": 0,
        "message_type": 2,
        "transaction_id": "tx-1",
    }


def test_nothing_to_log_off_sends_nothing(fake: FakeCloud, cloud: CloudClient) -> None:
    cloud.logoff_sessions([], delay_seconds=60)
    assert fake.requests == []


@pytest.mark.parametrize(
    "changes",
    [
        {"delay_seconds": -1},
        {"delay_seconds": 1_000_000},
        {"delay_seconds": True},
        {"delay_seconds": 60, "message_type": 5},
        {"delay_seconds": 60, "message_type": -1},
        {"delay_seconds": 60, "message_type": False},
        {"delay_seconds": 60, "message": "m" * 256},
        {"delay_seconds": 60, "title": "t" * 256},
        {"delay_seconds": 60, "transaction_id": "x" * 32},
        {"delay_seconds": 60, "session_ids": ["s" * 65]},
        {"delay_seconds": 60, "session_ids": [""]},
    ],
)
def test_logoff_refuses_out_of_range_values_before_sending(
    fake: FakeCloud, cloud: CloudClient, changes: dict[str, Any]
) -> None:
    ids = changes.pop("session_ids", ["s-1"])
    with pytest.raises(ValueError):
        cloud.logoff_sessions(ids, **changes)
    assert fake.requests == []


def test_logoff_limits_are_inclusive_and_the_simulator_agrees(cloud_client: CloudClient) -> None:
    cloud_client.logoff_sessions(
        ["s" * 64], delay_seconds=0, message_type=4, message="m" * 255, title="t" * 255,
        transaction_id="x" * 31,
    )  # fmt: skip


def test_list_sessions_refuses_an_unknown_state_before_sending(
    fake: FakeCloud, cloud: CloudClient
) -> None:
    with pytest.raises(ValueError, match="Gone"):
        cloud.list_sessions(states=("Active", "Gone"))
    assert fake.requests == []


def test_logoff_is_retried_after_ambiguous_failures(
    fake: FakeCloud, cloud: CloudClient, clock: FakeTime
) -> None:
    fake.on("POST", LOGOFF, Reply(503), RESET, Reply(200))
    cloud.logoff_sessions(["s-1"], delay_seconds=60, message="bye")
    assert len(fake.seen(LOGOFF)) == 3
    assert len(clock.sleeps) == 2


def test_a_refused_logoff_is_not_retried(fake: FakeCloud, cloud: CloudClient) -> None:
    body = {"error_code": "WKS.00211102", "error_msg": "Invalid parameter session_ids."}
    fake.on("POST", LOGOFF, Reply(400, body))
    with pytest.raises(CloudError) as raised:
        cloud.logoff_sessions(["s-1"], delay_seconds=60)
    assert raised.value.status == 400
    assert raised.value.outcome == Outcome.REJECTED
    assert raised.value.error_code == "WKS.00211102"
    assert len(fake.seen(LOGOFF)) == 1


def test_the_window_follows_the_clock(fake: FakeCloud, clock: FakeTime, monkeypatch) -> None:
    later = NOW + timedelta(days=2)
    monkeypatch.setattr(client_module, "_utcnow", lambda: later)
    cloud = make_client(fake.url, clock)
    fake.route("GET", SERVERS, paged("items", []))
    fake.on("GET", SESSIONS, Reply(200, {"count": 0, "items": []}))
    cloud.list_sessions()
    assert fake.seen(SESSIONS)[0].param("query_end_time") == "2026-11-05T10:28:38.755Z"
