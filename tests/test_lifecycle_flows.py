"""The lifecycle as operators meet it, driven through the views and the engine against the
simulator: notifications from real transitions, plans that are not left behind, the confirm
bound to the plan shown, honest outcomes, kinds linked both ways, the timeline, exports."""

import csv
import io
import re
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.core import signing
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from dashboard import inventory
from dashboard.cloud.client import CloudClient
from dashboard.cloud.config import from_settings
from dashboard.models import AuditEvent, Rollout, RolloutEvent, RolloutServer, RolloutWave, Server
from dashboard.rollouts import engine, planning, progress
from dashboard.rollouts.planning import Safety
from tests.rollout_helpers import confirm_from_page
from tests.sim_fixtures import cloud_settings

pytestmark = pytest.mark.django_db


@pytest.fixture
def sim(simulator_factory, settings):
    sim = simulator_factory(servers=80)
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, **cloud_settings(sim)}
    settings.NOTIFY_WEBHOOK_URL = "http://127.0.0.1:9/hook"  # delivery is enqueued, not sent
    inventory.sync_now(client=CloudClient(from_settings()))
    return sim


@pytest.fixture
def client(sim):
    return CloudClient(from_settings())


def no_sleep(seconds: float) -> None:
    pass


def changeable(n: int) -> tuple[list[Server], str]:
    candidates = (
        Server.objects.filter(drift=True, frozen=False, os_type="Windows")
        .exclude(job_status__in=["WAITING", "RUNNING"])
        .select_related("group")
    )
    by_image: dict[str, list[Server]] = {}
    for server in candidates:
        by_image.setdefault(server.group.image_id, []).append(server)
    image_id, servers = max(by_image.items(), key=lambda kv: len(kv[1]))
    return servers[:n], image_id


def plan(n: int = 3, safety: Safety | None = None, by: str = "otto.operator") -> Rollout:
    servers, image_id = changeable(n)
    images = planning.image_map()
    return planning.create_plan(
        created_by=by,
        servers=servers,
        target=images[image_id],
        images=images,
        reason="CHG-12",
        safety=safety,
    )


def confirmed(n: int = 3, safety: Safety | None = None) -> Rollout:
    rollout = plan(n, safety)
    assert planning.confirm(rollout.pk, "otto.operator").confirmed
    return rollout


def notifications() -> list[str]:
    return [
        r.args_kwargs["args"][0]
        for r in DBTaskResult.objects.filter(task_path__endswith="deliver_notification")
    ]


def tick(rollout: Rollout, client, sim=None, advance: float = 0) -> str:
    if sim and advance:
        sim.advance(advance)
    return engine.tick(rollout.pk, client, sleep=no_sleep)


# --- notifications come from transitions ---------------------------------------------------


def test_a_rollout_that_needs_approval_notifies_awaiting_approval(
    sim, operator_client, settings, django_capture_on_commit_callbacks
):
    rollout = plan(2)
    settings.PROTECTED_SERVER_GROUPS = ["*"]
    with django_capture_on_commit_callbacks(execute=True):
        assert confirm_from_page(operator_client, rollout).status_code == 302
    assert Rollout.objects.get(pk=rollout.pk).state == Rollout.State.AWAITING_APPROVAL
    assert notifications() == ["awaiting_approval"]


def test_cancelling_a_queued_rollout_notifies_cancelled(
    sim, operator_client, django_capture_on_commit_callbacks
):
    rollout = confirmed(2)
    with django_capture_on_commit_callbacks(execute=True):
        operator_client.post(f"/rollouts/{rollout.pk}/cancel/")
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.CANCELLED
    assert notifications() == ["cancelled"]
    assert set(rollout.servers.filter(verdict="change").values_list("state", flat=True)) == {
        "cancelled"
    }


def test_cancelling_a_running_rollout_notifies_once_its_jobs_have_ended(
    sim, client, operator_client, django_capture_on_commit_callbacks
):
    rollout = confirmed(4, Safety(canary="2"))
    with django_capture_on_commit_callbacks(execute=True):
        engine.start(rollout.pk, client, sleep=no_sleep)
        operator_client.post(f"/rollouts/{rollout.pk}/cancel/")
    assert Rollout.objects.get(pk=rollout.pk).state == Rollout.State.CANCELLING
    assert "cancelled" not in notifications()
    with django_capture_on_commit_callbacks(execute=True):
        assert tick(rollout, client, sim, advance=3600) == Rollout.State.CANCELLED
    assert notifications() == ["started", "cancelled"]
    assert set(rollout.waves.values_list("state", flat=True)) <= {"done", "cancelled"}


