"""`python -m bench [--quick] [--sizes N,N,…]`: every figure of docs/performance.md, one a line.

Sizes (full / --quick): fleet 5,000 / 1,000 servers, rollouts of 1,000 / 200 servers,
20 / 5 polling browsers, page medians of 5 / 3 runs. `--servers N` measures a fleet of N
(rollouts of a fifth of it, at most 5,000); `--sizes` runs each size in turn and then
prints how each figure grows (bench/sizes.py). Latencies: 50 ms for the sync and the
side-by-side, 200 ms for submit and refresh. Nothing is asserted; the run stops only when
the simulator or the dashboard refuses something the benchmark needs.
`python -m bench.inventory_pages` times the inventory pages (and the sync) at 50,000 servers.
"""

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime

from bench import env, sizes
from bench.report import Report, pages, seconds

SEED = 1
JOB_SECONDS = 60.0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about a minute)")
    parser.add_argument("--skip-sdk", action="store_true", help="leave out figure 5")
    parser.add_argument("--servers", type=int, help="one fleet size instead of the default")
    parser.add_argument(
        "--sizes",
        type=_sizes,
        help="fleet sizes, e.g. 1000,5000,20000,50000: each size in turn (no SDK script), "
        "then each figure's growth",
    )
    args = parser.parse_args(argv)
    one_size = args.servers
    args.servers, args.rollout, args.browsers, args.runs = (
        (1000, 200, 5, 3) if args.quick else (5000, 1000, 20, 5)
    )
    if one_size:
        args.servers, args.rollout = one_size, sizes.rollout_size(one_size)
    args.sync_latency, args.submit_latency, args.side_latency = 50, 200, 50
    return args


def machine() -> str:
    def git(*command: str) -> str:
        found = subprocess.run(["git", *command], capture_output=True, text=True, cwd=env.ROOT)
        return found.stdout.strip()

    # BENCH_COMMIT names the commit when the tree is an export without git metadata.
    commit = os.environ.get("BENCH_COMMIT") or git("rev-parse", "--short", "HEAD")
    if commit and not os.environ.get("BENCH_COMMIT") and git("status", "--porcelain", "-uno"):
        commit += "+uncommitted"
    return (
        f"nproc={os.cpu_count()} python={platform.python_version()} "
        f"date={datetime.now(UTC):%Y-%m-%dT%H:%MZ} commit={commit or '?'}"
    )


def _sizes(text: str) -> list[int]:
    try:
        return sizes.parse_sizes(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: list[str]) -> int:
    args = parse(argv)
    if args.sizes:
        return sizes.run(args.sizes, args.quick)
    env.setup_django()
    from bench import dashboard_way as dw
    from bench import projects as two_projects

    report = Report()
    report.figure("machine", machine(), "shared and noisy: counts and ratios matter more")
    building = time.perf_counter()
    sim = env.start_simulator(args.servers, SEED, JOB_SECONDS)
    report.figure(
        f"simulator.{args.servers}_servers.start_time",
        seconds(time.perf_counter() - building),
        "none (the in-process simulator builds its fleet, jobs and sessions)",
    )
    env.point_settings_at(sim)
    began = time.perf_counter()
    try:
        # 1. inventory sync
        dw.inventory_sync(report, sim, args.servers, args.sync_latency)
        dw.servers_pages(report, args.servers, args.runs)

        # 2 to 4. plan (plan page), confirm, submit with one call in flight, refresh, pages
        server_ids, target = dw.choose_servers(args.rollout)
        report.note(f"target {target.name}: {len(server_ids)} servers, by group then name")
        first = dw.plan(server_ids, target.id)
        dw.plan_page(report, first.pk, args.rollout, args.runs)
        dw.confirm(first.pk)
        before_submit = dw.timezone.now()
        dw.submit_rollout(report, sim, first.pk, args.rollout, args.submit_latency, 1)
        dw.refresh_cycle(report, sim, first.pk, server_ids, args.browsers, args.submit_latency)
        dw.rollout_pages(report, first.pk, args.rollout, before_submit, args.runs)
        sim.latency(0)
        dw.refresh_all_moved(report, sim, first.pk, args.rollout, JOB_SECONDS)
        dw.refresh_until_final(sim, first.pk, env.new_client(), JOB_SECONDS)

        # 2 again with four calls in flight, on the same servers after a fresh fleet.
        sim.state.reset()
        dw.sync(env.new_client())
        second = dw.plan(server_ids, target.id)
        dw.confirm(second.pk)
        dw.submit_rollout(
            report, sim, second.pk, args.rollout, args.submit_latency, dw.settings_in_flight()
        )
        sim.latency(0)
        dw.refresh_until_final(sim, second.pk, env.new_client(), JOB_SECONDS)

        # 2 once more, the cloud answering at once: how much of the submit is its own work.
        sim.state.reset()
        dw.sync(env.new_client())
        third = dw.plan(server_ids, target.id)
        dw.confirm(third.pk)
        dw.submit_without_latency(report, sim, third.pk, args.rollout, dw.settings_in_flight())
        dw.refresh_until_final(sim, third.pk, env.new_client(), JOB_SECONDS)

        if not args.skip_sdk:
            side_by_side(report, sim, args, server_ids, target)

        # 6. two projects side by side (its own simulator; seed + 1: server ids are unique)
        two_projects.run(report, args.servers, args.sync_latency, SEED + 1, JOB_SECONDS)
    finally:
        sim.stop()
        env.remove_database()
    report.figure("bench.total_wall_time", seconds(time.perf_counter() - began))
    return 0


