"""The rollout engine under cloud faults: every row ends explained, nothing is sent twice, the
tick chain never ends while there is work, and every cloud write is audited before and after.

Against the simulator over real HTTP with its manual clock; faults of a single call are made at
the HTTP boundary (a transport adapter), the rest with the simulator's own fault knobs.
"""

import contextlib
import threading
from collections import Counter
from datetime import timedelta

import pytest
import requests
from django.db import connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from dashboard import inventory
from dashboard.cloud.client import CloudClient
from dashboard.cloud.config import from_settings
from dashboard.models import AuditEvent, Rollout, RolloutServer, Server, ServerGroup
from dashboard.rollouts import control, engine, planning, queue, recovery
from dashboard.rollouts.reread import reread_servers
from tests.sim_fixtures import cloud_settings

pytestmark = pytest.mark.django_db

CHANGE_PATH = "/app-servers/actions/batch-change-image"
MAINT_PATH = "/app-servers/actions/batch-maint"
NO_SLEEP = {"sleep": lambda s: None}


class Faulty(requests.adapters.HTTPAdapter):
    """Faults of chosen calls at the HTTP boundary; everything else reaches the simulator.

    `rules`: (method, path fragment) → a list of faults, one used per matching call: an int
    status answered without reaching the cloud, "lose" (sent, then the answer is lost), or
    None (passes). `seen` records, per matching call, what `on_call` returned just before it.
    """

    def __init__(self, rules: dict, on_call=None):
        super().__init__()
        self.rules = {key: list(value) for key, value in rules.items()}
        self.on_call = on_call
        self.seen: list = []

    def send(self, request, *args, **kwargs):
        for (method, fragment), faults in self.rules.items():
            if request.method == method and fragment in request.url:
                if self.on_call is not None:
                    self.seen.append(self.on_call(request))
                fault = faults.pop(0) if faults else None
                if fault == "lose":
                    super().send(request, *args, **kwargs)
                    raise requests.ConnectionError("connection reset after the request was sent")
                if isinstance(fault, int):
                    return _answer(request, fault)
        return super().send(request, *args, **kwargs)


def _answer(request, status: int) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update({"X-Request-Id": f"fault-{status}", "Retry-After": "1"})
    response._content = b'{"error_code": "WKS.00050902", "error_msg": "unavailable"}'
    response.url = request.url
    response.request = request
    return response


def client_with(adapter=None) -> CloudClient:
    session = requests.Session()
    if adapter is not None:
        session.mount("http://", adapter)
    return CloudClient(from_settings(), session=session, sleep=lambda s: None)


@pytest.fixture
def fleet(simulator_factory, settings):
    sim = simulator_factory(servers=120)
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, **cloud_settings(sim), "RETRY_DEADLINE": 5.0}
    inventory.sync_now(client=client_with())
    return sim


def confirmed(*, count: int | None = None, use_maintenance: bool = False, **safety) -> Rollout:
    """A confirmed rollout of the drifted servers of the most common group image."""
    drifted = list(Server.objects.filter(drift=True).select_related("group"))
    image = Counter(s.group.image_id for s in drifted).most_common(1)[0][0]
    chosen = [s for s in drifted if s.group.image_id == image][:count]
    images = planning.image_map()
    rollout = planning.create_plan(
        created_by="otto",
        servers=chosen,
        target=images[image],
        images=images,
        reason="reliability",
        use_maintenance=use_maintenance,
        safety=planning.Safety(**safety),
    )
    assert planning.confirm(rollout.pk, "otto").confirmed
    rollout.refresh_from_db()
    return rollout


def changing(rollout: Rollout):
    return rollout.servers.filter(verdict="change")


def states(rollout: Rollout) -> Counter:
    return Counter(changing(rollout).values_list("state", flat=True))


def sent_ids(sim) -> list[str]:
    return [
        s
        for r in sim.requests("POST", CHANGE_PATH)
        if r.get("status") == 200
        for s in r["body"]["server_ids"]
    ]


def audits(action: str, rollout: Rollout) -> list[dict]:
    return [
        e.details
        for e in AuditEvent.objects.filter(action=action, rollout=rollout).order_by("at", "id")
    ]


def age(rows, seconds: float) -> None:
    """As if the rows had been sent `seconds` ago."""
    rows.update(submitted_at=timezone.now() - timedelta(seconds=seconds))


