"""The simulator's answers, pinned: a fixed script against a seeded fleet on a fixed clock.

Every cloud answer of the script (status and JSON body) is hashed per step and compared with
the digests below, recorded from the simulator before its internals were reorganised for
speed (indexes by server, settling only what fell due). A change to the simulator's
internals must leave every digest as it is. A deliberate change to what the simulator
answers (a new field, a new rule) changes digests too: the assertion message prints the new
table, to be pasted here in the same commit as the change, after checking which steps moved
and why.
"""

import hashlib
import json
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dashboard.simulator import render
from dashboard.simulator.fleet import build_fleet
from dashboard.simulator.state import SimConfig, SimState
from tests.sim_fixtures import RunningSimulator, SimulatorFactory
from tests.sim_fixtures import signed_call as call

FIXED_NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
SERVERS, SEED = 600, 11  # 6 groups; the first 54 servers walk the scenarios, the rest are drawn
TARGET = "win2019-office-2026.11"
MARKET = "adobe-cc-win2022-2026.11"
WINDOW = {"query_begin_time": "2026-11-30T00:00:00.000Z",
          "query_end_time": "2026-12-02T00:00:00.000Z"}  # fmt: skip

PINNED = {
    "fleet.600.11": "4be8154cf1a997c1",
    "fleet.2000.5": "ab9452472310f493",
    "sessions.2000.5": "ba766f7de97d1ef3",
}


def digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Script:
    """Runs requests against one simulator and keeps a digest of each step's answers."""

    def __init__(self, sim: RunningSimulator) -> None:
        self.sim = sim
        self.steps: dict[str, str] = {}
        self.answers: list[Any] = []

    def get(self, path: str, **params: Any) -> Any:
        return self._send("GET", path, params=params)

    def send(self, method: str, path: str, body: Any) -> Any:
        return self._send(method, path, body=body)

    def _send(self, method: str, path: str, params=None, body=None) -> Any:
        query = [(k, str(v)) for k, v in (params or {}).items()]
        response = call(self.sim, method, path, query, body)
        answer = response.json() if response.content else None
        # Byte for byte what `json.dumps` writes (listings are encoded by hand for speed).
        assert response.content == (b"" if answer is None else json.dumps(answer).encode())
        self.answers.append([method, path, query, response.status_code, answer])
        return answer

    def step(self, name: str) -> None:
        """Close a step: its answers (since the previous step) get one digest."""
        assert name not in self.steps
        self.steps[name] = digest(self.answers)
        self.answers = []


def v1(sim: RunningSimulator, rest: str) -> str:
    return f"/v1/{sim.config.project_id}{rest}"


def pages(script: Script, path: str, **params: Any) -> list[dict]:
    items: list[dict] = []
    while True:
        answer = script.get(path, offset=len(items), limit=100, **params)
        items += answer["items"]
        if not answer["items"] or len(items) >= answer["count"]:
            return items


def change_body(image, server_ids: list[str]) -> dict[str, Any]:
    wire = {"marketplace": "gold"}.get(image.kind, image.kind)
    body = {"server_ids": server_ids, "image_id": image.id, "image_type": wire,
            "os_type": image.os_type}  # fmt: skip
    if image.product_code:
        body["image_product_id"] = image.product_code
    return body


