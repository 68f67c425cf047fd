"""Django, a throwaway database and an in-process simulator for one benchmark run."""

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench import simtime

ROOT = Path(__file__).resolve().parent.parent
DB_PATH = ROOT / "var" / f"bench-{os.getpid()}.sqlite3"


def setup_django() -> None:
    """Configure Django on a fresh SQLite file under var/ and migrate it (quietly)."""
    use_database("", DB_PATH)
    from django.conf import settings

    # The test settings send one call at a time (threads cannot see a test's transaction);
    # the benchmark measures the production default unless the environment says otherwise.
    settings.ROLLOUT_CALLS_IN_FLIGHT = int(os.environ.get("ROLLOUT_CALLS_IN_FLIGHT", "4"))


def use_database(database_url: str, sqlite_path: Path) -> str:
    """Configure Django on `database_url` (or a throwaway SQLite file at `sqlite_path`), migrate
    it quietly, and answer its vendor."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    os.environ["DATABASE_URL"] = database_url or f"sqlite:///{sqlite_path}"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sqlite_path.parent.mkdir(exist_ok=True)
    import django
    from django.core.management import call_command
    from django.db import connection

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    return connection.vendor


def remove_database(sqlite_path: Path = DB_PATH) -> None:
    """Close the connections and delete the throwaway SQLite file (and its WAL files)."""
    from django.db import connections

    connections.close_all()
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{sqlite_path}{suffix}").unlink()


def analyze(*tables: str) -> None:
    """Fresh planner statistics (and, on PostgreSQL, a visibility map for index-only scans)."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for table in tables:
                cursor.execute(f"VACUUM ANALYZE {table}")
        else:
            cursor.execute("ANALYZE")


@dataclass
class Sim:
    """A running simulator: `state` (SimState), `url`, the handle to stop it, and `time`,
    the clocks of its own work (bench.simtime)."""

    state: object
    url: str
    handle: object
    time: simtime.SimulatorTime

    def latency(self, ms: int) -> None:
        self.state.set_faults(latency_ms=ms)

    def stop(self) -> None:
        self.handle.stop()


def start_simulator(servers: int, seed: int, job_seconds: float) -> Sim:
    """An in-process simulator on a free loopback port, manual clock, no faults yet."""
    from dashboard.simulator import server
    from dashboard.simulator.faults import Faults
    from dashboard.simulator.state import SimConfig, SimState

    config = SimConfig(servers=servers, seed=seed, job_seconds=job_seconds)
    state = SimState(config, faults=Faults(), manual_clock=True)
    handle = server.start(state)
    return Sim(state, handle.url, handle, simtime.install(handle))


def point_settings_at(sim: Sim) -> None:
    """settings.HUAWEICLOUD's endpoints and AK/SK/project → the simulator (as sim_settings)."""
    from django.conf import settings

    config = sim.state.config
    settings.HUAWEICLOUD = {
        **settings.HUAWEICLOUD,
        "WORKSPACEAPP_ENDPOINT": sim.url,
        "WORKSPACE_ENDPOINT": sim.url,
        "IMS_ENDPOINT": sim.url,
        "IAM_ENDPOINT": sim.url,
        "AK": config.ak,
        "SK": config.sk,
        "PROJECT_ID": config.project_id,
        "SECURITY_TOKEN": "",
        "VERIFY_TLS": False,
    }


def new_client():
    """A fresh CloudClient (its own call counters) configured from settings."""
    from dashboard.cloud.client import CloudClient
    from dashboard.cloud.config import from_settings

    return CloudClient(from_settings())


@contextlib.contextmanager
def demo_identity() -> Iterator[None]:
    """The local demo identity (DEBUG on, loopback client) with the admin group."""
    from django.test.utils import override_settings

    with override_settings(
        DEBUG=True, DASHBOARD_DEV_USER="bench", DASHBOARD_DEV_GROUPS=["dashboard-admins"]
    ):
        yield
