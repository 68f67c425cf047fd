"""Sending a chunk writes in a number of SQL statements that does not grow with the servers in
it: five servers or fifty, each ending its own way, cost the same statements. Every row is
still written only while in the state, and under the claim, it was read with.

Against the simulator over real HTTP with its manual clock, as the worker starts a rollout
(engine.start). Faults of single calls are made at the HTTP boundary (a transport adapter).
"""

import threading
from collections import Counter

import pytest
import requests
from django.db import connection
from django.db.backends.signals import connection_created
from django.test.utils import CaptureQueriesContext

from dashboard import inventory
from dashboard.cloud.client import CloudClient
from dashboard.cloud.config import from_settings
from dashboard.models import AuditEvent, Image, Rollout, RolloutServer, Server, SyncRun
from dashboard.rollouts import engine, planning
from tests.rollout_helpers import movable
from tests.sim_fixtures import cloud_settings

FEW, MANY = 5, 50  # one chunk each
# Statements of starting a one-chunk rollout: the rollout's and the wave's transitions and
# checks (about 35) and the chunk's own (claim, rows, group sizes, images, mark, audit, answer,
# audit), of which three write rollout rows.
BOUND = 45
ROW_WRITES = 3
ROW_WRITE = 'UPDATE "dashboard_rolloutserver"'
CHANGE_PATH = "/app-servers/actions/batch-change-image"
NO_SLEEP = {"sleep": lambda s: None}
REREADS = ("ListServers", "ShowServer")


class Boundary(requests.adapters.HTTPAdapter):
    """Every call reaches the simulator, except that each batch-change-image call takes the
    next of `change` (an int: answered with that status without reaching the cloud; "lose":
    sent, then its answer is lost; None: passes). `during_get` / `during_change` run just
    before each GET / batch-change-image call (as another process would act then)."""

    def __init__(self, *, change=(), during_get=None, during_change=None, fail_get=""):
        super().__init__()
        self.change = list(change)
        self.during_get = during_get
        self.during_change = during_change
        self.fail_get = fail_get  # the first GET whose URL holds this is answered 400
        self.failed_on = ""  # by which thread

    def send(self, request, *args, **kwargs):
        if request.method == "GET":
            if self.during_get is not None:
                self.during_get(request)
            if self.fail_get and self.fail_get in request.url:
                self.fail_get, self.failed_on = "", threading.current_thread().name
                return _answer(request, 400)
        if request.method == "POST" and CHANGE_PATH in request.url:
            if self.during_change is not None:
                self.during_change(request)
            fault = self.change.pop(0) if self.change else None
            if isinstance(fault, int):
                return _answer(request, fault)
            if fault == "lose":
                super().send(request, *args, **kwargs)
                raise requests.ConnectionError("connection reset after the request was sent")
        return super().send(request, *args, **kwargs)


def _answer(request, status: int) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update({"X-Request-Id": f"fault-{status}", "Retry-After": "1"})
    response._content = b'{"error_code": "WKS.00050902", "error_msg": "refused at the boundary"}'
    response.url = request.url
    response.request = request
    return response


def client_with(adapter: requests.adapters.HTTPAdapter | None = None) -> CloudClient:
    session = requests.Session()
    if adapter is not None:
        session.mount("http://", adapter)
    return CloudClient(from_settings(), session=session, sleep=lambda s: None)


def start_fleet(simulator_factory, settings, servers: int):
    sim = simulator_factory(servers=servers)
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, **cloud_settings(sim), "RETRY_DEADLINE": 5.0}
    inventory.sync_now(client=client_with())
    return sim


@pytest.fixture
def fleet(simulator_factory, settings):
    return start_fleet(simulator_factory, settings, 300)


def confirmed(target: Image, servers: list[Server]) -> Rollout:
    images = planning.image_map()
    rollout = planning.create_plan(
        created_by="otto", servers=servers, target=target, images=images, reason="statements"
    )
    assert planning.confirm(rollout.pk, "otto").confirmed
    rollout.refresh_from_db()
    return rollout


