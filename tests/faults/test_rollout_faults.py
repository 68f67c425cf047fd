"""The rollout engine's own faults with real worker processes: a worker killed just before and
just after its image-change call, the cloud stalled past the read timeout, the cloud down from
the moment of confirm, a throttle storm, two confirms racing over the same servers, and a
halted rollout whose worker dies.

Each asserts: no server processed twice (the simulator's request log), no row lost, every row
final and explained within a bound, and every image-change call audited before it was sent.
"""

import signal
import threading
import time
from collections import Counter

import pytest
from django.db import connection

from dashboard import inventory
from dashboard.cloud.client import CloudClient
from dashboard.cloud.config import from_settings
from dashboard.models import AuditEvent, Rollout, RolloutServer, Server
from dashboard.rollouts import control, planning
from tests.faults.procs import wait_for
from tests.faults.rollout_checks import (
    assert_cloud_writes_audited,
    assert_every_row_explained,
    assert_no_server_twice,
    print_figures,
    rows,
    worker,
)
from tests.faults.scenario import Scenario, plan
from tests.sim_fixtures import cloud_settings

pytestmark = [
    pytest.mark.faults,
    pytest.mark.postgres_only,
    pytest.mark.django_db(transaction=True),
]

STALL = 3.0  # seconds every cloud call waits: long enough to strike, shorter than the timeout


@pytest.fixture
def scenario(simulator_factory, tmp_path, settings):
    sim = simulator_factory(servers=120, job_seconds=60, latency_ms=20)
    run = plan(sim, tmp_path, settings)
    yield run
    run.stop_all()


def _finished_and_explained(scenario, expect: str = "succeeded", since: float | None = None):
    """Finish, check, and print the scenario's figures (docs/reliability.md quotes them)."""
    begun = time.monotonic()
    rollout = scenario.finish()
    print_figures(scenario.sim, rollout, since if since is not None else begun)
    assert rollout.state == expect, rollout.state
    assert_no_server_twice(scenario.sim)
    states = assert_every_row_explained(rollout, scenario.changing)
    if expect == "succeeded":
        assert states["succeeded"] == len(scenario.changing)
    assert_cloud_writes_audited(scenario.sim, rollout)


def _kill(child) -> None:
    child.process.send_signal(signal.SIGKILL)
    child.process.wait(timeout=10)


def _strike_when_rows(scenario, state: str):
    """Let the canary finish with every cloud call stalled; kill the worker the moment a row
    of the next wave is `state` (claimed and re-reading, or in its call)."""
    first = worker(scenario, "w1")
    scenario.wait_first_wave_sent()
    scenario.sim.state.set_faults(stall_seconds=STALL)
    scenario.sim.advance(scenario.sim.config.job_seconds + 1)
    wait_for(lambda: rows(scenario.rollout).filter(state=state).exists(), 90, f"a row {state}")
    _kill(first)
    struck = set(rows(scenario.rollout).filter(state=state).values_list("server_id", flat=True))
    scenario.sim.state.set_faults(stall_seconds=0)
    return struck, time.monotonic()


def test_a_worker_killed_before_its_call_leaves_rows_that_are_sent_once(scenario):
    struck, killed = _strike_when_rows(scenario, "submitting")
    worker(scenario, "w2")
    _finished_and_explained(scenario, since=killed)
    orphaned = AuditEvent.objects.filter(rollout=scenario.rollout, action="rows.orphaned")
    back = {s for e in orphaned for s in e.details["never_sent_back_to_pending"]}
    assert struck <= back, "the dead worker's claims went back to pending"


def test_a_worker_killed_in_its_call_is_reconciled_never_resent(scenario):
    struck, killed = _strike_when_rows(scenario, "sending")
    worker(scenario, "w2")
    _finished_and_explained(scenario, since=killed)
    orphaned = AuditEvent.objects.filter(rollout=scenario.rollout, action="rows.orphaned")
    unknown = {s for e in orphaned for s in e.details["maybe_sent_to_reconcile"]}
    assert struck <= unknown, "the rows in the dead worker's call were reconciled"


def test_the_cloud_stalled_past_the_read_timeout(scenario):
    """Every call stalls longer than the workers' read timeout (5 s) from before the canary is
    claimed: its re-read or its image-change call times out (not sent, or outcome unknown), and
    once the cloud answers again the rollout still ends with every server changed once.

    The stall starts before the worker does: a claim lasts only as long as one re-read, too
    short to be seen reliably by polling, so the stall cannot wait for one."""
    scenario.sim.state.set_faults(stall_seconds=6.5)
    worker(scenario, "w1")
    timed_out = AuditEvent.objects.filter(
        rollout=scenario.rollout,
        action__in=("api.batch_change_image", "rows.send_deferred"),
        outcome="error",
    )
    wait_for(timed_out.exists, 150, "a call to time out")
    assert not rows(scenario.rollout).filter(state="failed").exists()
    scenario.sim.state.set_faults(stall_seconds=0)
    _finished_and_explained(scenario)


