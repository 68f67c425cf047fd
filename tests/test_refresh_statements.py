"""A refresh tick writes in a number of SQL statements that does not grow with the rows that
moved: ten rows or a thousand, each with values of its own, cost the same statements.

Against the simulator over real HTTP with its manual clock, as the worker runs a tick
(engine.tick). Faults of single calls are made at the HTTP boundary (a transport adapter).
"""

import sqlite3
from collections import Counter

import pytest
import requests
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard import inventory
from dashboard.cloud.client import CloudClient
from dashboard.cloud.config import from_settings
from dashboard.models import AuditEvent, Image, Rollout, RolloutServer, Server
from dashboard.rollouts import engine, planning
from tests.http_boundary import Overlapping
from tests.rollout_helpers import movable
from tests.sim_fixtures import cloud_settings

pytestmark = pytest.mark.django_db

BOUND = 20  # statements of one tick, however many rows moved
FEW, MANY = 10, 1000
CHANGE_PATH = "/app-servers/actions/batch-change-image"
NO_SLEEP = {"sleep": lambda s: None}
ROW_WRITE = 'UPDATE "dashboard_rolloutserver"'


class Boundary(requests.adapters.HTTPAdapter):
    """Every call reaches the simulator; a POST to `lose` has its answer lost after it was
    sent, and `before_get` runs just before each GET (as another process would act then)."""

    def __init__(self, *, lose: str = "", before_get=None):
        super().__init__()
        self.lose = lose
        self.before_get = before_get

    def send(self, request, *args, **kwargs):
        if request.method == "GET" and self.before_get is not None:
            self.before_get(request)
        answer = super().send(request, *args, **kwargs)
        if self.lose and request.method == "POST" and self.lose in request.url:
            raise requests.ConnectionError("connection reset after the request was sent")
        return answer


def client_with(adapter: requests.adapters.HTTPAdapter | None = None) -> CloudClient:
    session = requests.Session()
    if adapter is not None:
        session.mount("http://", adapter)
    return CloudClient(from_settings(), session=session, sleep=lambda s: None)


@pytest.fixture
def fleet(simulator_factory, settings):
    """A synced fleet where more than FEW + MANY servers may move to one image."""
    sim = simulator_factory(servers=2000)
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, **cloud_settings(sim), "RETRY_DEADLINE": 5.0}
    inventory.sync_now(client=client_with())
    return sim


def started(target: Image, servers: list[Server], client: CloudClient) -> Rollout:
    """A confirmed one-wave rollout of `servers`, started (sent) through `client`."""
    images = planning.image_map()
    rollout = planning.create_plan(
        created_by="otto", servers=servers, target=target, images=images, reason="statements"
    )
    assert planning.confirm(rollout.pk, "otto").confirmed
    engine.start(rollout.pk, client, **NO_SLEEP)
    rollout.refresh_from_db()
    return rollout


def tick(rollout: Rollout, client: CloudClient) -> int:
    """The SQL statements of one tick as the worker runs it."""
    with CaptureQueriesContext(connection) as captured:
        engine.tick(rollout.pk, client, **NO_SLEEP)
    return len(captured)


def states(rollout: Rollout) -> Counter:
    return Counter(rollout.servers.values_list("state", flat=True))


def set_jobs(sim, failing: set[str], slow: set[str]) -> None:
    """The change jobs of `failing` servers fail, each with a message naming its server; those
    of `slow` servers take three times as long."""
    with sim.state.lock:
        for job in sim.state.jobs.values():
            if job.target_image_id and job.server_id in failing:
                job.fails, job.error_code = True, "WKS.00129901"
                job.error_message = f"{job.server_name} could not be rebuilt."
            if job.target_image_id and job.server_id in slow:
                job.duration *= 3


def test_adopting_every_lost_answer_costs_the_same_statements_for_ten_rows_and_a_thousand(
    fleet,
) -> None:
    target, servers = movable(FEW + MANY)
    lost = client_with(Boundary(lose=CHANGE_PATH))  # every chunk sent, every answer lost
    few = started(target, servers[:FEW], lost)
    many = started(target, servers[FEW : FEW + MANY], lost)
    assert states(few) == {"unknown": FEW} and states(many) == {"unknown": MANY}

    counts = [tick(rollout, client_with()) for rollout in (few, many)]

    assert counts[0] == counts[1] <= BOUND, counts
    for rollout, size in ((few, FEW), (many, MANY)):
        assert states(rollout) == {"waiting": size}
        # Each row took its own server's job: a value per row, still one write for them all.
        jobs = dict(rollout.servers.values_list("server_id", "job_id"))
        shown = {j.server_id: j.id for j in fleet.state.jobs.values() if j.target_image_id}
        assert jobs == {server_id: shown[server_id] for server_id in jobs}
        assert len(set(jobs.values())) == size
        assert AuditEvent.objects.filter(rollout=rollout, action="rows.reconciled").count() == 1