def start(rollout: Rollout, client: CloudClient) -> int:
    """The SQL statements of starting (and so sending) the rollout, as the worker does."""
    return len(start_captured(rollout, client))


def start_captured(rollout: Rollout, client: CloudClient) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        engine.start(rollout.pk, client, **NO_SLEEP)
    # A rollout that ended requested a sync: done before the next rollout ends and asks again.
    SyncRun.objects.filter(state=SyncRun.State.RUNNING).update(state=SyncRun.State.SUCCEEDED)
    return [q["sql"] for q in captured.captured_queries]


def states(rollout: Rollout) -> Counter:
    return Counter(rollout.servers.values_list("state", flat=True))


def sent(sim) -> list[str]:
    return [s for r in sim.requests("POST", CHANGE_PATH) for s in r["body"]["server_ids"]]


# --- the same statements for five servers and fifty --------------------------------------------


@pytest.mark.django_db
def test_a_chunk_of_fifty_costs_the_same_statements_as_a_chunk_of_five(fleet) -> None:
    target, servers = movable(FEW + MANY)
    few, many = confirmed(target, servers[:FEW]), confirmed(target, servers[FEW : FEW + MANY])

    statements = [start_captured(rollout, client_with()) for rollout in (few, many)]

    counts = [len(s) for s in statements]
    assert counts[0] == counts[1] <= BOUND, counts
    for sqls in statements:
        assert len([sql for sql in sqls if sql.startswith(ROW_WRITE)]) == ROW_WRITES
    jobs = {j.server_id: j.id for j in fleet.state.jobs.values() if j.target_image_id}
    for rollout, size in ((few, FEW), (many, MANY)):
        assert states(rollout) == {"waiting": size}
        rows = list(rollout.servers.all())
        assert {r.job_id for r in rows} == {jobs[r.server_id] for r in rows}  # each its own
        # Each row's image as read just before the call (for a revert), and one attempt.
        assert {(r.send_attempts, r.previous_image_id == r.from_image_id) for r in rows} == {
            (1, True)
        }
        audited = AuditEvent.objects.filter(rollout=rollout, action__startswith="api.batch_change")
        assert sorted(audited.values_list("action", flat=True)) == [
            "api.batch_change_image",
            "api.batch_change_image.intent",
        ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "ends"),
    [
        ([400], {"failed"}),  # the cloud refused the whole call
        (["lose"], {"unknown"}),  # sent, its answer lost: reconciled later, never resent
        ([429], {"waiting"}),  # throttled: sent again after the wait
        ([503], {"unknown"}),
    ],
)
def test_a_call_ending_any_way_costs_the_same_statements_for_five_servers_and_fifty(
    fleet, change, ends
) -> None:
    target, servers = movable(FEW + MANY)
    few, many = confirmed(target, servers[:FEW]), confirmed(target, servers[FEW : FEW + MANY])

    counts = [start(rollout, client_with(Boundary(change=change))) for rollout in (few, many)]

    assert counts[0] == counts[1], counts
    for rollout, size in ((few, FEW), (many, MANY)):
        assert states(rollout) == {state: size for state in ends}
    if ends == {"failed"}:
        row = many.servers.first()
        assert (row.error_code, row.request_id) == ("WKS.00050902", "fault-400")
        assert row.finished_at is not None


