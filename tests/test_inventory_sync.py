"""Inventory sync against the simulator over real HTTP."""

from datetime import timedelta

import pytest
import requests
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from dashboard import inventory
from dashboard.cloud.client import CloudClient
from dashboard.cloud.config import from_settings
from dashboard.models import (
    Image,
    InventoryFigures,
    Server,
    ServerGroup,
    ServerImageSeen,
    SyncRun,
)
from tests.sim_fixtures import cloud_settings

pytestmark = pytest.mark.django_db


def test_a_sync_stores_every_group_server_and_image(sim_settings, cloud_client):
    run = inventory.sync_now(client=cloud_client)

    state = sim_settings.state
    assert run.state == SyncRun.State.SUCCEEDED
    assert Server.objects.filter(gone=False).count() == len(state.servers)
    assert ServerGroup.objects.count() == len(state.groups)
    assert Image.objects.count() == len(state.images)
    assert run.servers_seen == len(state.servers)
    assert run.api_calls == cloud_client.calls


def test_drift_marks_servers_not_on_their_group_image(sim_settings, cloud_client):
    inventory.sync_now(client=cloud_client)

    groups = {g.id: g.image_id for g in sim_settings.state.groups.values()}
    expected = {
        s.id for s in sim_settings.state.servers.values() if s.image_id != groups[s.group_id]
    }
    assert expected  # the seeded fleet has drifted servers
    assert set(Server.objects.filter(drift=True).values_list("id", flat=True)) == expected


def test_a_server_removed_upstream_is_marked_gone_not_kept(sim_settings, cloud_client):
    inventory.sync_now(client=cloud_client)
    victim = next(iter(sim_settings.state.servers))
    sim_settings.state.delete_server(victim)

    run = inventory.sync_now(client=cloud_client)

    assert run.servers_gone == 1
    assert Server.objects.get(pk=victim).gone is True
    assert Server.objects.filter(gone=False).count() == len(sim_settings.state.servers)


class FailOnSecondServerPage(requests.adapters.HTTPAdapter):
    """Drops the connection on the second page of ListServers, as a flaky network would."""

    def send(self, request, *args, **kwargs):
        if "/app-servers?" in request.url and "offset=100" in request.url:
            raise requests.ConnectionError("connection reset by peer")
        return super().send(request, *args, **kwargs)


def test_a_page_failing_mid_sync_leaves_the_previous_snapshot_intact(simulator_factory, settings):
    sim = simulator_factory(servers=250)
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, **cloud_settings(sim), "RETRY_DEADLINE": 0.0}
    inventory.sync_now(client=CloudClient(from_settings()))
    before = dict(Server.objects.values_list("id", "synced_at"))
    sim.state.delete_server(next(iter(sim.state.servers)))

    session = requests.Session()
    session.mount("http://", FailOnSecondServerPage())
    run = inventory.sync_now(client=CloudClient(from_settings(), session=session))

    assert run.state == SyncRun.State.FAILED
    assert run.error
    assert dict(Server.objects.values_list("id", "synced_at")) == before
    assert not Server.objects.filter(gone=True).exists()


def test_a_second_refresh_request_joins_the_running_one():
    first, started = inventory.request_sync("manual", "otto")
    second, started_again = inventory.request_sync("manual", "vera")

    assert started is True and started_again is False
    assert second.pk == first.pk
    assert SyncRun.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_joined_refresh_requests_enqueue_one_sync_task():
    inventory.request_sync("manual")
    inventory.request_sync("manual")
    inventory.request_sync("schedule")
    assert DBTaskResult.objects.filter(task_path__endswith="sync_inventory").count() == 1


def test_a_crashed_sync_does_not_block_new_ones_forever():
    from datetime import timedelta

    from django.utils import timezone

    stuck, _ = inventory.request_sync("manual")
    SyncRun.objects.filter(pk=stuck.pk).update(started_at=timezone.now() - timedelta(hours=1))

    fresh, started = inventory.request_sync("manual")

    assert started and fresh.pk != stuck.pk
    assert SyncRun.objects.get(pk=stuck.pk).state == SyncRun.State.FAILED


