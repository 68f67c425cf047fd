"""Figures 1 to 4: the dashboard's own code paths against the simulator.

Everything runs in this process: the simulator on a loopback port, the dashboard's
CloudClient, inventory sync, planning, submit and refresh, and the pages through Django's
test Client. API calls are counted by the client (`calls`, `calls_by_api`) and, where it
matters, cross-checked with the simulator's own request log.
"""

import threading
import time
import tracemalloc
from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.db import connection, connections
from django.db.models import Count
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from bench import env
from bench.report import Report, mib, ms, pages, seconds

TARGET_NAME = "win2019-office-2026.11"  # a private image 3/5 of the fleet may move to
CHANGE = "BatchChangeServerImage"
REREADS = ("ListServers", "ShowServer")
WRITER = "bench"


# ---- helpers --------------------------------------------------------------------------------


def sync(client):
    """A sync as the worker runs it: join (and run) a sync a finished rollout requested."""
    from dashboard import inventory
    from dashboard.models import SyncRun

    running = SyncRun.objects.filter(state=SyncRun.State.RUNNING).first()
    if running is not None:
        return inventory.run_sync(running.pk, client)
    return inventory.sync_now(client=client)


def choose_servers(count: int):
    """`count` servers whose verdict for TARGET_NAME is change, by group name then name."""
    from dashboard.models import Image, Server
    from dashboard.rollouts import planning
    from dashboard.rollouts.facts import verdicts

    images = planning.image_map()
    target = Image.objects.get(name=TARGET_NAME, gone=False)
    servers = list(Server.objects.filter(gone=False).select_related("group"))
    judged = verdicts(servers, target, images, set())
    ok = [s for s in servers if judged[s.id].ok]
    ok.sort(key=lambda s: (s.group.name if s.group else "", s.name, s.id))
    if len(ok) < count:
        raise SystemExit(f"only {len(ok)} servers can move to {TARGET_NAME}; need {count}")
    return [s.id for s in ok[:count]], target


def plan(server_ids: list[str], target_id: str):
    """A stored plan for these servers (re-read from the database, as the view does)."""
    from dashboard.models import Image, Server
    from dashboard.rollouts import planning

    images = planning.image_map()
    servers = list(Server.objects.filter(id__in=server_ids).select_related("group"))
    return planning.create_plan(
        created_by=WRITER,
        servers=servers,
        target=Image.objects.get(id=target_id),
        images=images,
        reason="benchmark",
    )


def confirm(rollout_id: int) -> None:
    from dashboard.models import Rollout
    from dashboard.rollouts import planning

    result = planning.confirm(rollout_id, WRITER)
    if result.rollout.state != Rollout.State.QUEUED:
        raise SystemExit(f"rollout {rollout_id} is {result.rollout.state}: {result.stale[:3]}")


def refresh_once(rollout_id: int, client) -> str:
    """One refresh cycle: `refresh.refresh`, or `engine.tick` where the engine replaced it."""
    from dashboard.rollouts import refresh

    step = getattr(refresh, "refresh", None)
    if step is None:
        from dashboard.rollouts import engine

        step = engine.tick
    return step(rollout_id, client)


def refresh_until_final(sim: env.Sim, rollout_id: int, client, job_seconds: float) -> int:
    """Refresh cycles, moving the simulator's clock one job duration after each. Returns cycles."""
    from dashboard.models import Rollout

    cycles = 0
    while True:
        cycles += 1
        state = refresh_once(rollout_id, client)
        if state in Rollout.FINAL_STATES or cycles > 20:
            return cycles
        sim.state.advance(job_seconds)


def group_pages(server_ids: list[str]) -> tuple[int, int]:
    """(groups touched, ListServers pages to read those whole groups at 100 a page)."""
    from dashboard.models import Server

    groups = set(Server.objects.filter(id__in=server_ids).values_list("group_id", flat=True))
    sizes = (
        Server.objects.filter(group_id__in=groups, gone=False)
        .values("group_id")
        .annotate(n=Count("id"))
        .values_list("n", flat=True)
    )
    return len(groups), sum(pages(n) for n in sizes)


def apis(counter: Counter, names) -> int:
    return sum(counter[n] for n in names)


def delta(before: Counter, after: Counter) -> Counter:
    return Counter({k: after[k] - before[k] for k in after if after[k] - before[k]})


def browser() -> Client:
    return Client(REMOTE_ADDR="127.0.0.1")


