"""Maintenance mode around a change, a vanished job, the history filters and the controls."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from dashboard.models import Rollout, RolloutServer, Server
from dashboard.rollouts import engine, planning
from tests.rollout_helpers import confirm_from_page

pytestmark = pytest.mark.django_db


def confirmed(n=3, **options) -> Rollout:
    servers = list(
        Server.objects.filter(drift=True, frozen=False, maintain_status=False)
        .exclude(job_status__in=["WAITING", "RUNNING"])
        .select_related("group")
    )
    image_id = servers[0].group.image_id
    servers = [s for s in servers if s.group.image_id == image_id][:n]
    images = planning.image_map()
    rollout = planning.create_plan(
        created_by="otto.operator",
        servers=servers,
        target=images[image_id],
        images=images,
        reason="CHG-3",
        **options,
    )
    assert planning.confirm(rollout.pk, "otto.operator").confirmed
    return rollout


def test_maintenance_mode_is_set_before_the_change_and_cleared_after_a_verified_success(
    synced, cloud_client
):
    rollout = confirmed(use_maintenance=True)
    ids = list(rollout.servers.filter(verdict="change").values_list("server_id", flat=True))
    engine.start(rollout.pk, cloud_client, sleep=lambda s: None)
    assert all(synced.state.servers[i].maintain_status for i in ids)
    maint = synced.requests("PATCH", "/app-servers/actions/batch-maint")
    change = synced.requests("POST", "/app-servers/actions/batch-change-image")
    assert maint[0]["time"] <= change[0]["time"]

    synced.advance(3600)
    assert engine.tick(rollout.pk, cloud_client) == "succeeded"
    assert not any(synced.state.servers[i].maintain_status for i in ids)
    assert not rollout.servers.filter(maintenance_set=True).exists()


def test_a_job_that_vanished_upstream_is_resolved_from_the_server(synced, cloud_client):
    rollout = confirmed(n=1)
    engine.start(rollout.pk, cloud_client, sleep=lambda s: None)
    row = rollout.servers.get(verdict="change")
    # The cloud forgot the job and the server shows another one: judge by the server's image.
    RolloutServer.objects.filter(pk=row.pk).update(job_id="999999999999999999")
    synced.advance(3600)
    engine.tick(rollout.pk, cloud_client)
    row.refresh_from_db()
    assert row.state == "succeeded" and row.verified is True


def test_a_vanished_job_on_a_server_still_on_its_old_image_fails_clearly(synced, cloud_client):
    rollout = confirmed(n=1)
    row = rollout.servers.get(verdict="change")
    Rollout.objects.filter(pk=rollout.pk).update(state="running", started_at=timezone.now())
    RolloutServer.objects.filter(pk=row.pk).update(
        state="running", job_id="999999999999999999", submitted_at=timezone.now()
    )
    engine.tick(rollout.pk, cloud_client)
    row.refresh_from_db()
    assert row.state == "failed" and row.error_code == "JOB_VANISHED"


def test_the_history_filters_by_state_user_group_and_date(viewer_client):
    old = Rollout.objects.create(created_by="otto", reason="a", state="succeeded")
    Rollout.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    new = Rollout.objects.create(created_by="vera", reason="b", state="failed")
    RolloutServer.objects.create(
        rollout=new,
        server_id="s",
        server_name="s",
        group_name="cad",
        to_image_id="i",
        verdict="change",
        state="failed",
    )
    Rollout.objects.create(created_by="otto", reason="c", state="discarded")

    def shown(**params):
        page = viewer_client.get("/rollouts/", params).context["page"]
        return [r.pk for r in page]

    assert shown() == [new.pk, old.pk]  # discarded plans are not history
    assert shown(state="failed") == [new.pk]
    assert shown(user="ott") == [old.pk]
    assert shown(group="cad") == [new.pk]
    assert shown(date=timezone.now().date().isoformat()) == [new.pk]
    response = viewer_client.get("/rollouts/", {"date": "yesterday"})
    assert response.status_code == 200 and b"must look like" in response.content


def test_pause_and_resume_through_the_page(synced, operator_client, cloud_client):
    rollout = confirmed(n=2)
    engine.start(rollout.pk, cloud_client, sleep=lambda s: None)
    operator_client.post(f"/rollouts/{rollout.pk}/pause/")
    assert Rollout.objects.get(pk=rollout.pk).state == "paused"
    page = operator_client.get(f"/rollouts/{rollout.pk}/").content.decode()
    assert "Resume" in page and "Pause</button>" not in page
    operator_client.post(f"/rollouts/{rollout.pk}/resume/", {"how": "continue"})
    assert Rollout.objects.get(pk=rollout.pk).state == "running"


def test_an_unknown_way_to_resume_is_refused_and_changes_nothing(
    synced, operator_client, cloud_client
):
    rollout = confirmed(n=2)
    engine.start(rollout.pk, cloud_client, sleep=lambda s: None)
    operator_client.post(f"/rollouts/{rollout.pk}/pause/")
    response = operator_client.post(f"/rollouts/{rollout.pk}/resume/", {"how": "yolo"}, follow=True)
    assert b"cannot be resumed that way" in response.content
    assert Rollout.objects.get(pk=rollout.pk).state == "paused"


def test_viewers_see_no_controls(synced, viewer_client, cloud_client):
    rollout = confirmed(n=2)
    engine.start(rollout.pk, cloud_client, sleep=lambda s: None)
    page = viewer_client.get(f"/rollouts/{rollout.pk}/").content.decode()
    for control in ("Pause", "Cancel what has not been sent", "Retry failed", "Revert"):
        assert control not in page


def test_revert_through_the_page_plans_back_to_previous_images(
    synced, operator_client, cloud_client
):
    rollout = confirmed(n=2)
    before = dict(
        rollout.servers.filter(verdict="change").values_list("server_id", "from_image_id")
    )
    engine.start(rollout.pk, cloud_client, sleep=lambda s: None)
    synced.advance(3600)
    engine.tick(rollout.pk, cloud_client)
    response = operator_client.post(f"/rollouts/{rollout.pk}/revert/")
    assert response.status_code == 302
    plan = Rollout.objects.latest("pk")
    assert plan.kind == "revert"
    assert dict(plan.servers.values_list("server_id", "to_image_id")) == before


def test_a_revert_keeps_the_care_its_rollout_was_sent_with(synced, operator_client, cloud_client):
    rollout = confirmed(n=2)
    engine.start(rollout.pk, cloud_client, sleep=lambda s: None)
    synced.advance(3600)
    engine.tick(rollout.pk, cloud_client)
    Rollout.objects.filter(pk=rollout.pk).update(  # as a careful rollout would have stored
        session_policy=Rollout.SessionPolicy.WAIT_LOGOFF,
        wave_size=1,
        soak_seconds=300,
        failure_budget=0,
        use_maintenance=True,
        preset="careful",
    )
    assert operator_client.post(f"/rollouts/{rollout.pk}/revert/").status_code == 302

    plan = Rollout.objects.latest("pk")
    assert plan.kind == "revert"
    assert plan.session_policy == Rollout.SessionPolicy.WAIT_LOGOFF  # users not cut off
    assert (plan.soak_seconds, plan.failure_budget) == (300, 0)
    assert plan.use_maintenance and plan.preset == "careful"
    assert plan.canary_size == 0 and plan.scheduled_at is None


def test_a_protected_group_needs_a_second_person_to_approve(
    synced,
    operator_client,
    approver_client,
    sso_client,
    settings,
    django_capture_on_commit_callbacks,
):
    server = (
        Server.objects.filter(drift=True, frozen=False)
        .exclude(job_status__in=["WAITING", "RUNNING"])
        .select_related("group")
        .first()
    )
    settings.PROTECTED_SERVER_GROUPS = [server.group.name]
    operator_client.post(
        "/rollouts/new/plan/",
        {"server": [server.id], "target_image": server.group.image_id, "reason": "CHG-5"},
    )
    rollout = Rollout.objects.latest("pk")
    confirm_from_page(operator_client, rollout)
    assert Rollout.objects.get(pk=rollout.pk).state == "awaiting_approval"

    # The submitter, even holding the approver role too, cannot approve their own rollout.
    both = sso_client("otto.operator", ["dashboard-operators", "dashboard-approvers"])
    assert both.post(f"/rollouts/{rollout.pk}/approve/").status_code == 403
    assert Rollout.objects.get(pk=rollout.pk).state == "awaiting_approval"

    from django_tasks_db.models import DBTaskResult

    with django_capture_on_commit_callbacks(execute=True):
        assert approver_client.post(f"/rollouts/{rollout.pk}/approve/").status_code == 302
    rollout.refresh_from_db()
    assert rollout.state == "queued" and rollout.approved_by == "april.approver"
    assert DBTaskResult.objects.filter(task_path__endswith="start_rollout").exists()


def test_a_wave_shows_sessions_left_and_logoff_only_while_waiting_for_users(viewer_client):
    from dashboard.models import RolloutWave
    from tests.api_helpers import running_rollout

    rollout = running_rollout()
    Rollout.objects.filter(pk=rollout.pk).update(session_policy="logoff")
    soon = timezone.now() + timedelta(minutes=5)
    for number, state in ((1, "done"), (2, "logging_off")):
        RolloutWave.objects.create(
            rollout=rollout,
            number=number,
            size=1,
            state=state,
            session_policy="logoff",
            sessions_left=4 + number,
            logoff_at=soon,
        )

    html = viewer_client.get(f"/rollouts/{rollout.pk}/").content.decode()

    rows = dict(re.findall(r'<tr data-wave-state="(\w+)">(.*?)</tr>', html, re.S))
    assert "sessions left" not in rows["done"] and "logoff at" not in rows["done"]
    assert "6 sessions left" in rows["logging_off"] and "logoff at" in rows["logging_off"]


def test_an_unknown_state_is_named_and_the_other_filters_still_apply(viewer_client):
    mine = Rollout.objects.create(created_by="otto", target_image_id="i", state="failed")
    Rollout.objects.create(created_by="ada", target_image_id="i", state="failed")

    response = viewer_client.get("/rollouts/", {"state": "bogus", "user": "otto"})

    html = response.content.decode()
    found = re.search(r'<div id="refused-filters" role="alert">.*?</div>', html, re.S)
    assert found is not None and "State: No state is called “bogus”." in found.group(0)
    assert [r.pk for r in response.context["page"]] == [mine.pk]  # user=otto still applied
    assert "No rollouts match." not in html


def test_a_date_that_is_not_one_is_named_among_the_refused_filters(viewer_client):
    html = viewer_client.get("/rollouts/", {"date": "yesterday"}).content.decode()
    found = re.search(r'<div id="refused-filters" role="alert">.*?</div>', html, re.S)
    assert found is not None and "Date: The date must look like 2026-11-26." in found.group(0)


def test_the_history_counts_the_servers_to_change_as_the_rollout_page_does(viewer_client):
    rollout = Rollout.objects.create(created_by="vera", reason="r", state="succeeded")
    for n, (verdict, state) in enumerate(
        [("change", "succeeded")] * 2 + [("skip", "skipped")] * 3 + [("change", "skipped")]
    ):
        RolloutServer.objects.create(
            rollout=rollout, server_id=f"s-{n}", server_name=f"s-{n}", verdict=verdict, state=state
        )

    listed = viewer_client.get("/rollouts/").content.decode()

    row = re.search(rf'<tr[^>]*>\s*<td><a href="/rollouts/{rollout.pk}/">.*?</tr>', listed, re.S)
    cells = re.findall(r'<td class="num">(.*?)</td>', row.group(0), re.S)
    assert cells[0].startswith("2 ") and "of 6 in the plan" in cells[0]
    from dashboard.rollouts import progress

    assert progress.summary(rollout).to_change == 2  # the figure the rollout page shows


def test_looking_at_the_revert_page_of_a_running_rollout_is_not_audited(
    synced, operator_client, cloud_client
):
    from dashboard.models import AuditEvent

    rollout = confirmed(n=2)
    engine.start(rollout.pk, cloud_client, sleep=lambda s: None)
    assert Rollout.objects.get(pk=rollout.pk).state == "running"

    page = operator_client.get(f"/rollouts/{rollout.pk}/revert/", follow=True)
    assert "cannot be reverted while it is running" in page.content.decode()
    assert not AuditEvent.objects.filter(action="rollout.revert").exists()
    operator_client.post(f"/rollouts/{rollout.pk}/revert/")  # an attempt is audited
    assert AuditEvent.objects.get(action="rollout.revert").outcome == "refused"