# --- 1. reconciled rows end exactly as tracking ends them ------------------------------------


def test_reconciled_rows_end_with_codes_messages_times_and_verification(fleet):
    rollout = confirmed(count=6)
    engine.start(rollout.pk, client_with(Faulty({("POST", CHANGE_PATH): ["lose"]})), **NO_SLEEP)
    assert states(rollout) == {"unknown": 6}
    failing = changing(rollout).first()
    job = fleet.state.jobs[fleet.state.last_job[failing.server_id]]
    job.fails, job.error_code, job.error_message = True, "WKS.00150001", "disk full"

    fleet.advance(3600)
    engine.tick(rollout.pk, client_with(), **NO_SLEEP)

    failed = RolloutServer.objects.get(pk=failing.pk)
    assert (failed.state, failed.error_code, failed.error_message) == (
        "failed",
        "WKS.00150001",
        "disk full",
    )
    assert failed.finished_at is not None and failed.job_id
    for row in changing(rollout).exclude(pk=failing.pk):
        assert row.state == "succeeded"
        assert row.verified is True
        assert row.finished_at is not None
        assert row.error_code == row.error_message == ""
        assert row.job_id == fleet.state.last_job[row.server_id]
    (adopted,) = audits("rows.reconciled", rollout)
    assert sorted(adopted["adopted"]) == sorted(
        changing(rollout).values_list("server_id", flat=True)
    )
    assert len(sent_ids(fleet)) == 6  # never resent


# --- 9. per-row job lookups, sub-jobs of a shared job, not-found on re-read ------------------


def test_a_server_of_a_shared_job_is_judged_by_its_own_sub_job(fleet):
    fleet.state.set_faults(shared_batch_job=True)
    rollout = confirmed(count=4)
    engine.start(rollout.pk, client_with(), **NO_SLEEP)
    rows = list(changing(rollout))
    assert len({r.job_id for r in rows}) == 1  # one job for the call
    batch = rows[0].job_id
    other, gone = rows[0], rows[1]
    member = next(
        fleet.state.jobs[j]
        for j in fleet.state.batches[batch]
        if fleet.state.jobs[j].server_id == other.server_id
    )
    member.fails, member.error_code, member.error_message = True, "WKS.00150001", "disk full"
    fleet.advance(3600)
    fleet.state.delete_server(
        gone.server_id
    )  # its own sub-job succeeded; the job as a whole failed

    engine.tick(rollout.pk, client_with(), **NO_SLEEP)

    gone_row = RolloutServer.objects.get(pk=gone.pk)
    assert gone_row.state == "succeeded", gone_row.error_message
    assert RolloutServer.objects.get(pk=other.pk).error_code == "WKS.00150001"


def test_one_failed_job_lookup_does_not_stop_the_refresh_of_the_others(fleet):
    rollout = confirmed(count=4)
    engine.start(rollout.pk, client_with(), **NO_SLEEP)
    rows = list(changing(rollout))
    fleet.advance(3600)
    for row in rows[:2]:  # both need ShowJobDetail now
        fleet.state.delete_server(row.server_id)
    broken = Faulty({("GET", f"/job/{rows[0].job_id}"): [500] * 20})

    engine.tick(rollout.pk, client_with(broken), **NO_SLEEP)

    assert RolloutServer.objects.get(pk=rows[0].pk).state == "waiting"  # tried again later
    assert RolloutServer.objects.get(pk=rows[1].pk).state == "succeeded"
    assert {r.state for r in changing(rollout).filter(pk__in=[r.pk for r in rows[2:]])} == {
        "succeeded"
    }
    assert Rollout.objects.get(pk=rollout.pk).cloud_unreachable_since is not None


def test_a_re_read_takes_any_not_found_answer_as_a_gone_server(fleet):
    rollout = confirmed(count=1)
    row = changing(rollout).get()
    Server.objects.filter(group_id=row.group_id).exclude(pk=row.server_id).update(gone=True)
    refused = Faulty({("GET", f"/app-servers/{row.server_id}"): [400]})
    assert reread_servers(client_with(refused), [row]) == {}


# --- 2. recovery of every non-final rollout, slow ticks while stopped -------------------------