def test_every_job_moving_each_its_own_way_costs_the_same_statements_for_ten_and_a_thousand(
    fleet,
) -> None:
    target, servers = movable(FEW + MANY)
    few = started(target, servers[:FEW], client_with())
    many = started(target, servers[FEW : FEW + MANY], client_with())
    ids = [s.id for s in servers[: FEW + MANY]]
    failing, slow = set(ids[0::3]), set(ids[1::3])  # the rest succeed
    set_jobs(fleet, failing, slow)
    fleet.advance(fleet.config.job_seconds + 1)
    checked = timezone.now()

    counts = [tick(rollout, client_with()) for rollout in (few, many)]

    assert counts[0] == counts[1] <= BOUND, counts
    for rollout in (few, many):
        rows = list(rollout.servers.all())
        assert all(row.updated_at >= checked for row in rows)  # every row moved
        for row in rows:
            if row.server_id in failing:
                assert (row.state, row.error_code, row.error_message) == (
                    "failed",
                    "WKS.00129901",
                    f"{row.server_name} could not be rebuilt.",
                )
                assert row.finished_at >= checked
            elif row.server_id in slow:
                assert (row.state, row.started_at >= checked) == ("running", True)
                assert row.finished_at is None
            else:
                assert (row.state, row.verified, row.error_message) == ("succeeded", True, "")
        assert Rollout.objects.get(pk=rollout.pk).state == Rollout.State.RUNNING


def test_a_row_another_worker_moved_during_the_tick_is_not_overwritten(fleet) -> None:
    target, servers = movable(FEW + MANY)
    rollout = started(target, servers[:FEW], client_with())
    fleet.advance(fleet.config.job_seconds + 1)
    taken = rollout.servers.order_by("pk")[:3]
    taken_ids = [row.pk for row in taken]

    def another_worker_moves_them(request) -> None:
        # The tick's first call comes after it read its rows and before it writes them.
        RolloutServer.objects.filter(pk__in=taken_ids, state="waiting").update(
            state="running", error_message="moved by another worker"
        )

    engine.tick(rollout.pk, client_with(Boundary(before_get=another_worker_moves_them)))

    rows = {row.pk: row for row in rollout.servers.all()}
    assert {rows[pk].state for pk in taken_ids} == {"running"}
    assert {rows[pk].error_message for pk in taken_ids} == {"moved by another worker"}
    others = [row for pk, row in rows.items() if pk not in taken_ids]
    assert {row.state for row in others} == {"succeeded"}


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's limit of bound parameters")
def test_past_the_databases_parameter_limit_the_rows_are_written_in_batches(fleet) -> None:
    target, servers = movable(FEW + MANY)
    rollout = started(target, servers[:40], client_with(Boundary(lose=CHANGE_PATH)))
    assert states(rollout) == {"unknown": 40}
    connection.ensure_connection()
    raw = connection.connection
    limit = raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 250)  # room for about ten rows
    try:
        with CaptureQueriesContext(connection) as captured:
            engine.tick(rollout.pk, client_with(), **NO_SLEEP)
    finally:
        raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)

    writes = [q for q in captured.captured_queries if q["sql"].startswith(ROW_WRITE)]
    assert 2 < len(writes) < 20  # the moved rows in several statements, not one each
    jobs = dict(rollout.servers.values_list("server_id", "job_id"))
    shown = {j.server_id: j.id for j in fleet.state.jobs.values() if j.target_image_id}
    assert states(rollout) == {"waiting": 40} and jobs == {s: shown[s] for s in jobs}


def test_a_wave_failing_together_has_its_jobs_read_several_at_once_each_once(
    fleet, settings
) -> None:
    target, servers = movable(FEW + MANY)
    rollout = started(target, servers[:60], client_with())
    failing = {s.id for s in servers[:60:2]}
    set_jobs(fleet, failing, set())
    fleet.advance(fleet.config.job_seconds + 1)
    settings.ROLLOUT_CALLS_IN_FLIGHT = 4  # the rows were sent one call at a time, as tests do
    adapter = Overlapping()

    engine.tick(rollout.pk, client_with(adapter), **NO_SLEEP)

    assert adapter.calls_to("/job/") == len(failing)  # one ShowJobDetail per failed job
    assert 2 <= adapter.most <= 4
    for row in rollout.servers.all():
        if row.server_id in failing:
            assert (row.state, row.error_message) == (
                "failed",
                f"{row.server_name} could not be rebuilt.",
            )
        else:
            assert row.state == "succeeded"