def test_halting_notifies_halted_with_an_honest_reason(
    sim, client, django_capture_on_commit_callbacks
):
    rollout = confirmed(4, Safety(canary="1", failure_budget="0"))
    victim = rollout.servers.get(wave=1)
    sim.state.reject(victim.server_id, "WKS.00129901")
    with django_capture_on_commit_callbacks(execute=True):
        engine.start(rollout.pk, client, sleep=no_sleep)
        tick(rollout, client)
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.HALTED
    assert rollout.halted_reason == "1 failure crossed the error budget (no failure allowed)."
    assert notifications() == ["started", "halted"]
    assert not rollout.waves.filter(state__in=["running", "soaking", "sending"]).exists()


def test_finishing_with_failures_notifies_failed(sim, client, django_capture_on_commit_callbacks):
    failing = confirmed(2)
    sim.state.reject(failing.servers.filter(verdict="change").first().server_id, "WKS.00129901")
    with django_capture_on_commit_callbacks(execute=True):
        engine.start(failing.pk, client, sleep=no_sleep)
        assert tick(failing, client, sim, advance=3600) == Rollout.State.FAILED
    assert notifications() == ["started", "failed"]
    failing.refresh_from_db()
    assert progress.summary(failing).outcome == "1 of 2 changed, 1 failed"


def test_finishing_without_failures_notifies_completed(
    sim, client, django_capture_on_commit_callbacks
):
    ok = confirmed(2)
    with django_capture_on_commit_callbacks(execute=True):
        engine.start(ok.pk, client, sleep=no_sleep)
        assert tick(ok, client, sim, advance=3600) == Rollout.State.SUCCEEDED
    assert notifications() == ["started", "completed"]
    ok.refresh_from_db()
    assert progress.summary(ok).outcome == "All 2 servers changed"
    assert set(ok.waves.values_list("state", flat=True)) == {"done"}


# --- waves move with their rollout ---------------------------------------------------------


def test_a_paused_rollout_shows_no_wave_running_after_its_jobs_ended(sim, client, operator_client):
    rollout = confirmed(3)
    engine.start(rollout.pk, client, sleep=no_sleep)
    operator_client.post(f"/rollouts/{rollout.pk}/pause/")
    assert tick(rollout, client, sim, advance=3600) == Rollout.State.SUCCEEDED
    assert list(rollout.waves.values_list("state", flat=True)) == [RolloutWave.State.DONE]


def test_resuming_a_paused_rollout_goes_on_with_the_next_wave(sim, client, operator_client):
    rollout = confirmed(3, Safety(canary="1"))
    engine.start(rollout.pk, client, sleep=no_sleep)
    operator_client.post(f"/rollouts/{rollout.pk}/pause/")
    assert rollout.waves.get(number=1).state == RolloutWave.State.STOPPED
    tick(rollout, client, sim, advance=3600)
    operator_client.post(f"/rollouts/{rollout.pk}/resume/", {"how": "continue"})
    tick(rollout, client)
    assert rollout.waves.get(number=1).state == RolloutWave.State.DONE
    assert rollout.waves.get(number=2).state == RolloutWave.State.RUNNING


def test_a_wave_resumed_while_its_jobs_run_keeps_the_times_it_started_and_was_sent(
    sim, client, operator_client
):
    rollout = confirmed(3, Safety(canary="1"))
    engine.start(rollout.pk, client, sleep=no_sleep)
    first = rollout.waves.get(number=1)
    assert first.started_at and first.sent_at
    operator_client.post(f"/rollouts/{rollout.pk}/pause/")
    sim.advance(5)  # its job still runs
    operator_client.post(f"/rollouts/{rollout.pk}/resume/", {"how": "continue"})
    tick(rollout, client, sim, advance=1)
    tick(rollout, client, sim, advance=1)

    again = rollout.waves.get(number=1)
    assert (again.started_at, again.sent_at) == (first.started_at, first.sent_at)
    assert rollout.servers.filter(wave=1).values_list("send_attempts", flat=True)[0] == 1


def test_actions_the_state_does_not_allow_are_refused_and_audited(sim, operator_client):
    rollout = confirmed(2)  # queued: nothing to pause or resume yet
    response = operator_client.post(f"/rollouts/{rollout.pk}/pause/", follow=True)
    assert (
        f"Rollout #{rollout.pk} is queued now, so it cannot be paused." in response.content.decode()
    )
    refused = AuditEvent.objects.get(action="rollout.pause")
    assert refused.outcome == "refused" and refused.details["state"] == "queued"
    assert Rollout.objects.get(pk=rollout.pk).state == Rollout.State.QUEUED