@pytest.mark.django_db
def test_rows_ending_each_their_own_way_in_one_chunk_cost_the_same_statements(fleet) -> None:
    """In each chunk a fifth is already on the target when re-read (skipped), a fifth has gone
    (failed, not sent), a fifth is refused by the cloud each with its own code, the rest are
    accepted each with its own job."""
    target, servers = movable(FEW + MANY)
    rollouts = [confirmed(target, servers[:FEW]), confirmed(target, servers[FEW : FEW + MANY])]
    fates: dict[str, str] = {}
    for rollout in rollouts:
        ids = list(rollout.servers.order_by("pk").values_list("server_id", flat=True))
        for n, server_id in enumerate(ids):
            fates[server_id] = ("skipped", "gone", "refused", "accepted", "accepted")[n % 5]
            if fates[server_id] == "skipped":
                fleet.state.patch_server(server_id, image_id=target.id)
            elif fates[server_id] == "gone":
                fleet.state.delete_server(server_id)
            elif fates[server_id] == "refused":
                fleet.state.reject(server_id, f"WKS.0012990{n % 3}")

    counts = [start(rollout, client_with()) for rollout in rollouts]

    assert counts[0] == counts[1], counts
    jobs = {j.server_id: j.id for j in fleet.state.jobs.values() if j.target_image_id}
    assert sorted(sent(fleet)) == sorted(
        s for s, f in fates.items() if f in ("refused", "accepted")
    )
    for rollout in rollouts:
        for n, row in enumerate(rollout.servers.order_by("pk")):
            fate = fates[row.server_id]
            if fate == "skipped":
                assert (row.state, row.error_code) == ("skipped", "same_image")
            elif fate == "gone":
                assert row.state == "failed" and row.error_message.startswith("Not sent")
                assert row.server_id not in sent(fleet)
            elif fate == "refused":
                assert (row.state, row.error_code) == ("failed", f"WKS.0012990{n % 3}")
            else:
                assert (row.state, row.job_id) == ("waiting", jobs[row.server_id])
            assert row.finished_at is not None or row.state == "waiting"


# --- still conditional, row by row --------------------------------------------------------------


@pytest.mark.django_db
def test_rows_moved_by_others_while_the_chunk_is_re_read_are_neither_sent_nor_overwritten(
    fleet,
) -> None:
    target, servers = movable(MANY)
    rollout = confirmed(target, servers[:MANY])
    rows = list(rollout.servers.order_by("pk"))
    gone, taken, cancelled = rows[0], rows[1], rows[2]
    fleet.state.delete_server(gone.server_id)  # would be failed at the re-read
    done = []

    def others_act(request) -> None:
        # The chunk is claimed; recovery hands one row to another worker and a cancel ends
        # another, as the chunk's servers are being re-read.
        if not done:
            done.append(True)
            RolloutServer.objects.filter(pk=taken.pk).update(claim="another-worker-1")
            RolloutServer.objects.filter(pk__in=[cancelled.pk, gone.pk]).update(
                state="cancelled", error_message="cancelled meanwhile"
            )

    engine.start(rollout.pk, client_with(Boundary(during_get=others_act)), **NO_SLEEP)

    after = {row.pk: row for row in rollout.servers.all()}
    assert (after[taken.pk].state, after[taken.pk].claim) == ("submitting", "another-worker-1")
    assert after[taken.pk].send_attempts == 0
    for row in (cancelled, gone):
        assert (after[row.pk].state, after[row.pk].error_message) == (
            "cancelled",
            "cancelled meanwhile",
        )
    assert not {taken.server_id, cancelled.server_id, gone.server_id} & set(sent(fleet))
    assert Counter(r.state for r in after.values()) == {
        "waiting": MANY - 3,
        "cancelled": 2,
        "submitting": 1,
    }


@pytest.mark.django_db
def test_rows_moved_by_others_while_the_call_is_out_keep_what_they_were_given(fleet) -> None:
    target, servers = movable(MANY)
    rollout = confirmed(target, servers[:MANY])
    moved = list(rollout.servers.order_by("pk").values_list("pk", flat=True)[:3])

    def recovery_acts(request) -> None:
        # The rows are marked sending; recovery decides the worker stopped while sending.
        assert set(RolloutServer.objects.filter(pk__in=moved).values_list("state", flat=True)) == {
            "sending"
        }
        RolloutServer.objects.filter(pk__in=moved).update(
            state="unknown", error_message="reconciling"
        )

    engine.start(rollout.pk, client_with(Boundary(during_change=recovery_acts)), **NO_SLEEP)

    rows = {row.pk: row for row in rollout.servers.all()}
    assert {(rows[pk].state, rows[pk].error_message, rows[pk].job_id) for pk in moved} == {
        ("unknown", "reconciling", "")
    }
    assert Counter(r.state for r in rows.values()) == {"waiting": MANY - 3, "unknown": 3}