def measure_page(http: Client, url: str, runs: int, expect: int = 200) -> tuple[float, int]:
    """(median seconds, queries of the last run) of GET url, server side in-process."""
    times, queries = [], 0
    for _ in range(runs):
        with CaptureQueriesContext(connection) as captured:
            start = time.perf_counter()
            response = http.get(url)
            times.append(time.perf_counter() - start)
        if response.status_code != expect:
            raise SystemExit(f"GET {url} answered {response.status_code}, expected {expect}")
        queries = len(captured)
    times.sort()
    return times[len(times) // 2], queries


# ---- figure 1 -------------------------------------------------------------------------------


def inventory_sync(report: Report, sim: env.Sim, n_servers: int, latency: int) -> None:
    from dashboard.models import ServerGroup

    sim.latency(latency)
    client = env.new_client()
    in_flight = settings.SYNC_CALLS_IN_FLIGHT
    before = sim.time.reading()
    start = time.perf_counter()
    run = sync(client)
    wall = time.perf_counter() - start
    inside = sim.time.reading() - before
    groups = ServerGroup.objects.filter(gone=False).count()
    group_calls = client.calls_by_api["ListServerGroups"]
    image_calls = client.calls_by_api["ListImages"]
    bound = pages(n_servers) + group_calls + image_calls
    report.figure(
        f"sync.{n_servers}_servers.{groups}_groups.api_calls",
        f"{client.calls} {dict(client.calls_by_api)}",
        f"{bound} = ceil({n_servers}/100) + {group_calls} group + {image_calls} image page(s)",
    )
    floor = pages(client.calls, in_flight) * latency / 1000
    floor_text = f"{seconds(floor)} = ceil({client.calls} calls/{in_flight}) x {latency} ms"
    goal = f"{seconds(1.5 * floor)} = 1.5 x {floor_text}"
    name = f"sync.{n_servers}_servers.c{in_flight}.wall_time"
    report.figure(name, f"{seconds(wall)} ({wall / floor:.2f} x floor)", goal)
    report.split(name, wall, inside, floor_text)
    if run.state != "succeeded":
        raise SystemExit(f"sync failed: {run.error}")
    # The same fleet again: what every scheduled sync after the first does.
    again = env.new_client()
    before = sim.time.reading()
    start = time.perf_counter()
    run = sync(again)
    wall = time.perf_counter() - start
    inside = sim.time.reading() - before
    name = f"sync.{n_servers}_servers.c{in_flight}.repeat.wall_time"
    report.figure(name, f"{seconds(wall)} ({wall / floor:.2f} x floor), {again.calls} calls", goal)
    report.split(name, wall, inside, floor_text)
    if run.state != "succeeded":
        raise SystemExit(f"repeat sync failed: {run.error}")
    # A second sync under tracemalloc (which slows everything, so it is not timed).
    tracemalloc.start()
    sync(env.new_client())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    report.figure(
        f"sync.{n_servers}_servers.peak_memory",
        mib(peak),
        "none (tracemalloc peak of a repeat sync; includes the in-process simulator's pages)",
    )


# ---- figure 2 -------------------------------------------------------------------------------


CHUNK_STATEMENTS = 8  # claim, rows, group sizes, images, mark, audit, answer, audit


class ChunkStatements:
    """The SQL statements of a submit on every thread (the sending threads have their own
    connections, so CaptureQueriesContext would see none of theirs), each counted against the
    chunk its thread was sending (send._send_chunk) or against the submit's own work."""

    def __init__(self) -> None:
        self.per_chunk: Counter = Counter()
        self.outside = 0
        self.local = threading.local()
        self.lock = threading.Lock()

    def __enter__(self) -> "ChunkStatements":
        from django.db.backends.signals import connection_created

        from dashboard.rollouts import send

        self.send, self.sending = send, send._send_chunk

        def counted_chunk(rollout, chunk, **kwargs):
            self.local.chunk = chunk
            try:
                return self.sending(rollout, chunk, **kwargs)
            finally:
                self.local.chunk = None

        send._send_chunk = counted_chunk
        connection_created.connect(self._watch)
        for open_connection in connections.all(initialized_only=True):
            open_connection.execute_wrappers.append(self._count)
        return self

    def __exit__(self, *exc) -> None:
        from django.db.backends.signals import connection_created

        self.send._send_chunk = self.sending
        connection_created.disconnect(self._watch)
        for open_connection in connections.all(initialized_only=True):
            if self._count in open_connection.execute_wrappers:
                open_connection.execute_wrappers.remove(self._count)

    def _watch(self, sender, connection, **kwargs) -> None:
        # Sent again when a thread's connection reconnects: count its statements once.
        if self._count not in connection.execute_wrappers:
            connection.execute_wrappers.append(self._count)

    def _count(self, execute, sql, params, many, context):
        chunk = getattr(self.local, "chunk", None)
        with self.lock:
            if chunk is None:
                self.outside += 1
            else:
                self.per_chunk[chunk] += 1
        return execute(sql, params, many, context)


def first_reread_rounds(rollout_id: int, in_flight: int) -> int:
    """Rounds of calls before the first change call can leave: the largest group the first
    chunk lists whole (its other reads go at the same time), else 1 call. One at a time a
    listing is a round a page; with calls in flight its pages after the first go out together
    (send._readers of them at once)."""
    from dashboard.models import RolloutServer, Server
    from dashboard.rollouts import send

    rows = RolloutServer.objects.filter(rollout_id=rollout_id, state=RolloutServer.State.PENDING)
    first = rows.order_by("chunk").values_list("chunk", flat=True).first()
    in_first = Counter(rows.filter(chunk=first).values_list("group_id", flat=True))
    sizes = Counter(
        Server.objects.filter(group_id__in=list(in_first), gone=False).values_list(
            "group_id", flat=True
        )
    )
    listed = [pages(sizes[g]) for g, n in in_first.items() if 0 < pages(sizes[g]) < n]
    most = max(listed, default=1)
    return most if in_flight == 1 else 1 + pages(most - 1, send._readers(in_flight))


def submit_rollout(
    report: Report, sim: env.Sim, rollout_id: int, size: int, latency: int, in_flight: int
) -> None:
    from dashboard.models import RolloutServer
    from dashboard.rollouts import engine

    sim.latency(latency)
    client = env.new_client()
    waits: list[float] = []
    logged = len(sim.state.requests())
    first_reads = first_reread_rounds(rollout_id, in_flight)
    with override_settings(ROLLOUT_CALLS_IN_FLIGHT=in_flight), ChunkStatements() as statements:
        before = sim.time.reading()
        start = time.perf_counter()
        engine.start(rollout_id, client, sleep=waits.append)
        wall = time.perf_counter() - start
        inside = sim.time.reading() - before
    by_api = client.calls_by_api
    chunks = pages(size, 50)
    rereads = apis(by_api, REREADS)
    waiting = RolloutServer.objects.filter(
        rollout_id=rollout_id, state=RolloutServer.State.WAITING
    ).count()
    name = f"submit.{size}_servers.c{in_flight}"
    report.figure(f"{name}.change_calls", by_api[CHANGE], f"{chunks} = ceil({size}/50)")
    report.figure(
        f"{name}.reread_calls",
        f"{rereads} {dict((k, by_api[k]) for k in REREADS if by_api[k])}",
        f"{chunks} (one whole-group ListServers per chunk when a chunk sits in one group)",
    )
    per_chunk = sorted(statements.per_chunk.values()) or [0]
    report.figure(
        f"{name}.db_statements_per_chunk",
        f"{per_chunk[-1]} (fewest {per_chunk[0]}, {len(statements.per_chunk)} chunks)",
        f"{CHUNK_STATEMENTS} (claim, rows, group sizes, images, mark, audit, answer, audit; "
        "the same for 5 servers as for 50)",
    )
    report.figure(
        f"{name}.db_statements",
        f"{sum(per_chunk) + statements.outside} ({statements.outside} outside the chunks)",
        f"{chunks} chunks x {CHUNK_STATEMENTS} + the start, the wave and the plan of its re-reads",
    )
    report.figure(
        f"{name}.wall_time",
        seconds(wall),
        f"{seconds(pages(chunks, in_flight) * latency / 1000)} = "
        f"ceil({chunks}/{in_flight}) x {latency} ms",
    )
    if in_flight == 1:  # each chunk re-reads, then sends
        floor = client.calls * latency / 1000
        floor_text = f"{seconds(floor)} = {client.calls} calls x {latency} ms, one at a time"
    else:  # the first chunk's re-read comes before any call; the others are read meanwhile
        floor = (first_reads + pages(chunks, in_flight)) * latency / 1000
        floor_text = (
            f"{seconds(floor)} = ({first_reads} round(s) of calls of the first re-read + "
            f"ceil({chunks}/{in_flight})) x {latency} ms, the next chunks' re-reads read "
            "while calls are out"
        )
    report.figure(f"{name}.wall_time_latency_floor_incl_rereads", seconds(floor), floor_text)
    report.split(f"{name}.wall_time", wall, inside, floor_text)
    report.figure(f"{name}.servers_accepted", waiting, size)
    report.figure(f"{name}.simulator_requests", len(sim.state.requests()) - logged, client.calls)
    if waits:
        report.note(f"{name}: submit waited {waits} (throttling?)")


def submit_without_latency(
    report: Report, sim: env.Sim, rollout_id: int, size: int, in_flight: int
) -> None:
    """The same submit with the cloud answering at once: the dashboard's own work on its one
    interpreter (and the in-process simulator's), which the waits of a slower cloud overlap
    only in part. Set beside submit_rollout's wall time, it says how much of that time is
    work rather than waiting."""
    from dashboard.rollouts import engine

    sim.latency(0)
    client = env.new_client()
    with override_settings(ROLLOUT_CALLS_IN_FLIGHT=in_flight):
        before = sim.time.reading()
        start = time.perf_counter()
        engine.start(rollout_id, client, sleep=lambda _seconds: None)
        wall = time.perf_counter() - start
        inside = sim.time.reading() - before
    name = f"submit.{size}_servers.c{in_flight}.wall_time_cloud_answering_at_once"
    report.figure(
        name,
        seconds(wall),
        "none (the submit's own work: no latency to wait for, the same calls and statements)",
    )
    report.split(name, wall, inside, "0 s of waiting")


# ---- figure 3 -------------------------------------------------------------------------------


def refresh_cycle(
    report: Report,
    sim: env.Sim,
    rollout_id: int,
    server_ids: list[str],
    browsers: int,
    latency: int,
) -> None:
    size = len(server_ids)
    groups, group_reads = group_pages(server_ids)
    bound = (
        f"{pages(size) + groups} = ceil({size}/100) + {groups} groups"
        f" (whole-group pages: {group_reads})"
    )

    client = env.new_client()
    with CaptureQueriesContext(connection) as captured:
        before = sim.time.reading()
        start = time.perf_counter()
        refresh_once(rollout_id, client)
        wall = time.perf_counter() - start
        inside = sim.time.reading() - before
    alone = client.calls
    in_flight = settings.ROLLOUT_CALLS_IN_FLIGHT  # tracking reads as many at once
    floor = pages(alone, in_flight) * latency / 1000
    floor_text = (
        f"{seconds(1.5 * floor)} = 1.5 x ceil({alone} calls/{in_flight}) x {latency} ms"
        f" (serial: {seconds(alone * latency / 1000)})"
    )
    report.figure(f"refresh.{size}_active.db_queries", len(captured), "none (the cycle's own SQL)")
    report.figure(f"refresh.{size}_active.api_calls", f"{alone} {dict(client.calls_by_api)}", bound)
    ratio = f"{seconds(wall)} ({wall / floor:.2f} x floor)" if floor else seconds(wall)
    report.figure(f"refresh.{size}_active.wall_time", ratio, floor_text)
    report.split(f"refresh.{size}_active.wall_time", wall, inside, floor_text)

    # The same cycle (the simulated clock has not moved) with browsers polling meanwhile.
    cycle_began = timezone.now()
    since = cycle_began.isoformat()
    stop = threading.Event()
    polls: Counter = Counter()
    lock = threading.Lock()

    def poll_loop() -> None:
        http = browser()
        url = f"/rollouts/{rollout_id}/poll/"
        try:
            while not stop.is_set():
                status = http.get(url, {"since": since}).status_code
                with lock:
                    polls[status] += 1
        finally:
            connections.close_all()

    client = env.new_client()
    with env.demo_identity():
        threads = [threading.Thread(target=poll_loop) for _ in range(browsers)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)  # let every browser be polling before the cycle starts
        before = sim.time.reading()
        start = time.perf_counter()
        refresh_once(rollout_id, client)
        wall = time.perf_counter() - start
        inside = sim.time.reading() - before
        stop.set()
        for thread in threads:
            thread.join()
    report.figure(
        f"refresh.{size}_active.with_{browsers}_browsers.api_calls",
        f"{client.calls} {dict(client.calls_by_api)}",
        f"{alone} (the same as without browsers)",
    )
    report.figure(
        f"refresh.{size}_active.with_{browsers}_browsers.polls_served",
        f"{sum(polls.values())} {dict(polls)}",
        "none (each browser polls in a loop while the cycle runs)",
    )
    name = f"refresh.{size}_active.with_{browsers}_browsers.wall_time"
    report.figure(name, seconds(wall), floor_text)
    report.split(name, wall, inside, floor_text)
    from dashboard.models import RolloutServer

    touched = RolloutServer.objects.filter(
        rollout_id=rollout_id, updated_at__gte=cycle_began
    ).count()
    report.figure(
        f"refresh.{size}_active.rows_marked_changed_when_no_job_moved",
        touched,
        "0 (the clock did not move, so no job changed state; each marked row is re-sent "
        "to every polling browser)",
    )


def refresh_all_moved(
    report: Report, sim: env.Sim, rollout_id: int, size: int, job_seconds: float
) -> None:
    """One tick after every job moved, each its own way: a third failed with a message naming
    its server, a third still runs (a job three times as long), the rest succeeded. Its SQL
    statements must not grow with the rows that moved."""
    from dashboard.models import RolloutServer

    rows = RolloutServer.objects.filter(rollout_id=rollout_id)
    ids = list(rows.order_by("pk").values_list("server_id", flat=True))
    failing, slow = set(ids[0::3]), set(ids[1::3])
    with sim.state.lock:
        for job in sim.state.jobs.values():
            if job.target_image_id and job.server_id in failing:
                job.fails, job.error_code = True, "WKS.00129901"
                job.error_message = f"{job.server_name} could not be rebuilt."
            if job.target_image_id and job.server_id in slow:
                job.duration *= 3
    sim.state.advance(job_seconds + 1)
    client = env.new_client()
    began = timezone.now()
    with CaptureQueriesContext(connection) as captured:
        refresh_once(rollout_id, client)
    moved = Counter(rows.filter(updated_at__gte=began).values_list("state", flat=True))
    name = f"refresh.{size}_active.all_moved"
    report.figure(f"{name}.rows_moved", f"{moved.total()} {dict(moved)}", size)
    report.figure(
        f"{name}.db_statements",
        len(captured),
        "20 (the tick's own SQL, the same for 10 rows moved as for 1,000)",
    )
    report.figure(
        f"{name}.api_calls",
        f"{client.calls} {dict(client.calls_by_api)}",
        f"re-reads as refresh.{size}_active + {len(failing)} ShowJobDetail (a failed job's error)",
    )


# ---- figure 4 -------------------------------------------------------------------------------


def page_figures(
    report: Report, pages_to_measure: list[tuple[str, str, int]], runs: int, label: str
) -> None:
    with env.demo_identity():
        http = browser()
        for name, url, expect in pages_to_measure:
            median, queries = measure_page(http, url, runs, expect)
            report.figure(f"page.{name}.{label}.server_time_median_of_{runs}", ms(median))
            report.figure(f"page.{name}.{label}.queries", queries, "fixed: not per row")


def servers_pages(report: Report, n_servers: int, runs: int) -> None:
    from dashboard.models import ServerGroup

    group = ServerGroup.objects.filter(gone=False).order_by("name").first()
    page_figures(
        report,
        [
            ("servers", "/servers/", 200),
            ("servers_filtered_group_drift", f"/servers/?group={group.id}&drift=yes", 200),
            ("servers_filtered_search_sorted", "/servers/?q=finance&sort=-name", 200),
            ("servers_last_page", f"/servers/?page={pages(n_servers, 50)}", 200),
        ],
        runs,
        f"{n_servers}_servers",
    )


def rollout_pages(report: Report, rollout_id: int, size: int, since_before, runs: int) -> None:
    from dashboard.models import Rollout

    latest = Rollout.objects.get(pk=rollout_id).updated_at
    after = max(timezone.now(), latest + timedelta(milliseconds=1)).isoformat()
    before = since_before.isoformat()
    page_figures(
        report,
        [
            ("rollout", f"/rollouts/{rollout_id}/", 200),
            ("rollout_poll_all_rows_changed", _poll(rollout_id, before), 200),
            ("rollout_poll_nothing_changed", _poll(rollout_id, after), 204),
        ],
        runs,
        f"{size}_servers",
    )


def _poll(rollout_id: int, since: str) -> str:
    from urllib.parse import urlencode

    return f"/rollouts/{rollout_id}/poll/?{urlencode({'since': since})}"


def plan_page(report: Report, rollout_id: int, size: int, runs: int) -> None:
    page_figures(report, [("plan", f"/rollouts/new/{rollout_id}/", 200)], runs, f"{size}_servers")


def settings_in_flight() -> int:
    return settings.ROLLOUT_CALLS_IN_FLIGHT