# --- plans are not left behind -------------------------------------------------------------


def test_cancel_on_the_plan_page_discards_the_plan(sim, operator_client):
    rollout = plan(2)
    page = operator_client.get(f"/rollouts/new/{rollout.pk}/").content.decode()
    assert f'action="/rollouts/new/{rollout.pk}/discard/"' in page
    response = operator_client.post(f"/rollouts/new/{rollout.pk}/discard/")
    assert response.status_code == 302
    groups = set(rollout.servers.values_list("group_id", flat=True))
    # Back where such a plan begins: the groups page for one group, else the servers page.
    assert response["Location"] == ("/groups/" if len(groups) == 1 else "/servers/")
    assert Rollout.objects.get(pk=rollout.pk).state == Rollout.State.DISCARDED
    event = RolloutEvent.objects.get(rollout=rollout)
    assert (event.action, event.actor) == ("discard", "otto.operator")
    assert AuditEvent.objects.get(action="rollout.discard").actor == "otto.operator"
    again = operator_client.post(f"/rollouts/new/{rollout.pk}/discard/")
    assert again.status_code == 302
    assert AuditEvent.objects.filter(action="rollout.discard", outcome="refused").exists()


def test_the_worker_sweeps_plans_left_unconfirmed(sim, settings):
    settings.PLAN_TTL_SECONDS = 600
    old, fresh = plan(1), plan(1)
    Rollout.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(seconds=601))
    assert planning.expire_plans() == 1
    assert Rollout.objects.get(pk=old.pk).state == Rollout.State.DISCARDED
    assert Rollout.objects.get(pk=fresh.pk).state == Rollout.State.PLANNED
    assert RolloutEvent.objects.get(rollout=old).action == "expire"
    assert planning.expire_plans() == 0


def test_back_after_confirm_shows_the_rollout_not_a_live_confirm(sim, operator_client):
    rollout = plan(2)
    page = operator_client.get(f"/rollouts/new/{rollout.pk}/")
    assert "no-store" in page["Cache-Control"]
    confirm_from_page(operator_client, rollout)
    back = operator_client.get(f"/rollouts/new/{rollout.pk}/")
    assert back.status_code == 302 and back["Location"] == f"/rollouts/{rollout.pk}/"
    detail = operator_client.get(back["Location"]).content.decode()
    assert "Confirm and start" not in detail


# --- a confirm is bound to the plan it shows ---------------------------------------------


def _post_confirm(client, rollout, token):
    return client.post(f"/rollouts/new/{rollout.pk}/confirm/", {"confirm_token": token})


def _refusal_code(rollout) -> str:
    return AuditEvent.objects.get(action="rollout.confirm", rollout=rollout).details["code"]


def test_a_confirm_without_the_plan_pages_token_is_refused(sim, operator_client):
    rollout = plan(2)
    response = operator_client.post(f"/rollouts/new/{rollout.pk}/confirm/")
    assert response.status_code == 409
    assert b"did not come from the plan page" in response.content
    assert _refusal_code(rollout) == planning.CONFIRM_UNSIGNED
    assert Rollout.objects.get(pk=rollout.pk).state == Rollout.State.PLANNED


def test_a_token_of_another_plan_does_not_confirm_this_one(sim, operator_client):
    shown, other = plan(1), plan(1)
    response = _post_confirm(operator_client, other, planning.confirm_token(shown))
    assert response.status_code == 409
    assert _refusal_code(other) == planning.CONFIRM_OTHER_PLAN
    assert Rollout.objects.get(pk=other.pk).state == Rollout.State.PLANNED


def test_a_damaged_token_is_refused(sim, operator_client):
    rollout = plan(1)
    response = _post_confirm(operator_client, rollout, planning.confirm_token(rollout) + "x")
    assert response.status_code == 409
    assert _refusal_code(rollout) == planning.CONFIRM_DAMAGED


def test_a_token_older_than_the_plan_ttl_is_refused(sim, operator_client, settings, monkeypatch):
    settings.PLAN_TTL_SECONDS = 600
    rollout = plan(1)
    token = planning.confirm_token(rollout)
    later = time.time() + 601
    monkeypatch.setattr(signing.time, "time", lambda: later)
    response = _post_confirm(operator_client, rollout, token)
    assert response.status_code == 409
    assert _refusal_code(rollout) == planning.CONFIRM_TOO_OLD