# --- several calls in flight: the listings are read ahead, each once ----------------------------


def statements_of_every_thread():
    """Count the SQL statements of every connection, the sending threads' too."""
    counted = Counter()
    lock = threading.Lock()

    def count(execute, sql, params, many, context):
        with lock:
            counted[threading.current_thread().name.split("_")[0]] += 1
        return execute(sql, params, many, context)

    def watch(sender, connection, **kwargs) -> None:
        if count not in connection.execute_wrappers:  # sent again on each reconnection
            connection.execute_wrappers.append(count)

    return counted, count, watch


def send_at(sim, settings, in_flight: int, size: int = 300):
    """A rollout of `size` servers sent with `in_flight` calls at once: the rollout, the
    client and the statements counted per thread."""
    settings.ROLLOUT_CALLS_IN_FLIGHT = in_flight
    target, servers = movable(size)
    rollout = confirmed(target, servers[:size])
    client = client_with()
    counted, count, watch = statements_of_every_thread()
    connection_created.connect(watch)
    connection.execute_wrappers.append(count)
    try:
        engine.start(rollout.pk, client, **NO_SLEEP)
    finally:
        connection.execute_wrappers.remove(count)
        connection_created.disconnect(watch)
    return rollout, client, counted


@pytest.mark.django_db(transaction=True)
def test_with_calls_in_flight_the_re_reads_are_the_same_calls_and_every_server_is_sent_once(
    simulator_factory, settings
) -> None:
    sim = start_fleet(simulator_factory, settings, 1000)
    runs = {}
    for in_flight in (1, 4):
        requests_before = len(sent(sim))
        runs[in_flight] = send_at(sim, settings, in_flight)
        rollout = runs[in_flight][0]
        assert states(rollout) == {"waiting": 300}
        ids = sorted(rollout.servers.values_list("server_id", flat=True))
        assert sorted(sent(sim)[requests_before:]) == ids  # each server once
        # The same fleet again for the next run: the servers freed, the cloud as it was.
        rollout.servers.update(state="cancelled")
        sim.state.reset()
        inventory.sync_now(client=client_with())

    calls = {c: {api: run[1].calls_by_api[api] for api in REREADS} for c, run in runs.items()}
    assert calls[1] == calls[4] and calls[4]["ListServers"] >= 3, calls
    assert runs[4][1].calls_by_api["BatchChangeServerImage"] == 6
    threads = runs[4][2]
    assert sum(n for name, n in threads.items() if name.startswith("submit")) > 6
    # The same statements in all as with one call at a time, give or take the wave's own.
    assert abs(sum(threads.values()) - sum(runs[1][2].values())) <= 2, (runs[1][2], threads)


@pytest.mark.django_db(transaction=True)
def test_a_listing_read_ahead_that_failed_defers_one_chunk_and_nothing_is_sent_twice(
    simulator_factory, settings
) -> None:
    settings.ROLLOUT_CALLS_IN_FLIGHT = 4
    sim = start_fleet(simulator_factory, settings, 1000)
    target, servers = movable(300)
    rollout = confirmed(target, servers[:300])
    # The group the third chunk holds most of (so lists whole): its first listing is refused.
    third = Counter(rollout.servers.filter(chunk=3).values_list("group_id", flat=True))
    group = third.most_common(1)[0][0]
    boundary = Boundary(fail_get=f"server_group_id={group}")

    state = engine.start(rollout.pk, client_with(boundary), **NO_SLEEP)

    assert boundary.failed_on.startswith("submit-read")  # read ahead, not by a chunk itself
    after = states(rollout)
    assert state == "running" and after["pending"] <= 50 and after["waiting"] >= 250, after
    assert AuditEvent.objects.filter(rollout=rollout, action="rows.send_deferred").count() == 1
    engine.tick(rollout.pk, client_with(), **NO_SLEEP)
    assert states(rollout) == {"waiting": 300}
    assert sorted(sent(sim)) == sorted(rollout.servers.values_list("server_id", flat=True))
    assert Rollout.objects.get(pk=rollout.pk).state == Rollout.State.RUNNING