def run_script(sim: RunningSimulator) -> dict[str, str]:
    state = sim.state
    script = Script(sim)
    servers_path, groups_path = v1(sim, "/app-servers"), v1(sim, "/app-server-groups")
    images = {i.name: i for i in state.images.values()}

    groups = pages(script, groups_path)
    script.get(f"{groups_path}/{groups[1]['id']}")
    script.step("groups")

    listed = pages(script, servers_path)
    pages(script, servers_path, server_group_id=groups[2]["id"])
    script.get(servers_path, server_name="finance", limit=100)
    script.get(servers_path, maintain_status="true", limit=100)
    script.get(servers_path, ip_addr="10.0.1", limit=100)
    for server in listed[:3]:
        script.get(f"{servers_path}/{server['id']}")
    script.step("servers")

    ids = [s["id"] for s in listed]
    state.reject(ids[7])
    change = f"{servers_path}/actions/batch-change-image"
    for start in range(0, 300, 50):
        script.send("POST", change, change_body(images[TARGET], ids[start : start + 50]))
    adobe = [s["id"] for s in listed if s["server_group_name"].startswith("design-adobe")]
    script.send("POST", change, change_body(images[MARKET], adobe[:40]))
    script.send("POST", change, change_body(images[TARGET], ["no-such-server", ids[400]]))
    one = {k: v for k, v in change_body(images[TARGET], []).items() if k != "server_ids"}
    script.send("POST", f"{servers_path}/{ids[410]}/actions/change-image", one)
    script.send("POST", f"{servers_path}/{ids[0]}/actions/change-image", one)
    script.step("change")

    state.advance(10)
    after = pages(script, servers_path)
    jobs = [s["job_id"] for s in after if s["job_type"] == "CHANGE_SERVER_IMAGE"]
    for job_id in jobs[:5]:
        script.get(f"/v2/{sim.config.project_id}/job/{job_id}")
        script.get(v1(sim, f"/job/{job_id}"))
    sub_jobs = v1(sim, "/app-server-sub-jobs")
    pages(script, sub_jobs, job_type="CHANGE_SERVER_IMAGE", status="RUNNING")
    script.get(sub_jobs, job_type="CREATE_SERVER", limit=100, offset=200)
    script.get(sub_jobs, job_type="UPGRADE_ACCESS_AGENT", limit=100)
    script.get(f"{sub_jobs}/actions/count", job_type="CHANGE_SERVER_IMAGE,CREATE_SERVER")
    script.step("jobs_running")

    sessions_path = v1(sim, "/session/list-sessions")
    sessions = pages(script, sessions_path, **WINDOW)
    pages(script, sessions_path, app_server_group_id=groups[0]["id"], **WINDOW)
    script.get(sessions_path, session_state="Disconnected", limit=100, **WINDOW)
    script.get(sessions_path, user_name=sessions[3]["login_user"], limit=100, **WINDOW)
    script.step("sessions")

    logoff = v1(sim, "/session/logoff")
    session_ids = [s["id"] for s in sessions]
    script.send("POST", logoff, {"session_ids": session_ids[:5], "delay_time": 0,
                                 "message_type": 1, "message": "now"})  # fmt: skip
    script.send("POST", logoff, {"session_ids": [*session_ids[5:15], "unknown"],
                                 "delay_time": 30, "message_type": 2, "title": "bye"})  # fmt: skip
    script.send("POST", logoff, {"session_ids": session_ids[10:12], "delay_time": 5,
                                 "message_type": 0})  # fmt: skip
    quiet = next(s["id"] for s in listed if s["session_count"] == 0)
    state.add_session(quiet, "pinned.user")
    state.add_session(quiet)
    state.patch_server(ids[20], session_count=7)
    state.patch_server(ids[21], session_count=0)
    pages(script, sessions_path, **WINDOW)
    pages(script, servers_path)
    script.step("logoff")

    state.advance(30)
    pages(script, sessions_path, **WINDOW)
    pages(script, servers_path, server_group_id=groups[0]["id"])
    script.answers.append([asdict(u) for u in state.sessions_of(ids[20])])
    script.step("logoff_due")

    state.advance(60)
    pages(script, servers_path)
    pages(script, sub_jobs, job_type="CHANGE_SERVER_IMAGE", status="FAILED")
    script.get(f"{sub_jobs}/actions/count", job_type="CHANGE_SERVER_IMAGE", status="SUCCESS")
    for start in range(0, 100, 50):
        script.send("POST", change, change_body(images[TARGET], ids[start : start + 50]))
    script.step("jobs_final")

    script.send("PATCH", f"{servers_path}/actions/batch-maint",
                {"items": ids[30:33], "maintain_status": True})  # fmt: skip
    script.get(servers_path, maintain_status="true", limit=100)
    state.delete_server(ids[20])
    state.delete_server(ids[40])
    pages(script, servers_path)
    pages(script, groups_path)
    pages(script, sessions_path, **WINDOW)
    script.answers.append(state.messages())
    script.step("maintenance_and_delete")
    return script.steps


PINNED_SCRIPT = {
    "groups": "f487ed18b3f7b926",
    "servers": "09f8dcafbcdd4ac1",
    "change": "921f9ff819ac5bee",
    "jobs_running": "790abb26394c52a1",
    "sessions": "fafc0d4310b25c41",
    "logoff": "909b34e8c40fe219",
    "logoff_due": "ea4d19628c7b7110",
    "jobs_final": "15a4730551aa5d81",
    "maintenance_and_delete": "3e3e847376d1d18e",
}


def pinned_table(found: dict[str, str]) -> str:
    return "\n".join(f'    "{k}": "{v}",' for k, v in found.items())


