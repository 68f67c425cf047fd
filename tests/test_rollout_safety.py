"""Rollout safety against the simulator: waves, error budget, pause/resume/cancel, users
first, revert and schedule. Ticks are driven by hand; the simulator's clock moves jobs."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from dashboard import inventory
from dashboard.models import Rollout, RolloutWave, Server
from dashboard.rollouts import control, engine, planning
from dashboard.rollouts.planning import Safety
from tests.sim_fixtures import cloud_settings

pytestmark = pytest.mark.django_db

CHANGE_PATH = "/app-servers/actions/batch-change-image"


@pytest.fixture
def synced(simulator_factory, settings, cloud_client_factory):
    sim = simulator_factory(servers=120)
    client = cloud_client_factory(sim)
    inventory.sync_now(client=client)
    return sim, client


@pytest.fixture
def cloud_client_factory(settings):
    from dashboard.cloud.client import CloudClient
    from dashboard.cloud.config import from_settings

    def make(sim):
        settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, **cloud_settings(sim)}
        return CloudClient(from_settings())

    return make


def confirmed_rollout(safety: Safety, n: int = 8) -> Rollout:
    """A confirmed rollout of `n` changeable drifted servers that share a group image."""
    candidates = (
        Server.objects.filter(drift=True, frozen=False, os_type="Windows")
        .exclude(job_status__in=["WAITING", "RUNNING"])
        .select_related("group")
    )
    by_image: dict[str, list[Server]] = {}
    for server in candidates:
        by_image.setdefault(server.group.image_id, []).append(server)
    image_id, servers = max(by_image.items(), key=lambda kv: len(kv[1]))
    images = planning.image_map()
    rollout = planning.create_plan(
        created_by="otto",
        servers=servers[:n],
        target=images[image_id],
        images=images,
        reason="CHG-7",
        safety=safety,
    )
    assert rollout.servers.filter(verdict="change").count() == min(n, len(servers))
    assert planning.confirm(rollout.pk, "otto").confirmed
    return rollout


def resync(client) -> None:
    """Run the sync that finishing a rollout requested (the worker would), or a fresh one."""
    from dashboard.models import SyncRun

    running = SyncRun.objects.filter(state=SyncRun.State.RUNNING).first()
    if running:
        inventory.run_sync(running.pk, client)
    else:
        inventory.sync_now(client=client)


def sent_ids(sim) -> list[str]:
    return [sid for r in sim.requests("POST", CHANGE_PATH) for sid in r["body"]["server_ids"]]


def wave_ids(rollout, number) -> set[str]:
    return set(rollout.servers.filter(wave=number).values_list("server_id", flat=True))


def no_sleep(seconds):
    pass


def run(rollout, client, sim=None, advance=0):
    if sim and advance:
        sim.advance(advance)
    return engine.tick(rollout.pk, client, sleep=no_sleep)


def test_a_canary_wave_goes_first_and_the_next_waits_for_it(synced):
    sim, client = synced
    rollout = confirmed_rollout(Safety(canary="2", wave_size="3"), n=8)
    assert list(rollout.waves.values_list("size", flat=True)) == [2, 3, 3]

    engine.start(rollout.pk, client, sleep=no_sleep)
    assert set(sent_ids(sim)) == wave_ids(rollout, 1)  # only the canary

    run(rollout, client)  # canary jobs still running: nothing more is sent
    assert set(sent_ids(sim)) == wave_ids(rollout, 1)

    run(rollout, client, sim, advance=3600)  # canary done → wave 2 sent
    assert set(sent_ids(sim)) == wave_ids(rollout, 1) | wave_ids(rollout, 2)
    run(rollout, client, sim, advance=3600)
    run(rollout, client, sim, advance=3600)
    assert run(rollout, client) == "succeeded"
    assert len(sent_ids(sim)) == len(set(sent_ids(sim))) == 8


def test_the_next_wave_waits_out_the_soak_time(synced):
    sim, client = synced
    rollout = confirmed_rollout(Safety(canary="1", soak_seconds=600), n=3)
    engine.start(rollout.pk, client, sleep=no_sleep)
    run(rollout, client, sim, advance=3600)
    canary = rollout.waves.get(number=1)
    assert canary.state == RolloutWave.State.SOAKING
    assert set(sent_ids(sim)) == wave_ids(rollout, 1)

    RolloutWave.objects.filter(pk=canary.pk).update(finished_at=timezone.now() - timedelta(hours=1))
    run(rollout, client)
    assert set(sent_ids(sim)) == wave_ids(rollout, 1) | wave_ids(rollout, 2)


def halted_rollout(synced) -> tuple[Rollout, object, object]:
    sim, client = synced
    rollout = confirmed_rollout(Safety(canary="2", failure_budget="0"), n=6)
    victim = rollout.servers.filter(wave=1).first()
    sim.state.reject(victim.server_id, "WKS.00129901")
    engine.start(rollout.pk, client, sleep=no_sleep)
    run(rollout, client, sim, advance=3600)
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.HALTED
    assert "error budget" in rollout.halted_reason
    assert set(sent_ids(sim)) == wave_ids(rollout, 1)  # the remaining waves stopped
    return rollout, sim, client


def test_crossing_the_error_budget_halts_the_remaining_waves(synced):
    rollout, sim, client = halted_rollout(synced)
    run(rollout, client)
    assert Rollout.objects.get(pk=rollout.pk).state == Rollout.State.HALTED
    assert set(sent_ids(sim)) == wave_ids(rollout, 1)


def test_resume_continue_sends_the_next_waves(synced):
    rollout, sim, client = halted_rollout(synced)
    control.resume(rollout.pk, control.CONTINUE)
    run(rollout, client)
    assert wave_ids(rollout, 2) <= set(sent_ids(sim))
    assert Rollout.objects.get(pk=rollout.pk).budget_base == 1


def test_resume_skip_failed_marks_them_skipped_and_goes_on(synced):
    rollout, sim, client = halted_rollout(synced)
    control.resume(rollout.pk, control.SKIP_FAILED)
    assert not rollout.servers.filter(state="failed").exists()
    assert rollout.servers.filter(reason_code="skipped_after_failure").count() == 1
    run(rollout, client, sim, advance=3600)
    assert run(rollout, client, sim, advance=3600) == "succeeded"


def test_resume_retry_failed_plans_a_linked_retry_and_goes_on(synced):
    rollout, sim, client = halted_rollout(synced)
    failed = set(rollout.servers.filter(state="failed").values_list("server_id", flat=True))
    resumed, retry = control.resume(rollout.pk, control.RETRY_FAILED, by="otto")
    assert resumed and retry is not None and retry.retry_of_id == rollout.pk
    assert retry.kind == Rollout.Kind.RESUME_RETRY
    assert set(retry.servers.values_list("server_id", flat=True)) == failed
    run(rollout, client)
    assert wave_ids(rollout, 2) <= set(sent_ids(sim))


def test_pause_stops_sending_and_resume_goes_on(synced):
    sim, client = synced
    rollout = confirmed_rollout(Safety(canary="2"), n=5)
    engine.start(rollout.pk, client, sleep=no_sleep)
    assert control.pause(rollout.pk)
    run(rollout, client, sim, advance=3600)  # canary finishes and is tracked while paused
    assert set(rollout.servers.filter(wave=1).values_list("state", flat=True)) <= {
        "succeeded",
        "failed",
    }
    assert set(sent_ids(sim)) == wave_ids(rollout, 1)
    control.resume(rollout.pk)
    run(rollout, client)
    assert wave_ids(rollout, 2) <= set(sent_ids(sim))


def test_cancel_mid_wave_stops_what_is_not_sent_and_tracks_what_runs(synced):
    sim, client = synced
    rollout = confirmed_rollout(Safety(canary="2"), n=6)
    engine.start(rollout.pk, client, sleep=no_sleep)
    cancelled = control.cancel(rollout.pk)
    assert cancelled == 4
    assert Rollout.objects.get(pk=rollout.pk).state == Rollout.State.CANCELLING  # canary in flight
    assert run(rollout, client, sim, advance=3600) == "cancelled"
    assert set(sent_ids(sim)) == wave_ids(rollout, 1)
    assert set(rollout.servers.filter(wave=1).values_list("state", flat=True)) <= {
        "succeeded",
        "failed",
    }
    assert set(rollout.servers.filter(wave=2).values_list("state", flat=True)) == {"cancelled"}


def test_a_revert_plans_each_server_back_to_its_previous_image(synced):
    sim, client = synced
    rollout = confirmed_rollout(Safety(), n=3)
    before = dict(rollout.servers.values_list("server_id", "from_image_id"))
    engine.start(rollout.pk, client, sleep=no_sleep)
    assert run(rollout, client, sim, advance=3600) == "succeeded"
    resync(client)

    plan = control.revert(rollout.pk, list(before), by="otto").plan
    assert plan.kind == "revert" and plan.retry_of_id == rollout.pk
    assert dict(plan.servers.values_list("server_id", "to_image_id")) == before
    assert planning.confirm(plan.pk, "otto").confirmed
    engine.start(plan.pk, client, sleep=no_sleep)
    assert run(plan, client, sim, advance=3600) == "succeeded"
    for server_id, image_id in before.items():
        assert sim.state.servers[server_id].image_id == image_id


def test_a_revert_to_a_vanished_image_is_blocked_with_a_reason(synced):
    sim, client = synced
    rollout = confirmed_rollout(Safety(), n=2)
    engine.start(rollout.pk, client, sleep=no_sleep)
    run(rollout, client, sim, advance=3600)
    resync(client)
    row = rollout.servers.filter(state="succeeded").first()
    rollout.servers.filter(pk=row.pk).update(previous_image_id="img-that-is-gone")

    plan = control.revert(rollout.pk, [row.server_id], by="otto").plan

    planned = plan.servers.get()
    assert planned.verdict == "blocked" and planned.reason_code == "image_not_active"


def test_a_scheduled_rollout_waits_for_its_time(synced):
    sim, client = synced
    later = timezone.now() + timedelta(hours=2)
    rollout = confirmed_rollout(Safety(scheduled_at=later), n=2)
    assert engine.start(rollout.pk, client, sleep=no_sleep) == "queued"
    assert sent_ids(sim) == []
    Rollout.objects.filter(pk=rollout.pk).update(scheduled_at=timezone.now() - timedelta(1))
    assert engine.start(rollout.pk, client, sleep=no_sleep) == "running"
    assert len(sent_ids(sim)) == 2


def test_a_rollout_waits_while_active_sessions_are_above_the_threshold(synced):
    sim, client = synced
    rollout = confirmed_rollout(Safety(start_below_sessions=1), n=4)
    busy = rollout.servers.filter(verdict="change").first()
    sim.state.patch_server(busy.server_id, session_count=3)
    assert engine.start(rollout.pk, client, sleep=no_sleep) == "queued"
    sim.state.patch_server(busy.server_id, session_count=0)
    for row in rollout.servers.all():
        sim.state.patch_server(row.server_id, session_count=0)
    assert engine.start(rollout.pk, client, sleep=no_sleep) == "running"


def test_wait_only_waits_for_sessions_then_goes_ahead_at_the_deadline(synced):
    sim, client = synced
    rollout = confirmed_rollout(Safety(session_policy="wait", session_wait_seconds=600), n=3)
    row = rollout.servers.filter(verdict="change").first()
    sim.state.patch_server(row.server_id, session_count=2)
    engine.start(rollout.pk, client, sleep=no_sleep)
    wave = rollout.waves.get()
    assert wave.state == RolloutWave.State.DRAINING and wave.sessions_left >= 2
    assert sent_ids(sim) == []
    RolloutWave.objects.filter(pk=wave.pk).update(sessions_deadline=timezone.now())
    run(rollout, client)
    assert len(sent_ids(sim)) == 3


def test_the_halt_and_the_start_are_notified(synced, django_capture_on_commit_callbacks, settings):
    settings.NOTIFY_WEBHOOK_URL = "http://127.0.0.1:9/hook"
    with django_capture_on_commit_callbacks(execute=True):
        halted_rollout(synced)
    events = [
        r.args_kwargs["args"][0] if r.args_kwargs.get("args") else r.args_kwargs["kwargs"]["event"]
        for r in DBTaskResult.objects.filter(task_path__endswith="deliver_notification")
    ]
    assert "started" in events and "halted" in events


def test_wait_then_log_off_warns_the_users_and_sends_after_the_delay(synced):
    sim, client = synced
    rollout = confirmed_rollout(
        Safety(
            session_policy="wait_logoff",
            session_wait_seconds=0,
            logoff_delay_seconds=120,
            logoff_message="Patching now, please save your work.",
        ),
        n=3,
    )
    row = rollout.servers.filter(verdict="change").first()
    session = sim.state.add_session(row.server_id, "alice.wong")
    engine.start(rollout.pk, client, sleep=no_sleep)

    wave = rollout.waves.get()
    assert wave.state == RolloutWave.State.LOGGING_OFF
    assert sent_ids(sim) == []  # nobody is disconnected before the warning's delay
    warned = [m for m in sim.state.messages() if "Patching now" in str(m)]
    assert warned, sim.state.messages()
    assert session.id in str(warned)

    sim.advance(120)  # the cloud logs the user off after the delay
    RolloutWave.objects.filter(pk=wave.pk).update(logoff_at=timezone.now())
    run(rollout, client)
    assert len(sent_ids(sim)) == 3
    assert sim.state.sessions_of(row.server_id) == []


def test_the_session_threshold_also_holds_back_later_waves(synced):
    sim, client = synced
    rollout = confirmed_rollout(Safety(canary="1", start_below_sessions=3), n=3)
    for row in rollout.servers.all():
        sim.state.patch_server(row.server_id, session_count=0)
    engine.start(rollout.pk, client, sleep=no_sleep)
    assert set(sent_ids(sim)) == wave_ids(rollout, 1)
    later = rollout.servers.filter(wave=2).first()
    sim.state.patch_server(later.server_id, session_count=5)

    run(rollout, client, sim, advance=3600)  # the canary is done, but users are busy
    assert set(sent_ids(sim)) == wave_ids(rollout, 1)
    assert rollout.waves.get(number=2).sessions_left == 5

    sim.state.patch_server(later.server_id, session_count=0)
    run(rollout, client)
    assert wave_ids(rollout, 2) <= set(sent_ids(sim))


def test_the_canary_may_treat_its_users_differently_from_the_other_waves(synced):
    sim, client = synced
    rollout = confirmed_rollout(
        Safety(
            canary="1",
            session_policy="wait_logoff",
            canary_session_policy="none",
            session_wait_seconds=0,
            logoff_delay_seconds=60,
        ),
        n=3,
    )
    assert list(rollout.waves.values_list("session_policy", flat=True)) == ["none", "wait_logoff"]
    canary = rollout.servers.get(wave=1)
    sim.state.add_session(canary.server_id, "bob.lee")
    engine.start(rollout.pk, client, sleep=no_sleep)
    assert set(sent_ids(sim)) == {canary.server_id}  # no waiting, no logoff for the canary
    assert sim.state.messages() == []

    later = rollout.servers.filter(wave=2).first()
    sim.state.add_session(later.server_id, "carol.ng")
    run(rollout, client, sim, advance=3600)
    assert rollout.waves.get(number=2).state == RolloutWave.State.LOGGING_OFF
    assert sim.state.messages()  # the later wave warned its users first


def test_a_halt_refreshes_the_inventory_so_a_retry_at_once_can_send_the_failed(synced):
    """The failed jobs have ended when the budget halts the rollout: the sync the halt asks
    for lets a retry planned straight away move them, rather than see them busy."""
    from dashboard.models import SyncRun

    sim, client = synced
    rollout = confirmed_rollout(Safety(canary="2", failure_budget="0"), n=6)
    sim.state.set_faults(job_failure_rate=1.0)
    engine.start(rollout.pk, client, sleep=no_sleep)
    run(rollout, client, sim, advance=3600)
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.HALTED
    failed = set(rollout.servers.filter(state="failed").values_list("server_id", flat=True))
    assert failed == wave_ids(rollout, 1)
    requested = SyncRun.objects.get(state=SyncRun.State.RUNNING)
    assert (requested.trigger, requested.project_id) == ("rollout", rollout.project_id)

    sim.state.set_faults(job_failure_rate=0.0)
    resync(client)
    _resumed, retry = control.resume(rollout.pk, control.RETRY_FAILED, by="otto")

    moving = retry.servers.filter(verdict="change").values_list("server_id", flat=True)
    assert set(moving) == failed


def test_a_stopped_wave_whose_jobs_all_ended_says_when_on_the_rollout_page(synced, viewer_client):
    rollout, _sim, _client = halted_rollout(synced)
    first = rollout.waves.get(number=1)
    assert first.state == RolloutWave.State.STOPPED and first.finished_at is None
    last = max(rollout.servers.filter(wave=1).values_list("finished_at", flat=True))

    html = viewer_client.get(f"/rollouts/{rollout.pk}/").content.decode()

    rows = re.findall(r'<tr data-wave-state="(\w+)">(.*?)</tr>', html, re.S)
    assert [state for state, _ in rows][:2] == ["stopped", "pending"]
    ended = f"every sent job ended by {timezone.localtime(last):%H:%M:%S}"
    assert ended in rows[0][1]
    assert "every sent job ended" not in rows[1][1]
