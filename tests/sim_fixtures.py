"""Pytest fixtures for a running simulator on a free loopback port.

- `simulator_factory(servers=24, seed=7, job_seconds=60, manual_clock=True, projects=(),
  **faults)` starts one (stopped at teardown) and returns a `RunningSimulator`; `projects`
  (SimProject, …) serves several projects, `state` being the first.
- `simulator`: a fresh default one per test (manual clock: jobs move only with `advance`).
- `sim_settings`: settings.HUAWEICLOUD points at `simulator` (endpoints, AK/SK, project).
- `cloud_client`: the dashboard's CloudClient configured from those settings.
- `synced`: `sim_settings` with the simulator's fleet synced into the inventory.
- `signed_call(sim, method, path, params, body)`: a raw request signed as the SDK signs it
  (with the default project's key unless `ak`/`sk` say otherwise).
"""

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
import requests

from dashboard.cloud.signing import canonical_query, sign_request
from dashboard.simulator import server
from dashboard.simulator.faults import Faults
from dashboard.simulator.state import SimConfig, SimProject, SimState

TEST_SERVERS = 24
TEST_SEED = 7
TEST_JOB_SECONDS = 60.0
TIMEOUT = 10


@dataclass
class RunningSimulator:
    url: str
    state: SimState
    handle: server.RunningServer

    @property
    def config(self) -> SimConfig:
        return self.state.config

    def requests(self, method: str | None = None, path_suffix: str = "") -> list[dict[str, Any]]:
        """Recorded cloud requests, optionally only those with `method` and a path ending."""
        return [
            r
            for r in self.state.requests()
            if (method is None or r["method"] == method) and r["path"].endswith(path_suffix)
        ]

    def advance(self, seconds: float) -> datetime:
        return self.state.advance(seconds)


def signed_call(
    sim: RunningSimulator,
    method: str,
    path: str,
    params: list[tuple[str, str]] | None = None,
    body: Any = None,
    *,
    sign: bool = True,
    ak: str | None = None,
    sk: str | None = None,
    sdk_date: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> requests.Response:
    """A request to the simulator signed as the SDK signs it (sorted query, JSON body)."""
    query = canonical_query(params or [])
    url = f"{sim.url}{path}" + (f"?{query}" if query else "")
    data = b"" if body is None else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", **(headers or {})}
    if sign:
        config = sim.config
        sent = sign_request(
            method, url, sent, data, ak or config.ak, sk or config.sk, sdk_date=sdk_date
        )
    return requests.request(method, url, data=data or None, headers=sent, timeout=timeout)


SimulatorFactory = Callable[..., RunningSimulator]


@pytest.fixture
def simulator_factory() -> Iterator[SimulatorFactory]:
    started: list[RunningSimulator] = []

    def start(
        *,
        servers: int = TEST_SERVERS,
        seed: int = TEST_SEED,
        job_seconds: float = TEST_JOB_SECONDS,
        manual_clock: bool = True,
        projects: tuple[SimProject, ...] = (),
        **faults: Any,
    ) -> RunningSimulator:
        config = SimConfig(servers=servers, seed=seed, job_seconds=job_seconds, projects=projects)
        knobs = Faults()
        knobs.update(faults)
        state = SimState(config, faults=knobs, manual_clock=manual_clock)
        handle = server.start(state)
        sim = RunningSimulator(handle.url, state, handle)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.handle.stop()


@pytest.fixture
def simulator(simulator_factory: SimulatorFactory) -> RunningSimulator:
    return simulator_factory()


def cloud_settings(sim: RunningSimulator) -> dict[str, Any]:
    """The settings.HUAWEICLOUD entries that point the dashboard at `sim` with its keys."""
    config = sim.config
    return {
        "WORKSPACEAPP_ENDPOINT": sim.url,
        "WORKSPACE_ENDPOINT": sim.url,
        "IMS_ENDPOINT": sim.url,
        "IAM_ENDPOINT": sim.url,
        "AK": config.ak,
        "SK": config.sk,
        "PROJECT_ID": config.project_id,
    }


@pytest.fixture
def sim_settings(simulator: RunningSimulator, settings: Any) -> RunningSimulator:
    settings.HUAWEICLOUD = {
        **settings.HUAWEICLOUD,
        **cloud_settings(simulator),
        "SECURITY_TOKEN": "",
        "VERIFY_TLS": False,
    }
    return simulator


@pytest.fixture
def cloud_client(sim_settings: RunningSimulator) -> Any:
    # Imported here: the client module may be absent while the simulator is tested alone.
    from dashboard.cloud.client import CloudClient
    from dashboard.cloud.config import from_settings

    return CloudClient(from_settings())


@pytest.fixture
def synced(sim_settings: RunningSimulator, cloud_client: Any) -> RunningSimulator:
    from dashboard import inventory

    inventory.sync_now(client=cloud_client)
    return sim_settings
