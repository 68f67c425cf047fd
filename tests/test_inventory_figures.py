"""Figures the sync stores (per group and for the fleet) agree with a recount of servers."""

import pytest
from django.db.models import Count, Q, Sum

from dashboard import inventory
from dashboard.models import InventoryFigures, Server, ServerGroup, SyncRun

pytestmark = pytest.mark.django_db

COUNTS = {
    "servers": Count("id"),
    "drifted": Count("id", filter=Q(drift=True)),
    "in_maintenance": Count("id", filter=Q(maintain_status=True)),
    "busy": Count("id", filter=Q(job_status__in=["WAITING", "RUNNING"])),
    "sessions": Sum("session_count", default=0),
}


def recount_groups() -> dict[str, dict]:
    rows = Server.objects.filter(gone=False, group__isnull=False).values("group_id")
    counted = {r.pop("group_id"): r for r in rows.annotate(**COUNTS)}
    empty = dict.fromkeys(COUNTS, 0)
    return {
        g: counted.get(g, empty)
        for g in ServerGroup.objects.filter(gone=False).values_list("id", flat=True)
    }


def stored_groups() -> dict[str, dict]:
    return {
        g.id: {
            "servers": g.servers_live,
            "drifted": g.servers_drifted,
            "in_maintenance": g.servers_in_maintenance,
            "busy": g.servers_busy,
            "sessions": g.sessions,
        }
        for g in ServerGroup.objects.filter(gone=False)
    }


def stored_totals() -> dict:
    f = InventoryFigures.objects.get(pk=1)
    return {
        "servers": f.servers,
        "drifted": f.servers_drifted,
        "in_maintenance": f.servers_in_maintenance,
        "busy": f.servers_busy,
        "sessions": f.sessions,
        "groups": f.groups,
    }


def recount_totals() -> dict:
    totals = Server.objects.filter(gone=False).aggregate(**COUNTS)
    return {**totals, "groups": ServerGroup.objects.filter(gone=False).count()}


def assert_figures_agree() -> None:
    assert stored_groups() == recount_groups()
    assert stored_totals() == recount_totals()


def test_figures_agree_with_a_recount_after_syncs_that_add_change_and_remove(
    sim_settings, cloud_client
):
    state = sim_settings.state
    ids = sorted(state.servers)
    with state.lock:  # held back from the first sync, so the second one adds them
        later = {sid: state.servers.pop(sid) for sid in ids[:3]}
    assert inventory.sync_now(client=cloud_client).state == SyncRun.State.SUCCEEDED
    assert_figures_agree()
    assert InventoryFigures.objects.get().servers == len(ids) - 3

    with state.lock:
        state.servers.update(later)
    other_image = next(i for i in state.images if i != state.servers[ids[3]].image_id)
    state.patch_server(ids[3], maintain_status=True, session_count=5, image_id=other_image)
    state.patch_server(ids[4], maintain_status=False, session_count=0)
    state.change_images(state.servers[ids[5]].image_id, [ids[5], ids[6]])  # busy now
    state.delete_server(ids[7])
    before = stored_totals()

    assert inventory.sync_now(client=cloud_client).state == SyncRun.State.SUCCEEDED
    assert_figures_agree()
    after = stored_totals()
    assert after["servers"] == before["servers"] + 3 - 1
    assert after["busy"] >= 2

    state.delete_server(ids[3])
    inventory.sync_now(client=cloud_client)
    assert_figures_agree()


def test_the_overview_and_groups_pages_show_the_stored_figures_without_counting(
    sim_settings, cloud_client, viewer_client, django_assert_max_num_queries
):
    inventory.sync_now(client=cloud_client)
    totals = recount_totals()
    group = ServerGroup.objects.filter(servers_drifted__gt=0).first()
    assert group is not None

    overview = viewer_client.get("/")
    groups = viewer_client.get("/groups/")

    assert overview.context["totals"] == {
        "servers": totals["servers"],
        "drift": totals["drifted"],
        "maintenance": totals["in_maintenance"],
        "sessions": totals["sessions"],
        "busy": totals["busy"],
    }
    assert overview.context["group_count"] == totals["groups"]
    drifted = [g.drift for g in overview.context["drifted_groups"]]
    assert drifted == sorted(drifted, reverse=True) and all(drifted)
    shown = {g.id: (g.live, g.drift, g.maintenance, g.sessions) for g in groups.context["groups"]}
    expected = recount_groups()[group.id]
    assert shown[group.id] == (
        expected["servers"],
        expected["drifted"],
        expected["in_maintenance"],
        expected["sessions"],
    )


def test_pages_do_not_touch_the_server_table(sim_settings, cloud_client, viewer_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    inventory.sync_now(client=cloud_client)
    for path in ["/", "/groups/"]:
        with CaptureQueriesContext(connection) as captured:
            assert viewer_client.get(path).status_code == 200
        server_reads = [q["sql"] for q in captured if '"dashboard_server"' in q["sql"]]
        assert server_reads == [], path


def test_figures_are_zero_before_the_first_sync(viewer_client):
    response = viewer_client.get("/")
    assert response.status_code == 200
    assert response.context["totals"]["servers"] == 0


def test_a_recount_fills_the_figures_of_servers_written_outside_a_sync(sim_settings, cloud_client):
    inventory.sync_now(client=cloud_client)
    Server.objects.filter(pk__in=list(Server.objects.values_list("pk", flat=True)[:5])).update(
        maintain_status=True, drift=True, session_count=7
    )
    assert stored_totals() != recount_totals()

    inventory.recount_figures()

    assert_figures_agree()