def test_the_schedule_starts_a_sync_only_when_the_last_one_is_old(settings):
    from datetime import timedelta

    from django.utils import timezone

    settings.SYNC_INTERVAL_SECONDS = 300
    inventory.schedule_sync()
    assert SyncRun.objects.count() == 1  # start-up: never synced
    SyncRun.objects.update(state=SyncRun.State.SUCCEEDED)
    inventory.schedule_sync()
    assert SyncRun.objects.count() == 1  # fresh enough
    SyncRun.objects.update(started_at=timezone.now() - timedelta(seconds=301))
    inventory.schedule_sync()
    assert SyncRun.objects.count() == 2


def last_seen(server_id: str):
    return Server.objects.with_last_seen().get(pk=server_id).last_seen


def figures_time():
    return InventoryFigures.objects.get().updated_at


def test_a_repeat_sync_writes_what_changed_and_the_rest_is_seen_by_it(sim_settings, cloud_client):
    first = inventory.sync_now(client=cloud_client)
    changed, quiet = list(sim_settings.state.servers)[:2]
    sim_settings.state.patch_server(changed, session_count=9, maintain_status=True)
    written = Server.objects.get(pk=quiet).synced_at

    second = inventory.sync_now(client=cloud_client)

    row = Server.objects.get(pk=changed)
    assert (row.session_count, row.maintain_status) == (9, True)
    assert Server.objects.get(pk=quiet).synced_at == written  # not rewritten
    finished = SyncRun.objects.get(pk=second.pk).finished_at
    started = SyncRun.objects.get(pk=first.pk).finished_at
    assert started < last_seen(quiet) <= finished
    assert last_seen(quiet) == last_seen(changed) == figures_time()
    assert not Server.objects.filter(gone=True).exists()


def test_a_repeat_sync_of_a_quiet_fleet_writes_no_server_and_no_sighting(
    sim_settings, cloud_client
):
    inventory.sync_now(client=cloud_client)

    with CaptureQueriesContext(connection) as captured:
        run = inventory.sync_now(client=cloud_client)

    assert run.state == SyncRun.State.SUCCEEDED
    writes = [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].startswith(("UPDATE", "INSERT"))
        and ('"dashboard_server"' in q["sql"] or "serverimageseen" in q["sql"])
    ]
    assert writes == []


def test_what_vanished_or_moved_on_was_last_seen_by_the_sync_before(sim_settings, cloud_client):
    state = sim_settings.state
    inventory.sync_now(client=cloud_client)
    vanishing, moving = list(state.servers)[:2]
    old_image = state.servers[moving].image_id
    new_image = next(i for i in state.images if i != old_image)
    inventory.sync_now(client=cloud_client)
    before = figures_time()  # the sync that last saw both as they were
    state.delete_server(vanishing)
    state.patch_server(moving, image_id=new_image)

    inventory.sync_now(client=cloud_client)

    assert last_seen(vanishing) == before
    assert Server.objects.get(pk=vanishing).gone
    sightings = {s.image_id: s for s in ServerImageSeen.objects.filter(server_id=moving)}
    assert sightings[old_image].last_seen == before
    assert sightings[new_image].first_seen == sightings[new_image].last_seen == figures_time()
    assert ServerImageSeen.objects.get(server_id=vanishing).last_seen == before


def test_the_server_page_says_when_a_sync_last_saw_it(sim_settings, cloud_client, viewer_client):
    inventory.sync_now(client=cloud_client)
    quiet = next(iter(sim_settings.state.servers))
    InventoryFigures.objects.update(updated_at=timezone.now() - timedelta(minutes=7))
    Server.objects.filter(pk=quiet).update(synced_at=timezone.now() - timedelta(days=3))

    html = viewer_client.get(f"/servers/{quiet}/").content.decode()

    synced = html.split("Synced</dt><dd>", 1)[1].split("</dd>", 1)[0]
    assert "7 min ago" in synced
    seen = html.split('id="h-seen"', 1)[1]
    assert "7 min ago" in seen  # its current image, seen by that sync too
