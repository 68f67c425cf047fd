"""Figure 6: two projects in two regions synced side by side, as one dashboard serves them.

One in-process simulator serves both projects (its own fleet, key and request log each), and
the dashboard is configured with both as a projects file would list them: their own ids,
regions and credentials, read from the environment variables the configuration names. Each
project's sync runs on its own thread with its own client (`projects.client_for`), as a worker
serves each project's queue on its own thread. Per project: the API calls against the bound
of figure 1, the wall time against the single-project floor, and that exactly its own
servers were stored; then the pair's wall time against the same floor.
"""

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connections
from django.test.utils import override_settings

from bench import env, simtime
from bench.report import Report, pages, seconds

# Both in cn-north-4's and cn-east-3's shape: their own ids, regions and keys.
PROJECTS = (
    ("beijing", "cn-north-4", "b1" * 16, "BENCHBEIJINGKEY00001", "bench-beijing-secret"),
    ("shanghai", "cn-east-3", "5e" * 16, "BENCHSHANGHAIKEY0001", "bench-shanghai-secret"),
)


def start_simulator(servers: int, seed: int, job_seconds: float) -> env.Sim:
    """An in-process simulator serving PROJECTS, `servers` servers each, manual clock."""
    from dashboard.simulator import server
    from dashboard.simulator.faults import Faults
    from dashboard.simulator.state import SimConfig, SimProject, SimState

    listed = tuple(
        SimProject(project_id=project_id, region=region, ak=ak, sk=sk)
        for _, region, project_id, ak, sk in PROJECTS
    )
    config = SimConfig(servers=servers, seed=seed, job_seconds=job_seconds, projects=listed)
    state = SimState(config, faults=Faults(), manual_clock=True)
    handle = server.start(state)
    return env.Sim(state, handle.url, handle, simtime.install(handle))


@contextmanager
def configured(sim: env.Sim) -> Iterator[None]:
    """settings.CLOUD_PROJECTS lists PROJECTS at `sim`, their keys in BENCH_<NAME>_AK/_SK."""
    from dashboard.cloud.projects import ENDPOINTS, ProjectConfig

    variables: dict[str, str] = {}
    listed = []
    for name, region, project_id, ak, sk in PROJECTS:
        ak_env, sk_env = f"BENCH_{name.upper()}_AK", f"BENCH_{name.upper()}_SK"
        variables.update({ak_env: ak, sk_env: sk})
        listed.append(
            ProjectConfig(
                name=name,
                region=region,
                label=f"{name.title()} (benchmark)",
                project_id=project_id,
                ak_env=ak_env,
                sk_env=sk_env,
                endpoints=tuple((service, sim.url) for service in ENDPOINTS),
            )
        )
    before = {key: os.environ.get(key) for key in variables}
    os.environ.update(variables)
    try:
        with override_settings(CLOUD_PROJECTS=tuple(listed)):
            yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run(report: Report, servers: int, latency: int, seed: int, job_seconds: float) -> None:
    """Start the two-project simulator, sync both projects side by side, report, stop it.

    `seed` must differ from the seed of any fleet already stored in the database: server ids
    are the cloud's, unique across projects, and a fleet of the same seed has the same ids.
    """
    sim = start_simulator(servers, seed, job_seconds)
    try:
        with configured(sim):
            sync_side_by_side(report, sim, servers, latency)
    finally:
        sim.stop()


def sync_side_by_side(report: Report, sim: env.Sim, servers: int, latency: int) -> None:
    from dashboard import inventory
    from dashboard import projects as dashboard_projects
    from dashboard.models import Server, ServerGroup, SyncRun

    in_flight = settings.SYNC_CALLS_IN_FLIGHT
    rows = dashboard_projects.rows()  # created here, before the threads race to create them
    states = {p.config.project_id: p for p in sim.state.all_projects()}
    for state in states.values():
        state.set_faults(latency_ms=latency)
    clients = {row.name: dashboard_projects.client_for(row) for row in rows}
    before = {row.name: Counter(clients[row.name].calls_by_api) for row in rows}
    logged = {row.name: len(states[row.cloud_project_id].requests()) for row in rows}
    walls: dict[str, float] = {}
    runs: dict[str, SyncRun] = {}
    errors: list[BaseException] = []
    start_together = threading.Barrier(len(rows) + 1)

    def sync(row) -> None:
        try:
            start_together.wait()
            began = time.perf_counter()
            runs[row.name] = inventory.sync_now("bench", clients[row.name], project=row)
            walls[row.name] = time.perf_counter() - began
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        finally:
            connections.close_all()  # this thread's own connection

    threads = [threading.Thread(target=sync, args=(row,), name=f"sync-{row.name}") for row in rows]
    for thread in threads:
        thread.start()
    inside_before = sim.time.reading()
    start_together.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    pair_wall = time.perf_counter() - began
    inside = sim.time.reading() - inside_before
    if errors:
        raise errors[0]

    name = f"sync.two_projects.{servers}_servers_each"
    floors = []
    for row in rows:
        run, client = runs[row.name], clients[row.name]
        if run.state != SyncRun.State.SUCCEEDED:
            raise SystemExit(f"sync of {row.name} {run.state}: {run.error}")
        by_api = Counter(client.calls_by_api)
        by_api.subtract(before[row.name])
        by_api = +by_api
        calls = by_api.total()
        group_calls, image_calls = by_api["ListServerGroups"], by_api["ListImages"]
        groups = ServerGroup.objects.filter(project=row, gone=False).count()
        bound = pages(servers) + group_calls + image_calls
        report.figure(
            f"{name}.{row.name}.api_calls",
            f"{calls} {dict(by_api)}",
            f"{bound} = ceil({servers}/100) + {group_calls} group + {image_calls} image page(s)"
            f", {groups} groups",
        )
        served = len(states[row.cloud_project_id].requests()) - logged[row.name]
        report.figure(f"{name}.{row.name}.simulator_requests", served, f"{calls} (its own log)")
        floor = pages(calls, in_flight) * latency / 1000
        floors.append(floor)
        report.figure(
            f"{name}.{row.name}.wall_time",
            seconds(walls[row.name]),
            f"{seconds(floor)} = ceil({calls} calls/{in_flight}) x {latency} ms "
            "(the single-project floor)",
        )
        stored = set(Server.objects.filter(project=row, gone=False).values_list("id", flat=True))
        own = set(states[row.cloud_project_id].servers)
        others = {
            server_id
            for project_id, state in states.items()
            if project_id != row.cloud_project_id
            for server_id in state.servers
        }
        report.figure(
            f"{name}.{row.name}.stored_servers",
            f"{len(stored)} ({len(stored & own)} its own, {len(stored & others)} the other's)",
            f"{servers} ({servers} its own, 0 the other's)",
        )
    floor = max(floors)
    floor_text = (
        f"{seconds(floor)} = the single-project floor: each project has {in_flight} calls in "
        f"flight of its own (one project alone: sync.{servers}_servers.c{in_flight}.wall_time)"
    )
    report.figure(f"{name}.pair.wall_time", seconds(pair_wall), floor_text)
    report.split(f"{name}.pair.wall_time", pair_wall, inside, floor_text)