def test_script_answers_are_pinned(simulator_factory: SimulatorFactory) -> None:
    sim = simulator_factory(servers=SERVERS, seed=SEED, job_failure_rate=0.25)
    sim.state.set_manual_clock(FIXED_NOW)
    sim.state.reset()  # seed jobs and sessions relative to the fixed clock
    found = run_script(sim)
    assert found == PINNED_SCRIPT, "new digests:\n" + pinned_table(found)


@pytest.mark.parametrize(("servers", "seed"), [(600, 11), (2000, 5)])
def test_fleet_is_pinned(servers: int, seed: int) -> None:
    fleet = build_fleet(servers, seed)
    key = f"fleet.{servers}.{seed}"
    assert digest(asdict(fleet)) == PINNED[key], f'"{key}": "{digest(asdict(fleet))}"'


def test_seeded_sessions_and_jobs_are_pinned() -> None:
    state = SimState(SimConfig(servers=2000, seed=5), manual_clock=True)
    state.set_manual_clock(FIXED_NOW - timedelta(hours=1))
    state.reset()
    state.advance(3600)
    found = digest(
        [
            [asdict(u) for u in state.user_sessions()],
            [asdict(j) for j in state.jobs.values()],
            [asdict(s) for s in state.servers.values()],
        ]
    )
    assert found == PINNED["sessions.2000.5"], f'"sessions.2000.5": "{found}"'


def test_listing_encoder_writes_what_json_dumps_writes_of_the_server_dict() -> None:
    """`render.server_json` (ListServers) against `json.dumps(render.server(...))` (the shape
    ShowServer answers), on every server of a seeded fleet in each state a job passes through,
    with a shared batch job, a missing group and image, and unusual patched values."""
    state = SimState(SimConfig(servers=300, seed=3, job_seconds=60.0), manual_clock=True)
    state.set_manual_clock(FIXED_NOW)
    state.reset()
    ids = list(state.servers)
    target = next(i for i in state.images.values() if i.name == TARGET)
    state.set_faults(job_failure_rate=0.5)
    state.change_images(target.id, ids[:100])
    state.set_faults(shared_batch_job=True)
    with state.lock:
        render.batches.share(state, state.change_images(target.id, ids[100:200]))
    state.patch_server(ids[1], name='Zürich «Ω» "quoted"\n', status=None, session_count=3)
    state.patch_server(ids[2], freeze=[{"effect": 2, "scene": "POLICE", "extra": [1.5, None]}])
    state.patch_server(ids[3], maintain_status=1, vm_status=True, image_id="no-such-image")
    state.servers[ids[4]].group_id = "no-such-group"
    state.servers[ids[5]].scaling_auto_create = None
    state.set_maintenance(ids[6:9], True)
    seen, checked, at = set(), 0, 0.0
    for moment in (0, 3, 10, 59.999999, 60, 3600 * 5):  # seconds after the changes
        state.advance(moment - at)
        at, now = moment, state.now()
        for server in state.servers.values():
            expected = json.dumps(render.server(state, server, now))
            found = render.server_json(state, server, now)
            # A field added to or changed in `render.server` must be written the same way in
            # `render.server_json` (ListServers).
            assert found == expected, f"server {server.id} at +{moment} s"
            checked += 1
        seen |= {job.status(now) for job in state.jobs.values()}
    assert checked == 6 * 300
    assert seen == {"WAITING", "RUNNING", "SUCCESS", "FAILED"}
    listed = render.listing(
        1234, [render.server_json(state, state.servers[i], now) for i in ids[:2]]
    )
    as_dicts = {
        "count": 1234,
        "items": [render.server(state, state.servers[i], now) for i in ids[:2]],
    }
    assert listed.text == json.dumps(as_dicts)
    assert render.listing(0, []).text == json.dumps({"count": 0, "items": []})


def test_a_servers_unchanging_fields_are_encoded_afresh_for_another_server_object():
    """server_json keeps each server's fixed fields encoded; a server of the same id that is
    another object (a restored state file's, say) is encoded from its own fields."""
    state = SimState(SimConfig(servers=5, seed=SEED), manual_clock=True)
    server = next(iter(state.servers.values()))
    before = json.loads(render.server_json(state, server, FIXED_NOW))
    other = replace(server, machine_name="APS-RESTORED", ip="10.9.9.9")
    state.servers[server.id] = other
    after = json.loads(render.server_json(state, other, FIXED_NOW))
    assert before["machine_name"] != "APS-RESTORED"
    assert after["machine_name"] == "APS-RESTORED"
    assert after["host_address"][0]["addr"] == "10.9.9.9"
    assert after == render.server(state, other, FIXED_NOW)
