"""Real `manage.py worker` (and `serve`) processes for tests, on the test database."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """The test database as a DATABASE_URL, so a child process works on the same rows."""
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        user = db["USER"] or "postgres"
        password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
        where = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
        return f"postgres://{user}{password}@{where}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


def child_env(sim: Any = None, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "SYNC_INTERVAL_SECONDS": "0",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    if sim is not None:
        config = sim.config
        for key in ("WORKSPACEAPP", "WORKSPACE", "IMS", "IAM"):
            env[f"HUAWEICLOUD_{key}_ENDPOINT"] = sim.url
        env |= {
            "HUAWEICLOUD_SDK_AK": config.ak,
            "HUAWEICLOUD_SDK_SK": config.sk,
            "HUAWEICLOUD_SDK_PROJECT_ID": config.project_id,
        }
    return env | extra


@dataclass
class Child:
    process: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def start(args: list[str], env: dict[str, str], log_path: Path) -> Child:
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a signal to the test runner does not reach it
    )
    return Child(process, log_path)


def start_worker(
    tmp_path: Path, sim: Any = None, *, name: str = "worker", heartbeat: float = 0.5, **env: str
) -> Child:
    args = ["worker", "--interval", "0.1", "--heartbeat", str(heartbeat)]
    return start(args, child_env(sim, **env), tmp_path / f"{name}.log")


def wait_for(condition, timeout: float, what: str, every: float = 0.1):
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
