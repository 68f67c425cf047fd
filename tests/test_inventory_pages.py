"""The inventory pages: filters, search, sort, the htmx fragment, detail, freshness."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from dashboard import inventory
from dashboard.models import Image, Rollout, RolloutServer, Server, ServerGroup, SyncRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet():
    now = timezone.now()
    Image.objects.create(id="img-new", name="win-2026.11", os_type="Windows", synced_at=now)
    Image.objects.create(id="img-old", name="win-2026.09", os_type="Windows", synced_at=now)
    fin = ServerGroup.objects.create(id="g-fin", name="finance", image_id="img-new", synced_at=now)
    cad = ServerGroup.objects.create(id="g-cad", name="cad", image_id="img-new", synced_at=now)

    def server(sid, group, image, **extra):
        return Server.objects.create(
            id=sid,
            name=sid,
            group=group,
            image_id=image,
            synced_at=now,
            drift=image != group.image_id,
            **extra,
        )

    server("fin-1", fin, "img-old", ip_addresses="10.0.0.1", session_count=3)
    server("fin-2", fin, "img-new", maintain_status=True, status="MAINTAINING")
    server("fin-3", fin, "img-old", job_status="RUNNING", machine_name="APS-XYZ")
    server("cad-1", cad, "img-old", status="REGISTERED")
    server("cad-2", cad, "img-new", status="STOPPED")
    server("gone-1", cad, "img-old", gone=True)
    SyncRun.objects.create(state="succeeded", finished_at=now - timedelta(minutes=3))
    inventory.recount_figures()  # the pages show figures a sync stores


def names(response) -> list[str]:
    return [s.name for s in response.context["page"]]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["cad-1", "cad-2", "fin-1", "fin-2", "fin-3"]),
        ({"group": "g-fin", "drift": "yes"}, ["fin-1", "fin-3"]),
        ({"drift": "no"}, ["cad-2", "fin-2"]),
        ({"q": "10.0.0.1"}, ["fin-1"]),
        ({"q": "aps-xyz"}, ["fin-3"]),
        ({"q": "cad-2"}, ["cad-2"]),
        ({"image": "img-new"}, ["cad-2", "fin-2"]),
        ({"status": "STOPPED"}, ["cad-2"]),
        ({"maintenance": "yes"}, ["fin-2"]),
        ({"sessions": "yes"}, ["fin-1"]),
        ({"job_status": "RUNNING"}, ["fin-3"]),
        ({"job_status": "none"}, ["cad-1", "cad-2", "fin-1", "fin-2"]),
        ({"sort": "-name"}, ["fin-3", "fin-2", "fin-1", "cad-2", "cad-1"]),
    ],
)
def test_filters_search_and_sort(viewer_client, fleet, params, expected):
    assert names(viewer_client.get("/servers/", params)) == expected


def test_unknown_filter_values_are_ignored_not_an_error(viewer_client, fleet):
    response = viewer_client.get("/servers/", {"group": "<script>", "sort": "password"})
    assert response.status_code == 200
    assert len(names(response)) == 5


def test_an_htmx_request_gets_only_the_results_fragment(viewer_client, fleet):
    response = viewer_client.get("/servers/", {"drift": "yes"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert "<html" not in html and 'id="server-results"' in html
    assert "fin-1" in html and "cad-2" not in html


def test_the_page_links_keep_the_filters(viewer_client, fleet, monkeypatch):
    import dashboard.views.inventory as views

    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    html = viewer_client.get("/servers/", {"drift": "yes"}).content.decode()
    assert "?drift=yes&amp;cursor=" in html and "page=" not in html


def test_select_all_matching_offers_the_whole_filter_to_operators(operator_client, fleet):
    html = operator_client.get("/servers/", {"drift": "yes"}).content.decode()
    assert "Plan for all 3 matching" in html
    assert 'name="filter" value="drift=yes"' in html


def test_viewers_get_no_selection_controls(viewer_client, fleet):
    html = viewer_client.get("/servers/", {"drift": "yes"}).content.decode()
    assert "Plan rollout" not in html and 'name="server"' not in html


def test_groups_show_drift_maintenance_and_sessions(viewer_client, fleet):
    response = viewer_client.get("/groups/")
    fin = next(g for g in response.context["groups"] if g.name == "finance")
    assert (fin.live, fin.drift, fin.maintenance, fin.sessions) == (3, 2, 1, 3)


def test_images_show_usage(viewer_client, fleet):
    rows = viewer_client.get("/images/").context["rows"]
    usage = {image.id: (running, [g.name for g in groups]) for image, running, groups in rows}
    assert usage["img-old"] == (3, [])
    assert usage["img-new"] == (2, ["cad", "finance"])


def test_the_overviews_busy_card_lists_the_servers_it_counts(viewer_client, fleet):
    Server.objects.filter(pk="cad-1").update(job_status="WAITING")
    inventory.recount_figures()
    overview = viewer_client.get("/").content.decode()
    card = re.search(
        r'<a class="card" href="([^"]*job_status=[^"]*)"><div class="figure">(\d+)', overview
    )
    assert card, overview
    listed = viewer_client.get(card.group(1).replace("&amp;", "&"))
    assert sorted(names(listed)) == ["cad-1", "fin-3"]  # one waiting, one running
    assert int(card.group(2)) == 2


def test_images_say_when_they_were_created(viewer_client, fleet):
    Image.objects.filter(id="img-new").update(created_at=datetime(2026, 10, 28, 11, tzinfo=UTC))
    Image.objects.filter(id="img-old").update(created_at=None)
    html = viewer_client.get("/images/").content.decode()
    assert "<th>Created</th>" in html
    assert '<time datetime="2026-10-28T11:00:00+00:00">2026-10-28</time>' in html


def test_the_server_detail_shows_images_seen_and_rollouts(viewer_client, fleet):
    rollout = Rollout.objects.create(created_by="otto", reason="r", state="succeeded")
    RolloutServer.objects.create(
        rollout=rollout,
        server_id="fin-1",
        server_name="fin-1",
        to_image_id="img-new",
        verdict="change",
        state="succeeded",
    )
    html = viewer_client.get("/servers/fin-1/").content.decode()
    assert "win-2026.09" in html and f"#{rollout.pk}" in html
    assert viewer_client.get("/servers/nope/").status_code == 404


def test_every_inventory_page_says_how_fresh_its_data_is(viewer_client, fleet):
    for path in ["/", "/groups/", "/servers/", "/images/", "/servers/fin-1/"]:
        assert "Data from" in viewer_client.get(path).content.decode(), path


def test_hostile_names_render_escaped(viewer_client, fleet):
    Server.objects.filter(pk="fin-1").update(name='<img src=x onerror="alert(1)">')
    html = viewer_client.get("/servers/").content.decode()
    assert "<img src=x" not in html and "&lt;img src=x" in html


def test_a_refresh_request_from_an_operator_starts_or_joins_a_sync(operator_client, fleet):
    SyncRun.objects.all().delete()
    assert operator_client.post("/inventory/sync/").status_code == 302
    assert operator_client.post("/inventory/sync/").status_code == 302
    assert SyncRun.objects.filter(state="running").count() == 1


def test_a_viewer_cannot_start_a_sync(viewer_client, fleet):
    assert viewer_client.post("/inventory/sync/").status_code == 403
    assert not SyncRun.objects.filter(state="running").exists()


def test_search_finds_synced_servers_by_name_machine_name_and_address(
    sim_settings, cloud_client, viewer_client
):
    inventory.sync_now(client=cloud_client)
    server = next(s for s in Server.objects.filter(gone=False) if s.machine_name and s.ip_addresses)
    for q in [server.name.upper(), server.machine_name.lower(), server.ip_addresses.split()[0]]:
        found = [s.id for s in viewer_client.get("/servers/", {"q": q}).context["page"]]
        assert server.id in found, q
    assert [s.id for s in viewer_client.get("/servers/", {"q": server.id}).context["page"]] == [
        server.id
    ]


def test_filter_selects_keep_the_choice_and_escape_names(viewer_client, fleet):
    ServerGroup.objects.filter(pk="g-cad").update(name='cad "<b>"')
    html = viewer_client.get("/servers/", {"group": "g-fin", "drift": "yes"}).content.decode()
    assert '<select name="group" id="id_group">' in html
    assert '<option value="g-fin" selected>finance</option>' in html
    assert '<option value="g-cad">cad &quot;&lt;b&gt;&quot;</option>' in html
    assert '<option value="yes" selected>yes</option>' in html
    assert '<option value="">any</option>' in html