def _runs_at(task: DBTaskResult):
    """When the task may run; None for "at once" (the backend stores a far-future sentinel)."""
    return None if task.run_after.year == 9999 else task.run_after


def _last_tick() -> DBTaskResult:
    return DBTaskResult.objects.filter(task_path__endswith="tick_rollout").order_by("-enqueued_at")[
        0
    ]


def test_cancel_makes_progress_though_the_tick_chain_died(
    fleet, django_capture_on_commit_callbacks
):
    rollout = confirmed(count=4)
    engine.start(rollout.pk, client_with(), **NO_SLEEP)
    control.pause(rollout.pk)
    DBTaskResult.objects.all().delete()  # its worker died with the chain

    with django_capture_on_commit_callbacks(execute=True):
        control.cancel(rollout.pk, by="otto")

    tick = _last_tick()
    assert _runs_at(tick) is None or _runs_at(tick) <= timezone.now()
    fleet.advance(3600)
    queue.tick_rollout.call(rollout.pk, Rollout.objects.get(pk=rollout.pk).refresh_token)
    rollout.refresh_from_db()
    assert rollout.state == "cancelled"
    assert set(states(rollout)) == {"succeeded"}  # tracked to the end: the servers are free


def test_a_halted_rollout_with_nothing_in_flight_ticks_slowly(fleet, settings):
    settings.ROLLOUT_IDLE_TICK_SECONDS = 45
    rollout = confirmed(count=6, canary="2", failure_budget="0")
    engine.start(rollout.pk, client_with(), **NO_SLEEP)
    canary = list(changing(rollout).filter(wave=1))
    job = fleet.state.jobs[fleet.state.last_job[canary[0].server_id]]
    job.fails = True
    fleet.advance(3600)
    token = Rollout.objects.get(pk=rollout.pk).refresh_token

    assert queue.tick_rollout.call(rollout.pk, token) in ("running", "halted")
    if Rollout.objects.get(pk=rollout.pk).state == "running":  # the budget is read next tick
        queue.tick_rollout.call(rollout.pk, Rollout.objects.get(pk=rollout.pk).refresh_token)
    assert Rollout.objects.get(pk=rollout.pk).state == "halted"
    queue.tick_rollout.call(rollout.pk, Rollout.objects.get(pk=rollout.pk).refresh_token)

    tick = _last_tick()
    assert _runs_at(tick) >= timezone.now() + timedelta(seconds=40)
    assert recovery.quiet_after() > timedelta(seconds=45)


def test_a_halted_rollout_still_tracks_its_jobs_at_the_usual_pace(fleet):
    rollout = confirmed(count=4)
    engine.start(rollout.pk, client_with(), **NO_SLEEP)
    engine.halt(rollout)
    step = engine.step(rollout.pk, client_with(), **NO_SLEEP)
    assert step.state == "halted" and step.retry_in is None  # jobs in flight: usual interval
    fleet.advance(3600)
    engine.step(rollout.pk, client_with(), **NO_SLEEP)
    assert set(states(rollout)) == {"succeeded"}


def test_recovery_restarts_the_chain_of_a_paused_rollout_whose_worker_died(fleet):
    rollout = confirmed(count=4)
    engine.start(rollout.pk, client_with(), **NO_SLEEP)
    control.pause(rollout.pk)
    DBTaskResult.objects.all().delete()
    long_ago = timezone.now() - recovery.quiet_after() - timedelta(seconds=5)
    Rollout.objects.filter(pk=rollout.pk).update(updated_at=long_ago)
    RolloutServer.objects.filter(rollout=rollout).update(updated_at=long_ago)

    recovery.resume_stalled()

    assert DBTaskResult.objects.filter(task_path__endswith="tick_rollout").count() == 1


# --- 3. a cloud outage in any step keeps the chain alive ------------------------------------


def _outage_at_send(fleet, settings):
    return confirmed(count=6)


def _outage_at_maintenance(fleet, settings):
    return confirmed(count=6, use_maintenance=True)


def _outage_at_drain(fleet, settings):
    return confirmed(count=6, session_policy="wait", session_wait_seconds=600)


OUTAGES = {
    "send": _outage_at_send,
    "maintenance": _outage_at_maintenance,
    "drain": _outage_at_drain,
}


