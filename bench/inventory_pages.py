"""`python -m bench.inventory_pages`: the inventory pages (and optionally the sync) at scale.

Builds an inventory of `--servers` servers (default 50,000; in n/100 groups, 5 to 50 of
them, as the simulator's fleet has) straight into the
database with bulk_create, then times the servers page (first page, a search, the page after
it, the last page), the groups page and the overview through Django's test Client, printing
the median of `--runs` runs and the queries of the last run, one line per figure as `python
-m bench` does. The database is a throwaway SQLite file under var/, or `--database-url`
(e.g. postgres://postgres@127.0.0.1:5432/dash_bench; its inventory tables are emptied first).

`--sync` first times two syncs (first, then repeat) of a simulated fleet of the same size
at `--latency` ms per call with SYNC_CALLS_IN_FLIGHT `--in-flight`, against the bound
1.5 x ceil(calls / in flight) x latency. Nothing is asserted.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from bench import env
from bench.report import Report, ms, pages, seconds

ROOT = Path(__file__).resolve().parent.parent
SQLITE_PATH = ROOT / "var" / f"bench-inventory-{os.getpid()}.sqlite3"
PAGE_BOUND_MS = 100


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.inventory_pages")
    parser.add_argument("--servers", default="50000", help="comma-separated sizes, e.g. 1000,50000")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--database-url", default="", help="default: a throwaway SQLite file")
    parser.add_argument("--sync", action="store_true", help="also time a first and a repeat sync")
    parser.add_argument("--latency", type=int, default=50, help="ms per call for --sync")
    parser.add_argument("--in-flight", type=int, default=4, help="SYNC_CALLS_IN_FLIGHT for --sync")
    return parser.parse_args(argv)


def empty_inventory() -> None:
    from django.db import connection

    from dashboard.models import (
        Image,
        InventoryFigures,
        Server,
        ServerGroup,
        ServerImageSeen,
        SyncRun,
    )

    models = (ServerImageSeen, Server, ServerGroup, Image, InventoryFigures, SyncRun)
    for model in models:
        model.objects.all().delete()
    if connection.vendor == "postgresql":
        # The deleted rows stay in the tables and their indexes until vacuumed: a "first"
        # sync inserting beside 50,000 dead rows took 4 s longer than on fresh tables.
        tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in models)
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {tables}")


def build_inventory(n: int) -> None:
    """n servers in groups, a quarter of them drifted, a few busy or in maintenance."""
    from datetime import UTC, datetime, timedelta

    from dashboard import inventory
    from dashboard.models import Image, Server, ServerGroup, SyncRun, search_text

    now = datetime.now(UTC)
    images = [
        Image(id=f"img-{i:03d}", name=f"win2022-office-{2026 + i // 12}.{i % 12 + 1:02d}",
              os_type="Windows", synced_at=now)
        for i in range(24)
    ]  # fmt: skip
    Image.objects.bulk_create(images)
    groups = [
        ServerGroup(id=f"grp-{g:04d}", name=f"group-{g:04d}", image_id=images[g % 24].id,
                    image_name=images[g % 24].name, synced_at=now)
        for g in range(max(5, min(50, n // 100)))
    ]  # fmt: skip
    ServerGroup.objects.bulk_create(groups, batch_size=1000)
    servers = []
    for i in range(n):
        group = groups[i % len(groups)]
        drifted = i % 4 == 0
        name, machine, ip = (
            f"aps-{i % 997:03d}-{i:06d}",
            f"APS{i:06X}",
            f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
        )
        servers.append(
            Server(
                id=f"srv-{i:06d}",
                name=name,  # not in id order: the sort has work to do
                machine_name=machine,
                group=group,
                image_id=images[(int(group.id[4:]) + drifted) % 24].id,
                status="REGISTERED",
                session_count=i % 5,
                maintain_status=i % 50 == 0,
                job_status="RUNNING" if i % 100 == 7 else "SUCCESS",
                job_time=now - timedelta(minutes=i % 10_000),
                ip_addresses=ip,
                search_text=search_text(name, machine, ip),
                drift=drifted,
                synced_at=now,
            )
        )
    Server.objects.bulk_create(servers, batch_size=2000)
    inventory.recount_figures()
    SyncRun.objects.create(state=SyncRun.State.SUCCEEDED, trigger="bench", finished_at=now)
    env.analyze("dashboard_server", "dashboard_servergroup", "dashboard_image")


def measure(http, url: str, runs: int) -> tuple[float, float, int, bytes]:
    """(median seconds, median seconds in SQL, queries, body of the last run) of GET url."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times, sql, queries, body = [], [], 0, b""
    http.get(url)  # warm caches (templates, sessions), as a running server has them
    for _ in range(runs):
        with CaptureQueriesContext(connection) as captured:
            start = time.perf_counter()
            response = http.get(url)
            times.append(time.perf_counter() - start)
        if response.status_code != 200:
            raise SystemExit(f"GET {url} answered {response.status_code}")
        sql.append(sum(float(q["time"]) for q in captured.captured_queries))
        queries, body = len(captured), response.content
    return statistics.median(times), statistics.median(sql), queries, body