def test_an_expired_plan_is_refused_and_discarded(sim, operator_client, settings):
    settings.PLAN_TTL_SECONDS = 600
    rollout = plan(1)
    token = planning.confirm_token(rollout)
    Rollout.objects.filter(pk=rollout.pk).update(created_at=timezone.now() - timedelta(hours=1))
    response = _post_confirm(operator_client, rollout, token)
    assert response.status_code == 409
    assert _refusal_code(rollout) == planning.PLAN_EXPIRED
    assert Rollout.objects.get(pk=rollout.pk).state == Rollout.State.DISCARDED


def test_a_plan_changed_after_it_was_shown_is_refused(sim, operator_client):
    rollout = plan(2)
    token = planning.confirm_token(rollout)
    Rollout.objects.filter(pk=rollout.pk).update(plan_fingerprint="something else")
    assert _post_confirm(operator_client, rollout, token).status_code == 409
    assert _refusal_code(rollout) == planning.CONFIRM_OTHER_PLAN


def test_the_audit_of_a_confirm_names_who_planned_and_who_confirmed(sim, sso_client):
    rollout = plan(2, by="paula.planner")
    confirmer = sso_client("carl.confirmer", ["dashboard-operators"])
    assert confirm_from_page(confirmer, rollout).status_code == 302
    event = AuditEvent.objects.get(action="rollout.confirm", outcome="ok")
    assert event.actor == "carl.confirmer"
    assert event.details["planned_by"] == "paula.planner"
    assert event.details["confirmed_by"] == "carl.confirmer"


# --- honest outcomes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "done", "to_change", "failed", "expected"),
    [
        ("succeeded", 8, 8, 0, "All 8 servers changed"),
        ("succeeded", 1, 1, 0, "1 server changed"),
        ("succeeded", 0, 0, 0, "No server needed changing"),
        ("failed", 8, 8, 4, "4 of 8 changed, 4 failed"),
        ("cancelled", 3, 8, 0, "Cancelled after 3 of 8"),
        ("halted", 2, 8, 2, "Halted"),
        ("running", 1, 1, 0, "1 of 1 server done"),
        ("running", 3, 8, 0, "3 of 8 servers done"),
    ],
)
def test_outcomes_read_honestly(state, done, to_change, failed, expected):
    assert progress.outcome(state, done, to_change, failed) == expected


def _rollout_with_rows(state: str, row_states: list[str], minutes_ago: int = 5) -> Rollout:
    """Started `minutes_ago`; each server done finished three minutes after the start."""
    started = timezone.now() - timedelta(minutes=minutes_ago)
    rollout = Rollout.objects.create(created_by="otto", state=state, started_at=started)
    RolloutServer.objects.bulk_create(
        RolloutServer(
            rollout=rollout,
            server_id=f"{rollout.pk}-s{i}",
            server_name=f"s{i}",
            to_image_id="img",
            verdict="change",
            state=row_state,
            finished_at=started + timedelta(minutes=3)
            if row_state in ("succeeded", "failed")
            else None,
        )
        for i, row_state in enumerate(row_states)
    )
    return rollout


def test_a_cancelled_rollout_does_not_count_cancelled_servers_as_done(viewer_client):
    rollout = _rollout_with_rows("cancelled", ["succeeded"] * 3 + ["cancelled"] * 5)
    summary = progress.summary(rollout)
    assert (summary.done, summary.to_change, summary.percent) == (3, 8, 38)
    page = viewer_client.get(f"/rollouts/{rollout.pk}/").content.decode()
    assert "Cancelled after 3 of 8" in page and "100%" not in page


def test_no_time_left_is_estimated_unless_the_rollout_runs():
    running = _rollout_with_rows("running", ["succeeded", "waiting"])
    paused = _rollout_with_rows("paused", ["succeeded", "waiting"])
    assert progress.summary(running).remaining is not None
    assert progress.summary(paused).remaining is None


def test_the_time_left_shrinks_while_nothing_finishes_and_is_not_said_once_overdue():
    # 2 done in 3 minutes (1.5 a server), 4 left: 6 minutes from the last finish.
    rows = ["succeeded", "succeeded", "waiting", "waiting", "running", "sending"]
    soon = progress.summary(_rollout_with_rows("running", rows, minutes_ago=4)).remaining
    later = progress.summary(_rollout_with_rows("running", rows, minutes_ago=6)).remaining
    overdue = progress.summary(_rollout_with_rows("running", rows, minutes_ago=10)).remaining

    assert timedelta(minutes=4, seconds=50) < soon <= timedelta(minutes=5)
    assert timedelta(minutes=2, seconds=50) < later <= timedelta(minutes=3)
    assert overdue is None


