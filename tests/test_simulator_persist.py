"""The simulator keeps its cloud in a state file across restarts, and seeds its faults per run."""

import json
import signal
import socket
from pathlib import Path
from typing import Any

import pytest
import requests
from django.core.management import CommandError, call_command

from dashboard.management.commands import runsim, serve
from dashboard.simulator import persist, server
from dashboard.simulator.faults import Faults
from dashboard.simulator.state import SimConfig, SimState
from tests.sim_fixtures import RunningSimulator
from tests.sim_fixtures import signed_call as call

TIMEOUT = 10
CONFIG = SimConfig(servers=24, seed=7, job_seconds=60.0)


def start(path: Path, *, reset: bool = False) -> RunningSimulator:
    state = SimState(CONFIG, manual_clock=True)
    persister = persist.Persister(state, path, reset=reset)
    handle = server.start(state, persister=persister)
    return RunningSimulator(handle.url, state, handle)


def v1(sim: RunningSimulator, rest: str) -> str:
    return f"/v1/{sim.config.project_id}{rest}"


def listing(sim: RunningSimulator) -> list[dict[str, Any]]:
    answer = call(sim, "GET", v1(sim, "/app-servers"), [("limit", "100")])
    assert answer.status_code == 200
    return answer.json()["items"]


def job(sim: RunningSimulator, job_id: str) -> dict[str, Any]:
    answer = call(sim, "GET", f"/v2/{sim.config.project_id}/job/{job_id}")
    assert answer.status_code == 200
    return answer.json()


def accept_change(sim: RunningSimulator) -> tuple[str, str, str]:
    """Change one server to another image of its family; (server id, image id, job id)."""
    for item in listing(sim):
        if item.get("maintain_status") is not True:
            continue
        group = sim.state.groups[item["server_group_id"]]
        image = sim.state.images[group.image_id]
        if image.kind != "private" or item["image_id"] == image.id:
            continue
        body = {"server_ids": [item["id"]], "image_id": image.id, "image_type": "private",
                "os_type": image.os_type}  # fmt: skip
        answer = call(sim, "POST", v1(sim, "/app-servers/actions/batch-change-image"), body=body)
        assert answer.status_code == 200, answer.text
        outcome = answer.json()["items"][0]
        if outcome["job_id"]:
            return item["id"], image.id, outcome["job_id"]
    raise AssertionError("no server accepted an image change")


def test_a_restarted_simulator_answers_as_before_and_settles_earlier_jobs(tmp_path: Path) -> None:
    path = tmp_path / "sim.state"
    first = start(path)
    try:
        server_id, image_id, job_id = accept_change(first)
        requests.post(f"{first.url}/_sim/clock", json={"advance": 5}, timeout=TIMEOUT)
        servers_before, job_before = listing(first), job(first, job_id)
        log_before = first.state.requests()
        clock_before = first.state.clock.as_dict()
    finally:
        first.handle.stop()
    assert path.exists()

    second = start(path)
    try:
        assert second.state.requests() == log_before
        assert second.state.clock.as_dict() == clock_before
        assert listing(second) == servers_before
        assert job(second, job_id) == job_before
        assert job_before["status"] in ("WAITING", "RUNNING")
        requests.post(f"{second.url}/_sim/clock", json={"advance": 120}, timeout=TIMEOUT)
        assert job(second, job_id)["status"] == "SUCCESS"
        after = {s["id"]: s for s in listing(second)}
        assert after[server_id]["image_id"] == image_id
    finally:
        second.handle.stop()


