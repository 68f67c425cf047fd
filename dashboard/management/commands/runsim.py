"""Run the embedded cloud simulator in the foreground until Ctrl-C or SIGTERM."""

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.env import env_float, env_str
from dashboard.simulator import persist, server
from dashboard.simulator.faults import Faults
from dashboard.simulator.state import SimConfig, SimState

LOOPBACK = ("127.0.0.1", "::1", "localhost")
FAULT_OPTIONS = ("latency_ms", "error_rate", "throttle_rate", "job_failure_rate",
                 "drop_before_rate", "drop_after_rate", "stall_seconds")  # fmt: skip


def build_state(options: dict[str, Any]) -> SimState:
    """The simulator state for the command's options (credentials, and the projects of
    SIM_PROJECTS when set, from the environment)."""
    try:
        config = SimConfig.from_env(
            servers=options["servers"],
            seed=options["seed"],
            job_seconds=options["job_seconds"],
            fault_seed=options.get("fault_seed"),
        )
    except ValueError as error:
        raise CommandError(str(error)) from None
    faults = Faults()
    try:
        faults.update({name: options[name] for name in FAULT_OPTIONS})
    except ValueError as error:
        raise CommandError(str(error)) from None
    return SimState(config, faults=faults, manual_clock=options["manual_clock"])


def fault_seed_default() -> int | None:
    """SIM_SEED seeds the fault draws of a run (unset: the fleet's --seed)."""
    text = env_str("SIM_SEED")
    try:
        return int(text) if text else None
    except ValueError:
        raise CommandError(f"SIM_SEED must be an integer, not {text!r}.") from None


def open_state_file(state: SimState, options: dict[str, Any]) -> persist.Persister | None:
    """Load (or with --reset, start afresh) the state file; None when there is none.

    The fault knobs this start was given win over those the file kept: after
    `SIM_JOB_FAILURE_RATE=0.3 make run`, a run without it fails no job, and the other way
    round. The file keeps the fleet, jobs, sessions and request log."""
    path = options["state_file"]
    if not path:
        return None
    try:
        persister = persist.Persister(state, path, reset=options["reset"])
    except persist.StateFileError as error:
        raise CommandError(str(error)) from None
    if persister.loaded:
        state.set_faults(**{name: options[name] for name in FAULT_OPTIONS})
    return persister


def serve_until_stopped(running: server.RunningServer, stop: threading.Event) -> None:
    """Serve in a thread until `stop` is set, then shut down cleanly."""
    thread = threading.Thread(target=running.httpd.serve_forever, kwargs={"poll_interval": 0.2})
    thread.start()
    running.thread = thread
    try:
        stop.wait()
    finally:
        running.stop()


class Command(BaseCommand):
    help = "Serve the simulated Huawei Cloud (WorkspaceApp, IMS, Workspace, IAM) on loopback."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8900)
        parser.add_argument("--servers", type=int, default=120)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--job-seconds", type=float, default=60.0)
        parser.add_argument("--latency-ms", type=int, default=0)
        parser.add_argument("--error-rate", type=float, default=0.0)
        parser.add_argument("--throttle-rate", type=float, default=0.0)
        # SIM_JOB_FAILURE_RATE (0 to 1) lets `make run` show retries and the error budget.
        parser.add_argument(
            "--job-failure-rate", type=float, default=env_float("SIM_JOB_FAILURE_RATE", 0.0)
        )
        parser.add_argument("--drop-before-rate", type=float, default=0.0)
        parser.add_argument("--drop-after-rate", type=float, default=0.0)
        parser.add_argument("--stall-seconds", type=float, default=0.0)
        parser.add_argument(
            "--fault-seed",
            type=int,
            default=fault_seed_default(),
            help="Seed of the fault and job-failure draws (default SIM_SEED, else --seed).",
        )
        parser.add_argument(
            "--state-file",
            default=env_str("SIM_STATE_FILE"),
            help="Keep the simulated cloud in this file across restarts (default SIM_STATE_FILE).",
        )
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Start from a fresh fleet even if the state file exists (it is overwritten).",
        )
        parser.add_argument(
            "--manual-clock",
            action="store_true",
            help="Freeze time; move it with POST /_sim/clock {'advance': seconds}.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["host"] not in LOOPBACK:
            raise CommandError("The simulator listens on loopback only (127.0.0.1 or ::1).")
        if options["servers"] < 1:
            raise CommandError("--servers must be at least 1.")
        state = build_state(options)
        persister = open_state_file(state, options)
        try:
            running = server.make_server(state, options["host"], options["port"], persister)
        except OSError as error:
            if persister is not None:
                persister.close()
            raise CommandError(
                f"Cannot listen on {options['host']}:{options['port']}: {error}"
            ) from None
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        projects = state.all_projects()
        fleet = (
            f"{len(state.servers)} servers in {len(state.groups)} groups, {len(state.images)} "
            f"images, seed {state.config.seed}"
            if len(projects) == 1
            else f"{len(projects)} projects"
        )
        self.stdout.write(
            f"Simulator on {running.url}: {fleet}, jobs take {state.config.job_seconds:g}s, "
            f"fault seed {state.fault_seed}. Ctrl-C stops."
        )
        if len(projects) > 1:
            for project in projects:
                self.stdout.write(
                    f"  project {project.config.project_id} ({project.config.region}): "
                    f"{len(project.servers)} servers in {len(project.groups)} groups, "
                    f"{len(project.images)} images, seed {project.config.seed}"
                )
        if persister is not None:
            kept = "loaded from" if persister.loaded else "kept in"
            self.stdout.write(f"The simulated cloud is {kept} {persister.path}.")
        serve_until_stopped(running, stop)
        self.stdout.write("Simulator stopped.")