def page_figures(report: Report, n: int, runs: int, vendor: str) -> None:
    import re
    from html import unescape

    from django.test import Client

    from bench.env import demo_identity

    http = Client(REMOTE_ADDR="127.0.0.1")
    with demo_identity():
        _, _, _, first = measure(http, "/servers/", 1)
        following = re.search(rb'<a href="(\?[^"]*cursor=[^"]*)"[^>]*>next', first)
        after_first = "/servers/" + unescape(following.group(1).decode()) if following else ""
        urls = {
            "servers.first_page": "/servers/",
            "servers.second_page": after_first,
            "servers.search": "/servers/?q=aps-042",
            "servers.search_sorted_by_sessions": "/servers/?q=aps-042&sort=-sessions",
            "servers.filtered_drift_group": "/servers/?drift=yes&group=grp-0012",
            "servers.last_page": "/servers/?cursor=last",
            "servers.last_page_sorted_by_job": "/servers/?sort=-job&cursor=last",
            "groups": "/groups/",
            "overview": "/",
        }
        for name, url in urls.items():
            if not url:
                continue
            median, sql, queries, body = measure(http, url, runs)
            report.figure(
                f"pages.{vendor}.{n}_servers.{name}",
                f"{ms(median)} (SQL {ms(sql)}), {queries} queries, {len(body) // 1024} KiB",
                f"<= {PAGE_BOUND_MS} ms, fixed queries",
            )


def sync_figures(report: Report, n: int, latency: int, in_flight: int) -> None:
    from django.conf import settings

    from bench import env
    from dashboard import inventory

    started = time.perf_counter()
    sim = env.start_simulator(n, 1, 60.0)
    report.note(f"simulator with {n} servers built in {time.perf_counter() - started:.1f} s")
    env.point_settings_at(sim)
    settings.SYNC_CALLS_IN_FLIGHT = in_flight
    sim.latency(latency)
    try:
        for label in ("first", "repeat"):
            client = env.new_client()
            logged = len(sim.state.requests())
            start = time.perf_counter()
            run = inventory.sync_now(client=client)
            wall = time.perf_counter() - start
            if run.state != "succeeded":
                raise SystemExit(f"sync failed: {run.error}")
            calls = client.calls
            floor = pages(calls, in_flight) * latency / 1000
            name = f"sync.{n}_servers.c{in_flight}.{label}"
            report.figure(
                f"{name}.api_calls",
                f"{calls} {dict(client.calls_by_api)}, simulator saw "
                f"{len(sim.state.requests()) - logged}",
                f"{pages(n) + 2} = ceil({n}/100) + 1 group page + 1 image page (serial count)",
            )
            report.figure(
                f"{name}.wall_time",
                f"{seconds(wall)} ({wall / floor:.2f} x floor)",
                f"<= {seconds(1.5 * floor)} = 1.5 x ceil({calls}/{in_flight}) x {latency} ms",
            )
    finally:
        sim.stop()


def main(argv: list[str]) -> int:
    args = parse(argv)
    vendor = env.use_database(args.database_url, SQLITE_PATH)
    report = Report()
    report.note(f"database: {vendor}")
    try:
        for n in [int(size) for size in args.servers.split(",")]:
            if args.sync:
                empty_inventory()
                sync_figures(report, n, args.latency, args.in_flight)
            empty_inventory()
            started = time.perf_counter()
            build_inventory(n)
            report.note(f"{n} servers stored in {time.perf_counter() - started:.1f} s")
            report.note(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
            page_figures(report, n, args.runs, vendor)
    finally:
        if not args.database_url:
            env.remove_database(SQLITE_PATH)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