@pytest.mark.parametrize("step", list(OUTAGES))
def test_a_cloud_outage_at_each_step_keeps_the_chain_and_sends_nothing_twice(
    fleet, settings, step, client
):
    rollout = OUTAGES[step](fleet, settings)
    fleet.state.set_faults(error_rate=1.0)

    first = engine.begin(rollout.pk, client_with(), **NO_SLEEP)

    rollout.refresh_from_db()
    assert first.state == "running"
    assert first.retry_in is not None and first.retry_in >= timedelta(seconds=1)
    assert rollout.cloud_unreachable_since is not None
    assert set(states(rollout)) == {"pending"}  # nothing claimed is left behind
    later = engine.step(rollout.pk, client_with(), **NO_SLEEP)
    assert later.retry_in >= first.retry_in

    fleet.state.set_faults(error_rate=0.0)
    for _ in range(3):
        engine.step(rollout.pk, client_with(), **NO_SLEEP)
        if step == "drain":
            Rollout.objects.filter(pk=rollout.pk)  # sessions may end: the wave goes on
    rollout.refresh_from_db()
    assert rollout.cloud_unreachable_since is None
    if step != "drain":
        assert set(states(rollout)) <= {"waiting", "running"}
    assert not changing(rollout).filter(state="failed").exists()
    sent = sent_ids(fleet)
    assert len(sent) == len(set(sent))


def test_the_rollout_page_says_since_when_the_cloud_is_unreachable(fleet, operator_client):
    rollout = confirmed(count=2)
    fleet.state.set_faults(error_rate=1.0)
    engine.begin(rollout.pk, client_with(), **NO_SLEEP)
    page = operator_client.get(f"/rollouts/{rollout.pk}/")
    assert b"Cloud unreachable since" in page.content


def test_a_logoff_the_cloud_refused_is_tried_again_never_skipped(fleet, settings):
    rollout = confirmed(
        count=4, session_policy="wait_logoff", session_wait_seconds=0, logoff_delay_seconds=60
    )
    row = changing(rollout).first()
    fleet.state.patch_server(row.server_id, session_count=2)
    refused = Faulty({("POST", "logoff"): [500] * 20, ("DELETE", "session"): [500] * 20})
    engine.begin(rollout.pk, client_with(refused), **NO_SLEEP)
    assert rollout.waves.get(number=1).state == "draining"  # not sent to unwarned users
    assert sent_ids(fleet) == []
    assert audits("api.logoff_sessions.intent", rollout)
    assert [e["status"] for e in audits("api.logoff_sessions", rollout)]


# --- 5. "sending" only just before the call ------------------------------------------------


def _row_states(rollout_id):
    def look(request):
        return (
            request.method,
            set(
                RolloutServer.objects.filter(rollout_id=rollout_id, verdict="change").values_list(
                    "state", flat=True
                )
            ),
        )

    return look


def test_rows_are_marked_sending_only_after_the_re_read(fleet):
    rollout = confirmed(count=3)
    watch = Faulty({("GET", "/app-servers"): [None] * 50, ("POST", CHANGE_PATH): [None]})
    watch.on_call = _row_states(rollout.pk)
    engine.start(rollout.pk, client_with(watch), **NO_SLEEP)
    posts = [s for m, s in watch.seen if m == "POST"]
    reads = [s for m, s in watch.seen if m == "GET" and "submitting" in s]
    assert reads, "the re-read happens while the rows are claimed"
    assert posts == [{"sending"}]
    intents = audits("api.batch_change_image.intent", rollout)
    assert len(intents) == 1 and intents[0]["attempt"] == 1
    (outcome,) = audits("api.batch_change_image", rollout)
    assert outcome["call"] == intents[0]["call"] and outcome["request_id"]


def test_a_crash_before_the_mark_returns_rows_to_pending_and_they_are_sent_once(fleet):
    rollout = confirmed(count=4)
    Rollout.objects.filter(pk=rollout.pk).update(state="running")
    changing(rollout).update(state="submitting", claim="gone-host-1-dead")
    changing(rollout).update(updated_at=timezone.now() - timedelta(minutes=10))

    engine.tick(rollout.pk, client_with(), **NO_SLEEP)

    assert set(states(rollout)) == {"waiting"}
    assert sorted(sent_ids(fleet)) == sorted(changing(rollout).values_list("server_id", flat=True))
    (orphaned,) = audits("rows.orphaned", rollout)
    assert len(orphaned["never_sent_back_to_pending"]) == 4