def test_the_cloud_down_from_the_confirm_on(scenario, operator_client):
    scenario.sim.state.set_faults(drop_before_rate=1.0)  # connections refused, nothing served
    worker(scenario, "w1")
    wait_for(
        lambda: Rollout.objects.filter(
            pk=scenario.rollout.pk, cloud_unreachable_since__isnull=False
        ).exists(),
        60,
        "the rollout to say the cloud is unreachable",
    )
    page = operator_client.get(f"/rollouts/{scenario.rollout.pk}/")
    assert b"Cloud unreachable since" in page.content
    assert not rows(scenario.rollout).filter(state__in=("failed", "unknown")).exists()
    scenario.sim.state.set_faults(drop_before_rate=0.0)
    _finished_and_explained(scenario)
    assert Rollout.objects.get(pk=scenario.rollout.pk).cloud_unreachable_since is None


def test_a_throttle_storm(scenario):
    scenario.sim.state.set_faults(throttle_rate=0.6, retry_after_seconds=0)
    worker(scenario, "w1")
    worker(scenario, "w2")
    scenario.wait_first_wave_sent()
    _finished_and_explained(scenario)
    throttled = AuditEvent.objects.filter(
        rollout=scenario.rollout, action="api.batch_change_image", details__result="throttled"
    )
    assert throttled.exists() or scenario.sim.requests("POST")  # pacing may have spared it


def test_a_halted_rollout_whose_worker_dies_is_cancelled_and_tracked_to_the_end(scenario):
    canary = rows(scenario.rollout).filter(wave=1).order_by("server_id")
    refused = canary.first().server_id
    scenario.sim.state.reject(refused)
    Rollout.objects.filter(pk=scenario.rollout.pk).update(failure_budget=0)
    first = worker(scenario, "w1")
    wait_for(
        lambda: Rollout.objects.filter(pk=scenario.rollout.pk, state="halted").exists(),
        90,
        "the rollout to halt on its refused canary server",
    )
    in_flight = set(canary.filter(state="waiting").values_list("server_id", flat=True))
    assert in_flight, "the rest of the canary is still running"
    _kill(first)
    assert control.cancel(scenario.rollout.pk, by="otto") is not None  # with no live worker

    worker(scenario, "w2")
    rollout = scenario.finish()
    assert rollout.state == "cancelled"
    assert_no_server_twice(scenario.sim)
    states = assert_every_row_explained(rollout, scenario.changing)
    assert states["failed"] == 1 and states["succeeded"] == len(in_flight)
    assert set(rows(rollout).filter(state="succeeded").values_list("server_id", flat=True)) == (
        in_flight
    )
    assert_cloud_writes_audited(scenario.sim, rollout)
    assert not RolloutServer.objects.filter(
        server_id__in=scenario.changing, state__in=RolloutServer.ACTIVE_STATES
    ).exists(), "the servers are free for another rollout"


def test_two_confirms_race_over_the_same_servers(simulator_factory, tmp_path, settings):
    """Two plans over the same servers confirmed from two threads at once: one wins, the other
    is refused as stale (audited), no deadlock; the workers carry out the winner."""
    sim = simulator_factory(servers=120, job_seconds=60, latency_ms=20)
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, **cloud_settings(sim)}
    inventory.sync_now(client=CloudClient(from_settings()))
    drifted = list(Server.objects.filter(drift=True).select_related("group"))
    image = Counter(s.group.image_id for s in drifted).most_common(1)[0][0]
    chosen = [s for s in drifted if s.group.image_id == image]
    images = planning.image_map()
    plans = [
        planning.create_plan(
            created_by=who,
            servers=chosen,
            target=images[image],
            images=images,
            reason="race",
            safety=planning.Safety(canary="4", wave_size="50%"),
        )
        for who in ("otto", "olga")
    ]
    answers: list = []

    def confirm(rollout_id: int) -> None:
        try:
            answers.append(planning.confirm(rollout_id, "otto"))
        except BaseException as exc:
            answers.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=confirm, args=(p.pk,)) for p in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not [a for a in answers if isinstance(a, BaseException)], answers
    assert sorted(a.confirmed for a in answers) == [False, True]
    winner = next(a.rollout for a in answers if a.confirmed)
    loser = next(a.rollout for a in answers if not a.confirmed)
    assert Rollout.objects.get(pk=loser.pk).state == "discarded"
    assert AuditEvent.objects.filter(rollout_id=loser.pk, action="rollout.discard").exists()

    changing = set(rows(winner).values_list("server_id", flat=True))
    connection.close()
    run = Scenario(sim, tmp_path, Rollout.objects.get(pk=winner.pk), changing)
    try:
        worker(run, "w1")
        _finished_and_explained(run)
    finally:
        run.stop_all()