def test_a_budget_of_zero_reads_no_failure_allowed(viewer_client):
    rollout = _rollout_with_rows("running", ["waiting"])
    Rollout.objects.filter(pk=rollout.pk).update(failure_budget=0)
    RolloutWave.objects.create(rollout=rollout, number=1, size=1)
    page = viewer_client.get(f"/rollouts/{rollout.pk}/").content.decode()
    assert "no failure allowed" in page
    assert "0 failures" not in page


# --- the page: progress for assistive technology, the timeline ---------------------------


def test_progress_is_a_polite_live_region_and_a_named_progress_bar(viewer_client):
    rollout = _rollout_with_rows("running", ["succeeded", "waiting"])
    page = viewer_client.get(f"/rollouts/{rollout.pk}/").content.decode()
    assert 'id="rollout-status" aria-live="polite"' in page
    assert 'role="progressbar"' in page and 'aria-label="Servers changed"' in page
    assert 'aria-valuenow="50"' in page and 'aria-valuemax="100"' in page
    polled = viewer_client.get(f"/rollouts/{rollout.pk}/poll/", HTTP_HX_REQUEST="true")
    assert (
        'id="rollout-status" aria-live="polite" hx-swap-oob="innerHTML"' in polled.content.decode()
    )


def test_the_timeline_shows_events_newest_first_with_actor_and_reason(
    sim, client, operator_client, viewer_client
):
    rollout = plan(2)
    confirm_from_page(operator_client, rollout)
    engine.start(rollout.pk, client, sleep=no_sleep)
    operator_client.post(f"/rollouts/{rollout.pk}/pause/")
    page = viewer_client.get(f"/rollouts/{rollout.pk}/").content.decode()
    timeline = page[page.index('id="rollout-timeline"') :]
    pause, start, confirm = (
        timeline.index(f'data-action="{a}"') for a in ("pause", "start", "confirm")
    )
    assert pause < start < confirm
    assert "by otto.operator" in timeline and "by worker" in timeline

    data = viewer_client.get(f"/rollouts/{rollout.pk}/export.json").json()
    rollout_events = [e["action"] for e in data["events"] if e["wave"] is None]
    assert rollout_events == ["pause", "start", "confirm"]
    assert data["events"][0]["actor"] == "otto.operator"


# --- kinds, linked both ways ---------------------------------------------------------------


def test_a_revert_reads_revert_of_and_its_source_reads_reverted_by(
    sim, client, operator_client, viewer_client
):
    rollout = confirmed(2)
    engine.start(rollout.pk, client, sleep=no_sleep)
    assert tick(rollout, client, sim, advance=3600) == Rollout.State.SUCCEEDED
    operator_client.post(f"/rollouts/{rollout.pk}/revert/")
    revert = Rollout.objects.latest("pk")
    assert revert.kind == Rollout.Kind.REVERT

    plan_page = viewer_client.get(f"/rollouts/new/{revert.pk}/").content.decode()
    assert "Revert of" in plan_page and "Retry of" not in plan_page
    source_page = viewer_client.get(f"/rollouts/{rollout.pk}/").content.decode()
    assert "Reverted by" in source_page and f"/rollouts/{revert.pk}/" in source_page
    planned = viewer_client.get(f"/rollouts/{rollout.pk}/export.csv").content.decode()
    assert f"Reverted by #{revert.pk} (Planned)" in planned  # not yet done: said so
    assert viewer_client.get(f"/rollouts/{rollout.pk}/export.json").json()["follow_ups"][0][
        "state"
    ] == ("planned")
    Rollout.objects.filter(pk=revert.pk).update(state="succeeded")  # listed once it ran
    listing = viewer_client.get("/rollouts/").content.decode()
    assert f'Revert of <a href="/rollouts/{rollout.pk}/">' in listing
    assert f'Reverted by <a href="/rollouts/{revert.pk}/">' in listing

    data = viewer_client.get(f"/rollouts/{rollout.pk}/export.json").json()
    assert data["follow_ups"] == [
        {
            "label": "Reverted by",
            "rollout": revert.pk,
            "kind": "revert",
            "state": "succeeded",
            "url": f"{settings.DASHBOARD_BASE_URL}/rollouts/{revert.pk}/",
        }
    ]
    reverted = viewer_client.get(f"/rollouts/{revert.pk}/export.json").json()
    assert (reverted["kind"], reverted["origin"]) == ("revert", f"Revert of #{rollout.pk}")
    rows = list(
        csv.DictReader(
            io.StringIO(viewer_client.get(f"/rollouts/{rollout.pk}/export.csv").content.decode())
        )
    )
    assert rows[0]["follow_ups"] == f"Reverted by #{revert.pk}"


