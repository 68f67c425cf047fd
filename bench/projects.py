"""Figure 6: two projects in two regions synced side by side, as one dashboard serves them.

One in-process simulator serves the projects (its own fleet, key and request log each), and
the dashboard is configured with them as a projects file would list them: their own ids,
regions and credentials, read from the environment variables the configuration names. Each
project's sync runs on its own thread with its own client (`projects.client_for`), as a worker
serves each project's queue on its own thread. Per project of the pair: the API calls against
the bound of figure 1, the wall time against the single-project floor, and that exactly its
own servers were stored; then the pair's wall time against the same floor and against one
project of the same size synced alone just before, on a fleet of its own (`ALONE`), so the
pair is measured on the same machine in the same minute as what it is compared with.
"""

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import connections
from django.test.utils import override_settings

from bench import env, simtime
from bench.report import Report, pages, seconds

# (name, region, project id, AK, SK): each its own region, id and key.
PAIR = (
    ("beijing", "cn-north-4", "b1" * 16, "BENCHBEIJINGKEY00001", "bench-beijing-secret"),
    ("shanghai", "cn-east-3", "5e" * 16, "BENCHSHANGHAIKEY0001", "bench-shanghai-secret"),
)
# A third project of the same size, synced alone before the pair: the comparison.
ALONE = ("guangzhou", "cn-south-1", "9a" * 16, "BENCHGUANGZHOUKEY001", "bench-guangzhou-secret")
PROJECTS = (*PAIR, ALONE)


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
    """Start the simulator of PROJECTS, sync one project alone then the pair side by side,
    report, stop it.

    `seed` must differ from the seed of any fleet already stored in the database: server ids
    are the cloud's, unique across projects, and a fleet of the same seed has the same ids.
    """
    sim = start_simulator(servers, seed, job_seconds)
    try:
        with configured(sim):
            sync_side_by_side(report, sim, servers, latency)
    finally:
        sim.stop()


@dataclass
class Synced:
    """One project's sync: its run, wall time, calls by API and requests in its own log."""

    run: object
    wall: float
    calls: Counter
    served: int


def sync_together(sim: env.Sim, rows: list) -> tuple[dict[str, Synced], float, simtime.Reading]:
    """Sync each project of `rows` on a thread of its own, all starting at once.

    Returns each project's sync by name, the wall time until the last finished, and the
    simulator's clocks over it. Raises what a sync raised.
    """
    from dashboard import inventory
    from dashboard import projects as dashboard_projects

    clients = {row.name: dashboard_projects.client_for(row) for row in rows}
    logs = {row.name: sim.state.project(row.cloud_project_id) for row in rows}
    before = {row.name: Counter(clients[row.name].calls_by_api) for row in rows}
    logged = {row.name: len(logs[row.name].requests()) for row in rows}
    done: dict[str, tuple[object, float]] = {}
    errors: list[BaseException] = []
    start_together = threading.Barrier(len(rows) + 1)

    def sync(row) -> None:
        try:
            start_together.wait()
            began = time.perf_counter()
            run = inventory.sync_now("bench", clients[row.name], project=row)
            done[row.name] = (run, time.perf_counter() - began)
        except BaseException as error:  # raised again by the main thread
            errors.append(error)
        finally:
            connections.close_all()  # this thread's own connection

    threads = [threading.Thread(target=sync, args=(row,), name=f"sync-{row.name}") for row in rows]
    for thread in threads:
        thread.start()
    inside = sim.time.reading()
    start_together.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    inside = sim.time.reading() - inside
    if errors:
        raise errors[0]
    synced = {}
    for row in rows:
        calls = Counter(clients[row.name].calls_by_api)
        calls.subtract(before[row.name])
        served = len(logs[row.name].requests()) - logged[row.name]
        synced[row.name] = Synced(*done[row.name], +calls, served)
    return synced, wall, inside


def sync_side_by_side(report: Report, sim: env.Sim, servers: int, latency: int) -> None:
    from dashboard import projects as dashboard_projects
    from dashboard.models import Server, ServerGroup, SyncRun

    in_flight = settings.SYNC_CALLS_IN_FLIGHT
    rows = {row.name: row for row in dashboard_projects.rows()}  # before the threads race
    states = {row.name: sim.state.project(row.cloud_project_id) for row in rows.values()}
    for state in states.values():
        state.set_faults(latency_ms=latency)

    alone, _, _ = sync_together(sim, [rows[ALONE[0]]])
    pair, pair_wall, inside = sync_together(sim, [rows[name] for name, *_ in PAIR])
    synced = {**alone, **pair}
    for name, one in synced.items():
        if one.run.state != SyncRun.State.SUCCEEDED:
            raise SystemExit(f"sync of {name} {one.run.state}: {one.run.error}")

    def floor(calls: int) -> str:
        wait = pages(calls, in_flight) * latency / 1000
        return f"{seconds(wait)} = ceil({calls} calls/{in_flight}) x {latency} ms"

    figure = f"sync.two_projects.{servers}_servers_each"
    for name, one in pair.items():
        calls = one.calls.total()
        group_calls, image_calls = one.calls["ListServerGroups"], one.calls["ListImages"]
        groups = ServerGroup.objects.filter(project=rows[name], gone=False).count()
        report.figure(
            f"{figure}.{name}.api_calls",
            f"{calls} {dict(one.calls)}",
            f"{pages(servers) + group_calls + image_calls} = ceil({servers}/100) + "
            f"{group_calls} group + {image_calls} image page(s), {groups} groups",
        )
        report.figure(f"{figure}.{name}.simulator_requests", one.served, f"{calls} (its own log)")
        report.figure(
            f"{figure}.{name}.wall_time",
            seconds(one.wall),
            f"{floor(calls)} (the single-project floor)",
        )
    for name, row in rows.items():
        stored = set(Server.objects.filter(project=row, gone=False).values_list("id", flat=True))
        own = set(states[name].servers)
        others = {s for other, state in states.items() if other != name for s in state.servers}
        report.figure(
            f"{figure}.{name}.stored_servers",
            f"{len(stored)} ({len(stored & own)} its own, {len(stored & others)} others')",
            f"{servers} ({servers} its own, 0 others')",
        )

    (lone,) = alone.values()
    report.figure(
        f"{figure}.one_project_alone.wall_time",
        seconds(lone.wall),
        f"{floor(lone.calls.total())} ({ALONE[0]}, a third project of {servers} servers, "
        "synced alone just before the pair)",
    )
    slowest = max(one.calls.total() for one in pair.values())
    floor_text = (
        f"{floor(slowest)}: the single-project floor, each project having {in_flight} calls "
        "in flight of its own"
    )
    report.figure(f"{figure}.pair.wall_time", seconds(pair_wall), floor_text)
    report.split(f"{figure}.pair.wall_time", pair_wall, inside, floor_text)
    report.figure(
        f"{figure}.ratio.pair_over_one_alone",
        f"{pair_wall / lone.wall:.1f}",
        "none (1.0: two projects side by side take as long as one; 2.0: as long as one "
        "after the other)",
    )