def side_by_side(report: Report, sim: env.Sim, args, server_ids: list[str], target) -> None:
    """5. The dashboard's way (sync, plan, confirm, submit, refresh until final) vs the SDK's."""
    from bench import dashboard_way as dw
    from bench import sdk_way

    latency = args.side_latency
    n = len(server_ids)

    sim.state.reset()
    sim.latency(latency)
    client = env.new_client()
    before = sim.time.reading()
    start = time.perf_counter()
    dw.sync(client)
    rollout = dw.plan(server_ids, target.id)
    dw.confirm(rollout.pk)
    from dashboard.rollouts import engine

    engine.start(rollout.pk, client, sleep=lambda s: None)
    cycles = dw.refresh_until_final(sim, rollout.pk, client, JOB_SECONDS)
    ours_wall = time.perf_counter() - start
    ours_inside = sim.time.reading() - before
    ours_calls = client.calls
    ours_logged = len(sim.state.requests())
    from dashboard.models import Rollout

    state = Rollout.objects.get(pk=rollout.pk).state
    report.figure(
        f"side_by_side.{n}_servers.dashboard.api_calls",
        f"{ours_calls} {dict(client.calls_by_api)}",
        f"{pages(args.servers) + 2} sync + {2 * pages(n, 50)} submit + refresh pages per cycle",
    )
    serial = f"{seconds(ours_calls * latency / 1000)} = every call serial at {latency} ms"
    report.figure(f"side_by_side.{n}_servers.dashboard.wall_time", seconds(ours_wall), serial)
    report.split(f"side_by_side.{n}_servers.dashboard.wall_time", ours_wall, ours_inside, serial)
    report.figure(f"side_by_side.{n}_servers.dashboard.refresh_cycles", cycles, 2)
    report.figure(f"side_by_side.{n}_servers.dashboard.final_state", state, "succeeded")
    report.figure(f"side_by_side.{n}_servers.dashboard.simulator_requests", ours_logged, ours_calls)

    sim.state.reset()
    sim.latency(latency)
    before = sim.time.reading()
    sdk = sdk_way.run(sim, server_ids, target.id, JOB_SECONDS)
    sdk_inside = sim.time.reading() - before
    sdk_calls = sum(sdk["calls"].values())
    report.figure(
        f"side_by_side.{n}_servers.sdk_script.api_calls",
        f"{sdk_calls} {sdk['calls']}",
        f"{pages(args.servers) + pages(n, 50) + n * sdk['rounds']} = "
        f"ceil({args.servers}/100) + ceil({n}/50) + {n} jobs x {sdk['rounds']} rounds",
    )
    serial = f"{seconds(sdk_calls * latency / 1000)} = every call serial at {latency} ms"
    report.figure(f"side_by_side.{n}_servers.sdk_script.wall_time", seconds(sdk["wall"]), serial)
    report.split(f"side_by_side.{n}_servers.sdk_script.wall_time", sdk["wall"], sdk_inside, serial)
    report.figure(f"side_by_side.{n}_servers.sdk_script.job_states", sdk["states"], f"{n} SUCCESS")
    report.figure(
        f"side_by_side.{n}_servers.sdk_script.simulator_requests",
        len(sim.state.requests()),
        sdk_calls,
    )
    report.figure(
        f"side_by_side.{n}_servers.ratio.api_calls_sdk_over_dashboard",
        f"{sdk_calls / ours_calls:.1f}",
        "none (higher: the dashboard makes fewer calls)",
    )
    report.figure(
        f"side_by_side.{n}_servers.ratio.wall_time_sdk_over_dashboard",
        f"{sdk['wall'] / ours_wall:.1f}",
        "none (higher: the dashboard is faster)",
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