def test_a_crash_after_the_mark_is_reconciled_never_resent(fleet):
    rollout = confirmed(count=4)
    engine.start(rollout.pk, client_with(Faulty({("POST", CHANGE_PATH): ["lose"]})), **NO_SLEEP)
    # As if the worker died in the call: the rows stayed `sending`.
    changing(rollout).update(state="sending", claim="gone-host-1-dead")
    changing(rollout).update(updated_at=timezone.now() - timedelta(minutes=10))

    engine.tick(rollout.pk, client_with(), **NO_SLEEP)

    assert set(states(rollout)) <= {"waiting", "running"}
    assert len(sent_ids(fleet)) == 4
    (orphaned,) = audits("rows.orphaned", rollout)
    assert len(orphaned["maybe_sent_to_reconcile"]) == 4


# --- 6, 7. a 5xx holds only its chunk; proven not-accepted servers are resent ---------------


def test_a_5xx_holds_only_its_chunk_and_is_resent_after_an_adaptive_grace(fleet, monkeypatch):
    monkeypatch.setattr(planning, "CHUNK_SIZE", 3)
    rollout = confirmed(count=9)
    engine.start(rollout.pk, client_with(Faulty({("POST", CHANGE_PATH): [503]})), **NO_SLEEP)
    assert states(rollout) == {"unknown": 3, "waiting": 6}  # the other chunks went on
    first_chunk = changing(rollout).filter(state="unknown")
    held = set(first_chunk.values_list("server_id", flat=True))

    engine.tick(rollout.pk, client_with(), **NO_SLEEP)  # the cloud shows the others' jobs
    rollout.refresh_from_db()
    assert rollout.job_visible_seconds is not None
    age(changing(rollout).filter(server_id__in=held), 35)  # well under the old two minutes
    engine.tick(rollout.pk, client_with(), **NO_SLEEP)

    assert set(states(rollout)) <= {"waiting", "running"}
    assert Counter(sent_ids(fleet)) == Counter(
        {s: 1 for s in changing(rollout).values_list("server_id", flat=True)}
    )
    (resent,) = audits("rows.resend", rollout)
    assert set(resent["server_ids"]) == held
    attempts = [e["attempt"] for e in audits("api.batch_change_image.intent", rollout)]
    assert sorted(attempts) == [1, 1, 1, 2]


def test_not_accepted_servers_are_resent_up_to_the_attempts_then_explained(fleet, settings):
    settings.ROLLOUT_SEND_ATTEMPTS = 3
    rollout = confirmed(count=2)
    refused = Faulty({("POST", CHANGE_PATH): [503, 503, 503]})
    client = client_with(refused)
    engine.start(rollout.pk, client, **NO_SLEEP)
    for _ in range(3):
        age(changing(rollout), 600)
        engine.tick(rollout.pk, client, **NO_SLEEP)

    rows = list(changing(rollout))
    assert {r.state for r in rows} == {"failed"}
    assert {r.error_code for r in rows} == {"NOT_ACCEPTED"}
    assert all("3 calls" in r.error_message and r.finished_at for r in rows)
    assert sent_ids(fleet) == []
    assert [e["attempt"] for e in audits("api.batch_change_image.intent", rollout)] == [1, 2, 3]
    assert [e["result"] for e in audits("api.batch_change_image", rollout)] == ["unknown"] * 3
    assert len(audits("rows.resend", rollout)) == 2
    assert len(audits("rows.not_accepted", rollout)) == 1


def test_a_throttled_call_is_audited_and_does_not_count_as_an_attempt(fleet):
    rollout = confirmed(count=2)
    waits: list[float] = []
    engine.start(
        rollout.pk, client_with(Faulty({("POST", CHANGE_PATH): [429]})), sleep=waits.append
    )
    assert set(states(rollout)) == {"waiting"}
    assert set(changing(rollout).values_list("send_attempts", flat=True)) == {1}
    results = [e["result"] for e in audits("api.batch_change_image", rollout)]
    assert results == ["throttled", "answered"]
    assert len(audits("api.batch_change_image.intent", rollout)) == 2


# --- 8. maintenance mode is audited before and after ---------------------------------------