def test_the_state_file_is_written_while_running_not_only_at_shutdown(tmp_path: Path) -> None:
    path = tmp_path / "sim.state"
    sim = start(path)
    try:
        _, _, job_id = accept_change(sim)
        sim.handle.persister.flush()
        copy = SimState(CONFIG, manual_clock=True)
        persist.load(copy, path)
        assert job_id in copy.jobs
        assert not list(tmp_path.glob("*.tmp*"))  # the temporary file was renamed into place
    finally:
        sim.handle.stop()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not a state file at all", "not a simulator state file"),
        (persist.MAGIC + b" 999\n" + b"whatever", "version 999"),
        (persist.MAGIC + b" %d\n" % persist.VERSION + b"\x80garbage", "cannot be read"),
    ],
)
def test_a_corrupt_or_foreign_state_file_is_refused_naming_the_file(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "sim.state"
    path.write_bytes(content)
    with pytest.raises(persist.StateFileError) as refused:
        persist.Persister(SimState(CONFIG, manual_clock=True), path)
    assert str(path) in str(refused.value)
    assert reason in str(refused.value)
    assert path.read_bytes() == content  # never silently replaced


def test_reset_starts_a_fresh_fleet_over_a_bad_state_file(tmp_path: Path) -> None:
    path = tmp_path / "sim.state"
    path.write_bytes(b"garbage")
    sim = start(path, reset=True)
    try:
        assert len(listing(sim)) == CONFIG.servers
    finally:
        sim.handle.stop()
    assert path.read_bytes().startswith(persist.MAGIC)


def test_runsim_refuses_a_corrupt_state_file_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "sim.state"
    path.write_bytes(b"garbage")
    with pytest.raises(CommandError, match=r"sim\.state.*--reset"):
        call_command("runsim", "--port", "0", "--state-file", str(path))


def fault_outcomes(sim: RunningSimulator, calls: int = 40) -> list[int | None]:
    outcomes: list[int | None] = []
    for _ in range(calls):
        answer = call(sim, "GET", v1(sim, "/app-server-groups"))
        outcomes.append(answer.status_code)
    return outcomes


def test_the_fault_generator_is_seeded_per_run_through_the_control(tmp_path: Path) -> None:
    state = SimState(CONFIG, faults=Faults(error_rate=0.3, throttle_rate=0.2), manual_clock=True)
    handle = server.start(state)
    sim = RunningSimulator(handle.url, state, handle)
    try:
        runs = []
        for seed in (11, 11, 12):
            answer = requests.post(f"{sim.url}/_sim/seed", json={"seed": seed}, timeout=TIMEOUT)
            assert answer.status_code == 200
            assert answer.json()["fault_seed"] == seed
            runs.append(fault_outcomes(sim))
        assert runs[0] == runs[1]
        assert runs[0] != runs[2]
        assert set(runs[0]) >= {200, 429}
        bad = requests.post(f"{sim.url}/_sim/seed", json={"seed": "x"}, timeout=TIMEOUT)
        assert bad.status_code == 400
        assert json.loads(bad.text)["error"]
    finally:
        handle.stop()


def test_the_fault_seed_comes_from_sim_seed_and_leaves_the_fleet_alone(monkeypatch) -> None:
    monkeypatch.setenv("SIM_SEED", "42")
    parser = runsim.Command().create_parser("manage.py", "runsim")
    options = vars(parser.parse_args([]))
    state = runsim.build_state(options)
    assert state.fault_seed == 42
    assert state.config.seed == 1
    fresh = SimState(SimConfig(seed=1))
    assert sorted(state.servers) == sorted(fresh.servers)


def test_a_restart_takes_the_job_failure_rate_it_is_given_not_the_files(
    monkeypatch, tmp_path: Path
) -> None:
    path = tmp_path / "sim.state"

    def start(rate: str | None):
        if rate is None:
            monkeypatch.delenv("SIM_JOB_FAILURE_RATE", raising=False)
        else:
            monkeypatch.setenv("SIM_JOB_FAILURE_RATE", rate)
        parser = runsim.Command().create_parser("manage.py", "runsim")
        options = vars(parser.parse_args(["--state-file", str(path), "--servers", "8"]))
        state = runsim.build_state(options)
        runsim.open_state_file(state, options).close()
        return state

    first = start("0.3")
    assert first.faults.job_failure_rate == 0.3
    servers = sorted(first.servers)
    again = start(None)  # a plain restart: the file's fleet, no job failures
    assert sorted(again.servers) == servers
    assert again.faults.job_failure_rate == 0.0
    assert start("0.5").faults.job_failure_rate == 0.5


def test_make_run_keeps_the_simulated_cloud_in_a_file_under_var(settings, monkeypatch, tmp_path):
    monkeypatch.delenv("SIM_STATE_FILE", raising=False)
    settings.VAR_DIR = tmp_path / "var"
    args = serve.simulator_args(8971, 120)
    assert args[args.index("--state-file") + 1] == str(tmp_path / "var" / "simulator-8971.state")
    assert args[args.index("--port") + 1] == "8971"
    monkeypatch.setenv("SIM_STATE_FILE", str(tmp_path / "mine.state"))
    args = serve.simulator_args(8971, 120)
    assert args[args.index("--state-file") + 1] == str(tmp_path / "mine.state")


def test_make_clean_removes_the_state_file_with_var() -> None:
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    clean = makefile.split("\nclean:", 1)[1].split("\n\n", 1)[0]
    assert " var " in clean or clean.rstrip().endswith(" var")


def test_a_reset_applies_to_the_first_start_only_not_to_a_restart(monkeypatch) -> None:
    started: list[list[str]] = []

    class Recorder:
        pid = 1

        def __init__(self, args: list[str], **_options: Any) -> None:
            started.append(args)

    monkeypatch.setattr(serve.subprocess, "Popen", Recorder)
    child = serve.Child("simulator", ["runsim"], once=["--reset"])
    child.start()
    child.start()
    assert started == [["runsim", "--reset"], ["runsim"]]


def test_a_file_written_by_other_simulator_code_is_refused(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "sim.state"
    persist.save(SimState(CONFIG, manual_clock=True), path)
    monkeypatch.setattr(persist, "schema", lambda: "another shape of servers and jobs")
    with pytest.raises(persist.StateFileError, match="different version of the simulator"):
        persist.load(SimState(CONFIG, manual_clock=True), path)


def test_a_snapshot_missing_part_of_the_cloud_is_refused(tmp_path: Path, monkeypatch) -> None:
    state = SimState(CONFIG, manual_clock=True)
    snapshot = state.snapshot()
    del snapshot["jobs"]
    monkeypatch.setattr(SimState, "snapshot", lambda self: snapshot)
    path = tmp_path / "sim.state"
    persist.save(state, path)
    with pytest.raises(persist.StateFileError, match="jobs"):
        persist.load(SimState(CONFIG, manual_clock=True), path)


def test_sessions_messages_and_shared_batch_jobs_survive_a_restart(tmp_path: Path) -> None:
    state = SimState(CONFIG, faults=Faults(shared_batch_job=True), manual_clock=True)
    handle = server.start(state, persister=persist.Persister(state, tmp_path / "sim.state"))
    sim = RunningSimulator(handle.url, state, handle)
    try:
        accept_change(sim)
        some_server = next(iter(state.servers))
        session = state.add_session(some_server, user="rosa.rossi")
        state.logoff([session.id], delay_time=30, message_type=1, message="bye")
        before = (state.snapshot()["batches"], state.user_sessions(), state.messages())
    finally:
        handle.stop()
    assert before[0]  # the change was accepted under a shared job
    restarted = SimState(CONFIG, manual_clock=True)
    persist.load(restarted, tmp_path / "sim.state")
    assert restarted.faults.shared_batch_job
    assert (restarted.batches, restarted.user_sessions(), restarted.messages()) == before
    restarted.advance(31)
    ended = next(s for s in restarted.user_sessions() if s.id == session.id)
    assert not ended.live


def test_make_run_stops_at_once_on_a_refused_state_file_and_says_how_to_reset(
    tmp_path: Path, monkeypatch, capfd
) -> None:
    path = tmp_path / "simulator.state"
    path.write_bytes(b"garbage")
    monkeypatch.setenv("SIM_STATE_FILE", str(path))
    monkeypatch.delenv("SIM_RESET", raising=False)
    previous = signal.getsignal(signal.SIGTERM)  # serve installs its own
    try:
        with pytest.raises(CommandError, match="SIM_RESET=1 make run"):
            call_command("serve", "--port", "0", "--sim-port", str(free_port()))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert f"The simulator state file {path} is refused" in capfd.readouterr().err
    assert path.read_bytes() == b"garbage"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
