"""The benchmark's two-project figure (bench/projects.py), at a tiny size."""

import os

import pytest
from django.conf import settings

from bench import projects as two_projects
from bench.report import Report
from bench.sizes import LINE

SERVERS = 150  # two ListServers pages each
NAME = f"sync.two_projects.{SERVERS}_servers_each"


def figures(report: Report) -> dict[str, tuple[str, str]]:
    found = {}
    for line in report.lines:
        match = LINE.match(line)
        assert match, line
        found[match["name"]] = (match["value"], match["bound"])
    return found


@pytest.mark.django_db(transaction=True)  # each project syncs on a thread of its own
def test_two_projects_sync_side_by_side_each_at_its_bound_storing_its_own_servers() -> None:
    from dashboard.models import Project, Server, SyncRun

    report = Report()
    two_projects.run(report, SERVERS, latency=0, seed=3, job_seconds=60.0)
    printed = figures(report)

    for name in ("beijing", "shanghai"):
        calls, bound = printed[f"{NAME}.{name}.api_calls"]
        assert int(calls.split()[0]) == int(bound.split()[0])
        assert "'ListServers': 2" in calls
        served, own_log = printed[f"{NAME}.{name}.simulator_requests"]
        assert served == own_log.split()[0] == calls.split()[0]
        assert f"{NAME}.{name}.wall_time" in printed
    for name in ("beijing", "shanghai", "guangzhou"):  # the third one synced alone first
        stored, expected = printed[f"{NAME}.{name}.stored_servers"]
        assert stored == expected == f"{SERVERS} ({SERVERS} its own, 0 others')"
    for name in ("one_project_alone.wall_time", "pair.wall_time", "pair.wall_time.simulator"):
        assert f"{NAME}.{name}" in printed
    assert float(printed[f"{NAME}.ratio.pair_over_one_alone"][0]) > 0

    beijing, shanghai = (Project.objects.get(name=n) for n in ("beijing", "shanghai"))
    assert (beijing.region, shanghai.region) == ("cn-north-4", "cn-east-3")
    assert beijing.cloud_project_id != shanghai.cloud_project_id
    in_beijing, in_shanghai = (
        set(Server.objects.filter(project=p).values_list("id", flat=True))
        for p in (beijing, shanghai)
    )
    assert len(in_beijing) == len(in_shanghai) == SERVERS
    assert not in_beijing & in_shanghai
    runs = SyncRun.objects.filter(project__in=Project.objects.filter(configured=True))
    assert sorted(runs.values_list("project__name", "state")) == [
        ("beijing", "succeeded"),
        ("guangzhou", "succeeded"),
        ("shanghai", "succeeded"),
    ]
    # The configuration was the figure's own: nothing of it is left behind.
    assert settings.CLOUD_PROJECTS == ()
    assert not {"BENCH_BEIJING_AK", "BENCH_SHANGHAI_SK"} & set(os.environ)