def test_maintenance_calls_are_audited_before_and_after(fleet):
    rollout = confirmed(count=2, use_maintenance=True)
    engine.start(rollout.pk, client_with(), **NO_SLEEP)
    (intent,) = audits("api.batch_maint.intent", rollout)
    (outcome,) = audits("api.batch_maint", rollout)
    assert intent["call"] == outcome["call"] and intent["maintain"] is True
    assert sorted(intent["server_ids"]) == sorted(
        changing(rollout).values_list("server_id", flat=True)
    )


# --- 4. concurrent confirms over the same servers -------------------------------------------


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_confirms_of_crossing_plans_never_deadlock(
    simulator_factory, settings, monkeypatch
):
    """Two plans over the same servers, their rows in opposite orders (the inventory renamed
    them in between), confirmed at the same moment: one wins, the other is a stale plan,
    refused and audited; never a deadlock."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks and deadlocks are PostgreSQL's (SQLite serialises writers)")
    sim = simulator_factory(servers=1500)
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, **cloud_settings(sim)}
    inventory.sync_now(client=client_with())
    drifted = list(Server.objects.filter(drift=True).select_related("group"))
    image = Counter(s.group.image_id for s in drifted).most_common(1)[0][0]
    chosen = sorted(
        (s for s in drifted if s.group.image_id == image),
        key=lambda s: (s.group.name, s.name, s.id),
    )
    images = planning.image_map()

    def plan() -> Rollout:
        servers = list(Server.objects.filter(pk__in=[s.pk for s in chosen]).select_related("group"))
        return planning.create_plan(
            created_by="otto", servers=servers, target=images[image], images=images, reason="r"
        )

    first = plan()
    for rank, server in enumerate(chosen):  # the opposite order for the second plan
        Server.objects.filter(pk=server.pk).update(name=f"s{len(chosen) - rank:04d}")
    for rank, group_id in enumerate(dict.fromkeys(s.group_id for s in chosen)):
        ServerGroup.objects.filter(pk=group_id).update(name=f"g{1000 - rank:04d}")
    second = plan()
    order = [
        list(r.servers.filter(verdict="change").order_by("pk").values_list("server_id", flat=True))
        for r in (first, second)
    ]
    assert order[0] == order[1][::-1] and len(order[0]) >= 10

    together = threading.Barrier(2)
    hold = planning._hold_servers

    def at_once(rollout):
        # A confirm that waits on the other's locks meanwhile goes on alone after the timeout.
        with contextlib.suppress(threading.BrokenBarrierError):
            together.wait(timeout=2)
        return hold(rollout)

    monkeypatch.setattr(planning, "_hold_servers", at_once)
    answers: dict[int, object] = {}

    def confirm(rollout_id: int) -> None:
        try:
            answers[rollout_id] = planning.confirm(rollout_id, "otto")
        except BaseException as exc:  # a deadlock surfaced as an error: the test fails below
            answers[rollout_id] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=confirm, args=(r.pk,)) for r in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    errors = [a for a in answers.values() if isinstance(a, BaseException)]
    assert not errors, errors
    outcomes = sorted(a.confirmed for a in answers.values())
    assert outcomes == [False, True]
    loser = next(a.rollout for a in answers.values() if not a.confirmed)
    assert Rollout.objects.get(pk=loser.pk).state == "discarded"
    refusal = AuditEvent.objects.get(rollout=loser, action="rollout.discard")
    assert refusal.details["stale"]
    assert RolloutServer.objects.filter(state="pending").count() == len(chosen)


def test_a_dead_workers_claims_in_a_cancelled_rollout_are_cancelled_not_sent(fleet):
    rollout = confirmed(count=4)
    Rollout.objects.filter(pk=rollout.pk).update(state="running")  # as its worker started it
    stranded = changing(rollout).first()
    # The worker claimed a chunk and died re-reading it; then an operator cancelled.
    changing(rollout).filter(pk=stranded.pk).update(state="submitting", claim="gone-host-1-dead")
    changing(rollout).filter(pk=stranded.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    control.cancel(rollout.pk, by="otto")
    assert Rollout.objects.get(pk=rollout.pk).state == "cancelling"

    engine.tick(rollout.pk, client_with(), **NO_SLEEP)

    assert Rollout.objects.get(pk=rollout.pk).state == "cancelled"
    assert set(states(rollout)) == {"cancelled"}
    assert sent_ids(fleet) == []
