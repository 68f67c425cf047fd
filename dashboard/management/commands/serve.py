"""Start the whole dashboard locally: simulator, task worker and web server.

Ctrl-C (or SIGTERM) stops all three. A child that exits after start-up (a crash, an OOM kill,
a lost database) is started again after a backoff that doubles up to `RESTART_CAP` seconds and
starts over once the child has stayed up a minute; each restart is logged. Used by `make run`.
The simulated cloud is kept in a state file under var/ (SIM_STATE_FILE), so after a restart
of the simulator or of `make run` it still agrees with the dashboard's history.
With several projects configured (CLOUD_PROJECTS_FILE) the simulator serves each of them, with
the keys the dashboard will sign with; they reach it through its environment (SIM_PROJECTS),
never its command line.
"""

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from dashboard.cloud.projects import ProjectConfig
from dashboard.env import env_bool, env_secret, env_str

log = logging.getLogger("dashboard.serve")

RESTART_FIRST = 1.0  # seconds before the first restart
RESTART_CAP = 30.0
STEADY_AFTER = 60.0  # a child up this long is healthy again: its backoff starts over
POLL = 0.5


def _wait_for(url: str, seconds: float, alive: Callable[[], bool] = lambda: True) -> bool:
    """Whether `url` answers within `seconds` (False at once when `alive()` turns False)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and alive():
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 (loopback only)
                return True
        except urllib.error.HTTPError:
            return True  # it answered: up, even if not yet healthy
        except OSError:
            time.sleep(0.2)
    return False


def simulator_args(sim_port: int, servers: int) -> list[str]:
    """runsim's arguments, keeping the cloud in SIM_STATE_FILE or var/simulator-<port>.state."""
    state_file = env_str("SIM_STATE_FILE") or str(settings.VAR_DIR / f"simulator-{sim_port}.state")
    return ["runsim", "--host", "127.0.0.1", "--port", str(sim_port), "--servers", str(servers),
            "--state-file", state_file]  # fmt: skip


def derived_project_id(region: str) -> str:
    """The simulator's id of a project configured without one: stable and taken from its
    region, so the dashboard's IAM lookup by region finds it."""
    return hashlib.md5(region.encode()).hexdigest()  # noqa: S324 (an id, not a secret)


def simulator_projects(projects: tuple[ProjectConfig, ...]) -> str | None:
    """SIM_PROJECTS for the simulator: every configured project with the keys read from the
    variables it names (NAME or NAME_FILE); None for the one project of the old variables,
    which the simulator reads itself as before."""
    if not projects or all(p.legacy for p in projects):
        return None
    items: list[dict[str, str]] = []
    used: set[str] = set()
    for project in projects:
        project_id = project.project_id or derived_project_id(project.region)
        if project_id in used:  # a second project of one region without an id
            project_id = derived_project_id(f"{project.region}/{project.name}")
        used.add(project_id)
        item = {"project_id": project_id, "region": project.region}
        for field_name, variable in (("ak", project.ak_env), ("sk", project.sk_env),
                                     ("security_token", project.security_token_env)):  # fmt: skip
            value = env_secret(variable) if variable else ""
            if value:  # unset: the simulator's demo key
                item[field_name] = value
        items.append(item)
    return json.dumps(items)


def simulator_env() -> dict[str, str] | None:
    """The simulator child's environment: this one plus SIM_PROJECTS when several projects
    (or a projects file) are configured; None (inherit this one) otherwise."""
    found = simulator_projects(tuple(getattr(settings, "CLOUD_PROJECTS", ())))
    return None if found is None else {**os.environ, "SIM_PROJECTS": found}


@dataclass
class Child:
    """One supervised process and its restart schedule."""

    name: str
    args: list[str]
    process: subprocess.Popen | None = None
    started: float = 0.0
    backoff: float = RESTART_FIRST
    restart_at: float | None = None
    restarts: int = field(default=0)
    once: list[str] = field(default_factory=list)  # extra arguments for the first start only
    env: dict[str, str] | None = None  # None: this process's environment

    def start(self) -> None:
        self.process = subprocess.Popen(self.args + self.once, env=self.env)
        self.once = []  # a restart after a crash must not, say, reset the simulated cloud again
        self.started = time.monotonic()
        self.restart_at = None
        log.info("serve: %s started (pid %d)", self.name, self.process.pid)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check(self, now: float) -> None:
        """Restart the child if it exited and its backoff has passed."""
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.restarts += 1
                self.start()
            return
        if self.process is None or self.process.poll() is None:
            return
        if now - self.started >= STEADY_AFTER:
            self.backoff = RESTART_FIRST
        log.warning(
            "serve: %s (pid %d) exited with code %s; restarting in %.0fs",
            self.name,
            self.process.pid,
            self.process.returncode,
            self.backoff,
        )
        self.restart_at = now + self.backoff
        self.backoff = min(RESTART_CAP, self.backoff * 2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def wait(self) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


class Command(BaseCommand):
    help = "Run the simulator, the worker and the web server together (local demo)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--sim-port", type=int, default=int(os.environ.get("SIM_PORT", "8900")))
        parser.add_argument(
            "--servers", type=int, default=int(os.environ.get("SIM_SERVERS", "120"))
        )
        parser.add_argument("--no-simulator", action="store_true", help="Use a real cloud.")
        parser.add_argument(
            "--reset-simulator",
            action="store_true",
            default=env_bool("SIM_RESET"),
            help="Start the simulated cloud afresh, replacing its state file (SIM_RESET=1).",
        )

    def handle(
        self,
        *,
        port: int,
        sim_port: int,
        servers: int,
        no_simulator: bool,
        reset_simulator: bool,
        **options,
    ):
        manage = [sys.executable, "manage.py"]
        children: list[Child] = []

        def interrupt(*_args) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, interrupt)
        try:
            if not no_simulator:
                sim = [*manage, *simulator_args(sim_port, servers)]
                once = ["--reset"] if reset_simulator else []
                children.append(Child("simulator", sim, once=once, env=simulator_env()))
                children[-1].start()
                health = f"http://127.0.0.1:{sim_port}/_sim/health"
                if not _wait_for(health, 30, children[-1].running):
                    raise CommandError(
                        "The simulator did not start (its message is above). If it refused its "
                        "state file, SIM_RESET=1 make run starts it from a fresh fleet."
                    )
            children.append(Child("worker", [*manage, "worker"]))
            children[-1].start()
            web = [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"]
            children.append(Child("web server", web))
            children[-1].start()
            url = f"http://127.0.0.1:{port}/"
            if not _wait_for(f"{url}healthz", 60):
                raise CommandError("The web server did not start.")
            self.stdout.write(self.style.SUCCESS(f"\nDashboard ready: {url}  (Ctrl-C stops)\n"))
            while True:
                now = time.monotonic()
                for child in children:
                    child.check(now)
                time.sleep(POLL)
        except KeyboardInterrupt:
            self.stdout.write("\nstopping…")
        finally:
            for child in children:
                child.stop()
            for child in children:
                child.wait()
