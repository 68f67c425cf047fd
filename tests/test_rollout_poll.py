"""The live rollout page's htmx contract, its fixed query counts, and the refresh's calls."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard.models import Image, Rollout, RolloutServer, Server, ServerGroup
from dashboard.rollouts import engine

pytestmark = pytest.mark.django_db


def make_rollout(n: int, state: str = "running", row_state: str = "waiting") -> Rollout:
    now = timezone.now()
    rollout = Rollout.objects.create(
        created_by="otto.operator",
        reason="CHG-1",
        target_image_id="img-new",
        target_image_name="win-new",
        state=state,
        started_at=now,
    )
    RolloutServer.objects.bulk_create(
        RolloutServer(
            rollout=rollout,
            server_id=f"srv-{i}",
            server_name=f"srv-{i:04d}",
            to_image_id="img-new",
            from_image_id="img-old",
            verdict="change",
            state=row_state,
            job_id=str(1000 + i),
            chunk=i // 50 + 1,
        )
        for i in range(n)
    )
    return rollout


def poll(client, rollout, since=None, **headers):
    params = {"since": since.isoformat()} if since else {}
    return client.get(f"/rollouts/{rollout.pk}/poll/", params, HTTP_HX_REQUEST="true", **headers)


def test_the_full_page_renders_every_row_and_a_polling_element(viewer_client):
    rollout = make_rollout(5)
    page = viewer_client.get(f"/rollouts/{rollout.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('data-state="waiting"') == 5
    assert 'hx-trigger="every 2s"' in html
    assert "<html" in html


def test_a_poll_while_running_returns_a_fragment_with_the_trigger(viewer_client):
    rollout = make_rollout(3)
    response = poll(viewer_client, rollout)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html
    assert 'hx-trigger="every 2s"' in html
    assert 'id="rollout-summary" hx-swap-oob="true"' in html


def test_a_poll_sends_only_rows_that_changed(viewer_client):
    rollout = make_rollout(10)
    since = timezone.now()
    changed = rollout.servers.order_by("pk")[3]
    RolloutServer.objects.filter(pk=changed.pk).update(state="running")

    html = poll(viewer_client, rollout, since).content.decode()

    assert html.count("<tr ") == 1
    assert f'id="row-{changed.pk}"' in html and 'data-state="running"' in html


def test_a_poll_when_nothing_changed_sends_nothing(viewer_client):
    rollout = make_rollout(10)
    response = poll(viewer_client, rollout, timezone.now() + timedelta(seconds=1))
    assert response.status_code == 204
    assert response.content == b""


def test_the_poll_stops_with_286_once_the_rollout_is_final(viewer_client):
    rollout = make_rollout(3, state="succeeded", row_state="succeeded")
    response = poll(viewer_client, rollout, timezone.now() - timedelta(seconds=5))
    assert response.status_code == 286
    assert "hx-trigger" not in response.content.decode()


@pytest.mark.parametrize("size", [10, 1000])
def test_the_poll_runs_a_fixed_number_of_queries_whatever_the_size(viewer_client, size):
    rollout = make_rollout(size)
    since = timezone.now()
    rollout.servers.filter(pk__in=list(rollout.servers.values_list("pk", flat=True)[:5])).update(
        state="running"
    )
    viewer_client.get("/")  # the session exists before we count
    with CaptureQueriesContext(connection) as queries:
        assert poll(viewer_client, rollout, since).status_code == 200
    assert len(queries) == FIXED_POLL_QUERIES


# session, user, the person's roles as last seen, rollout, whether any row moved, the page's
# rows that moved, two summary aggregates, rows per wave, rows per group, waves, new timeline
# events (the budget comes from the summary; whether anything is revertable is asked only once
# something succeeded)
FIXED_POLL_QUERIES = 12


def test_anonymous_pollers_get_403_and_unknown_rollouts_404(client, viewer_client):
    rollout = make_rollout(1)
    assert poll(client, rollout).status_code == 403
    assert viewer_client.get("/rollouts/999999/poll/").status_code == 404


def tracked_row(rollout, server, to_image_id, state, submitted_at=None) -> RolloutServer:
    """A row of `rollout` tracking the job the simulator runs on `server`."""
    return RolloutServer.objects.create(
        rollout=rollout,
        server_id=server.id,
        server_name=server.name,
        group_id=server.group_id,
        to_image_id=to_image_id,
        verdict="change",
        state=state,
        job_id=server.job_id,
        submitted_at=submitted_at or timezone.now(),
    )


def start_job(sim, cloud_client) -> Server:
    """Start a real change job on one drifted server in the simulator, then resync."""
    from dashboard import inventory
    from dashboard.cloud.records import ChangeTarget

    inventory.sync_now(client=cloud_client)
    server = Server.objects.filter(drift=True, frozen=False, job_status="SUCCESS").first()
    image = Image.objects.get(id=server.group.image_id)
    target = ChangeTarget(image.id, image.image_type, image.os_type, image.product_code)
    result = cloud_client.batch_change_image([server.id], target)
    assert result.items[0].accepted
    sim.advance(sim.config.job_seconds / 2)  # WAITING → RUNNING
    inventory.sync_now(client=cloud_client)
    return Server.objects.get(pk=server.id)


def test_rows_still_running_long_after_submission_are_flagged_slow(
    sim_settings, cloud_client, settings
):
    settings.ROLLOUT_JOB_SLOW_SECONDS = 60
    server = start_job(sim_settings, cloud_client)
    rollout = make_rollout(0)
    tracked_row(
        rollout,
        server,
        server.group.image_id,
        "waiting",
        submitted_at=timezone.now() - timedelta(minutes=5),
    )
    engine.tick(rollout.pk, cloud_client)
    row = rollout.servers.get()
    assert row.state == "running" and row.slow is True


def test_a_succeeded_job_on_the_wrong_image_is_flagged_not_verified(
    sim_settings, cloud_client, viewer_client
):
    server = start_job(sim_settings, cloud_client)
    rollout = make_rollout(0)
    row = tracked_row(rollout, server, "some-other-image", "running")
    sim_settings.advance(sim_settings.config.job_seconds)
    engine.tick(rollout.pk, cloud_client)
    row.refresh_from_db()
    assert row.state == "succeeded" and row.verified is False
    assert "not verified" in viewer_client.get(f"/rollouts/{rollout.pk}/").content.decode()


def test_refresh_calls_depend_on_active_jobs_not_on_watchers(
    sim_settings, cloud_client, viewer_client
):
    from dashboard import inventory

    inventory.sync_now(client=cloud_client)
    start_job(sim_settings, cloud_client)
    busy = list(Server.objects.filter(job_status__in=["RUNNING", "WAITING"]))
    rollout = make_rollout(0)
    for server in busy:
        tracked_row(rollout, server, "x", "running")
    before = cloud_client.calls
    engine.tick(rollout.pk, cloud_client)
    quiet = cloud_client.calls - before

    for _ in range(20):
        poll(viewer_client, rollout, timezone.now())
    before = cloud_client.calls
    engine.tick(rollout.pk, cloud_client)
    watched = cloud_client.calls - before

    assert quiet == watched
    groups = {s.group_id for s in busy}
    assert quiet <= max(len(busy), len(groups) * 1)  # whole groups or one by one, whichever less


def test_exports_carry_every_server_and_neutralise_formulas(viewer_client):
    rollout = make_rollout(3)
    RolloutServer.objects.filter(rollout=rollout).update(error_message="=HYPERLINK(evil)")
    csv_body = viewer_client.get(f"/rollouts/{rollout.pk}/export.csv").content.decode()
    assert csv_body.count("\n") == 4  # header + three rows
    assert "'=HYPERLINK" in csv_body
    data = viewer_client.get(f"/rollouts/{rollout.pk}/export.json").json()
    assert [s["server_name"] for s in data["servers"]] == ["srv-0000", "srv-0001", "srv-0002"]
    assert viewer_client.get(f"/rollouts/{rollout.pk}/export.xml").status_code == 404


@pytest.mark.parametrize("count", [50, 600])
def test_the_servers_page_runs_a_fixed_number_of_queries(viewer_client, count):
    now = timezone.now()
    group = ServerGroup.objects.create(id="g1", name="finance", image_id="img-new", synced_at=now)
    Image.objects.create(id="img-new", name="win-new", synced_at=now)
    Server.objects.bulk_create(
        Server(
            id=f"s{i}",
            name=f"srv-{i:05d}",
            group=group,
            image_id="img-old",
            drift=True,
            synced_at=now,
        )
        for i in range(count)
    )
    viewer_client.get("/")
    with CaptureQueriesContext(connection) as queries:
        response = viewer_client.get("/servers/", {"group": "g1", "drift": "yes"})
    assert response.status_code == 200
    assert response.context["page"].paginator.count == count
    assert len(queries) == FIXED_SERVER_PAGE_QUERIES


FIXED_SERVER_PAGE_QUERIES = 9  # with the person's roles as last seen (service tokens)


def test_a_refresh_in_which_no_job_moved_sends_no_rows_to_pollers(
    sim_settings, cloud_client, viewer_client
):
    server = start_job(sim_settings, cloud_client)
    rollout = make_rollout(0)
    tracked_row(rollout, server, server.group.image_id, "running")
    engine.tick(rollout.pk, cloud_client)
    since = timezone.now()
    engine.tick(rollout.pk, cloud_client)  # the job is still running

    html = poll(viewer_client, rollout, since).content.decode()
    assert "<tr " not in html  # the summary may move ("checked N s ago"), the rows did not
    row = rollout.servers.get()
    assert row.last_checked_at >= since


def test_check_times_read_as_relative_times_with_the_exact_time_on_hover(viewer_client):
    rollout = make_rollout(2)
    now = timezone.now()
    Rollout.objects.filter(pk=rollout.pk).update(last_checked_at=now)
    RolloutServer.objects.filter(rollout=rollout).update(last_checked_at=now - timedelta(minutes=3))
    html = viewer_client.get(f"/rollouts/{rollout.pk}/").content.decode()
    assert "jobs checked <time" in html and "just now</time>" in html
    assert "3 min ago</time>" in html
    assert "minutes ago" not in html  # not Django's timesince ("0 minutes ago")
    assert 'title="' in html.split("jobs checked <time", 1)[1].split(">", 1)[0]