def test_a_retry_reads_retry_of(sim, client, operator_client):
    rollout = confirmed(2)
    sim.state.reject(rollout.servers.filter(verdict="change").first().server_id, "WKS.00129901")
    engine.start(rollout.pk, client, sleep=no_sleep)
    tick(rollout, client, sim, advance=3600)
    operator_client.post(f"/rollouts/{rollout.pk}/retry/")
    retry = Rollout.objects.latest("pk")
    assert (retry.kind, retry.retry_of_id) == (Rollout.Kind.RETRY, rollout.pk)
    page = operator_client.get(f"/rollouts/new/{retry.pk}/").content.decode()
    assert "Retry of" in page


# --- exports guard every spreadsheet formula -------------------------------------------------


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_the_rollout_csv_guards_a_leading_formula_character(viewer_client, start):
    rollout = _rollout_with_rows("running", ["failed"])
    RolloutServer.objects.filter(rollout=rollout).update(error_message=f"{start}cmd|' /C calc'!A0")
    body = viewer_client.get(f"/rollouts/{rollout.pk}/export.csv").content.decode()
    row = next(csv.DictReader(io.StringIO(body)))
    assert row["error_message"] == f"'{start}cmd|' /C calc'!A0"


@pytest.mark.parametrize("start", ["\t", "\r", "="])
def test_the_audit_csv_guards_a_leading_formula_character(viewer_client, start):
    AuditEvent.objects.create(actor="otto", action="rollout.plan", target=f"{start}HYPERLINK(x)")
    response = viewer_client.get("/audit/export.csv")
    body = b"".join(response.streaming_content).decode()
    rows = [r for r in csv.DictReader(io.StringIO(body)) if r["action"] == "rollout.plan"]
    assert rows[0]["target"] == f"'{start}HYPERLINK(x)"


def test_lists_say_a_paused_rollout_awaits_sign_off_of_its_canary(viewer_client):
    from dashboard.rollouts import lifecycle

    held, paused = (
        Rollout.objects.create(created_by="otto", reason="r", state="running") for _ in range(2)
    )
    lifecycle.transition(held, "hold_for_signoff", reason="canary done")
    lifecycle.transition(paused, "pause", by="otto")

    for path in ("/rollouts/", "/"):
        page = viewer_client.get(path).content.decode()
        rows = {
            int(pk): row
            for pk, row in re.findall(r'href="/rollouts/(\d+)/">#\d+</a>(.*?)</tr>', page, re.S)
        }
        assert "awaiting sign-off of its canary" in rows[held.pk], path
        assert "awaiting sign-off" not in rows[paused.pk], path

    lifecycle.transition(held, "resume", by="otto")
    assert "awaiting sign-off" not in viewer_client.get("/rollouts/").content.decode()


def test_the_rollout_page_names_its_planner_and_a_kind_only_for_follow_ups(viewer_client):
    source = Rollout.objects.create(created_by="paula", reason="r", state="awaiting_approval")
    page = viewer_client.get(f"/rollouts/{source.pk}/").content.decode()
    assert "<dt>Planned by</dt>" in page and "Started by" not in page  # nothing started yet
    assert "<dt>Kind</dt>" not in page
    retry = Rollout.objects.create(
        created_by="paula", reason="r", state="queued", kind="retry", retry_of=source
    )
    assert "<dt>Kind</dt>" in viewer_client.get(f"/rollouts/{retry.pk}/").content.decode()


def test_discarding_a_plan_of_several_groups_goes_back_to_the_servers_page(operator_client):
    rollout = Rollout.objects.create(created_by="otto.operator", reason="r", state="planned")
    for n, group in enumerate(["g-a", "g-a", "g-b"]):  # the first two rows share a group
        RolloutServer.objects.create(
            rollout=rollout, server_id=f"s-{n}", server_name=f"a-{n}", group_id=group, chunk=0
        )
    response = operator_client.post(f"/rollouts/new/{rollout.pk}/discard/")
    assert response["Location"] == "/servers/"
