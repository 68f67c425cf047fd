"""Page markup that needs no browser: audit details as JSON, relative times, table boxes, nav."""

import json
import re
from datetime import timedelta
from html import unescape

import pytest
from django.utils import timezone

from dashboard.models import AuditEvent, InventoryFigures, Server, ServerGroup, SyncRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(sso_client):
    return sso_client("ada.admin", ["dashboard-admins"])


def test_audit_details_are_indented_escaped_json_in_a_disclosure(admin):
    details = {
        "reason": "<script>alert('x')</script>",
        "servers": ["s-1", "s-2"],
        "count": 3,
        "nested": {"ok": True, "none": None},
    }
    AuditEvent.objects.create(
        actor="ada", action="rollout.plan", target="rollout #9", details=details
    )
    html = admin.get("/audit/").content.decode()

    block = re.search(
        r'<details class="json"><summary>(.*?)</summary><pre>(.*?)</pre></details>', html, re.S
    )
    assert block, "details are not in a <details>/<pre> disclosure"
    summary, pre = block.groups()
    assert summary.startswith("4 fields:")
    assert "<script>" not in pre and "&lt;script&gt;" in pre  # escaped, never marked safe
    assert json.loads(unescape(pre)) == details  # real JSON (true/null), not a Python repr
    assert '\n  "count": 3,' in unescape(pre)  # indented, keys sorted
    assert "{'" not in html and "True" not in pre


def test_an_event_without_details_shows_a_dash(admin):
    AuditEvent.objects.create(actor="ada", action="sync.request", target="sync #1")
    html = admin.get("/audit/").content.decode()
    assert 'class="json"' not in html
    assert re.search(r'<td class="small"><span class="muted">—</span></td>', html)


def test_audit_times_read_relative_with_the_exact_time_kept(admin):
    event = AuditEvent.objects.create(actor="ada", action="sync.request")
    html = admin.get("/audit/").content.decode()
    assert re.search(r'<time datetime="[^"]+" title="[^"]+ UTC">just now</time>', html)
    assert timezone.localtime(event.at).strftime("%Y-%m-%d %H:%M:%S") in html


def test_freshness_line_and_server_page_use_relative_times(admin):
    now = timezone.now()
    SyncRun.objects.create(state="succeeded", finished_at=now - timedelta(minutes=3))
    group = ServerGroup.objects.create(id="g-1", name="finance", image_id="img", synced_at=now)
    Server.objects.create(
        id="s-1", name="fin-1", group=group, image_id="img", synced_at=now - timedelta(hours=2)
    )
    overview = admin.get("/").content.decode()
    assert re.search(
        r"Data from <time datetime=\"[^\"]+\" title=\"[^\"]+\">3 min ago</time>", overview
    )
    # Written two hours ago, and seen unchanged by every sync since: when the last one saw it.
    InventoryFigures.objects.update(updated_at=now - timedelta(minutes=3))
    detail = admin.get("/servers/s-1/").content.decode()
    assert re.search(r"<dt>Synced</dt><dd><time [^>]+>3 min ago</time></dd>", detail)
    Server.objects.filter(pk="s-1").update(gone=True)  # gone: when it was last written
    detail = admin.get("/servers/s-1/").content.decode()
    assert re.search(r"<dt>Synced</dt><dd><time [^>]+>2 h ago</time></dd>", detail)


@pytest.mark.parametrize("path", ["/", "/groups/", "/servers/", "/images/", "/audit/"])
def test_every_table_scrolls_in_a_labelled_focusable_box(admin, path):
    html = admin.get(path).content.decode()
    # The workers panel (templates/inventory/workers.html) is not part of this check.
    html = re.sub(r"<h2>Workers</h2>.*?</table>", "", html, flags=re.S)
    tables = html.count("<table")
    boxes = re.findall(
        r'<div class="table-scroll" role="region" (aria-label(?:ledby)?="[^"]+") tabindex="0">',
        html,
    )
    assert tables and len(boxes) == tables, f"{path}: {tables} tables, {len(boxes)} labelled boxes"


def test_the_navigation_has_a_menu_button_and_a_skip_link(admin):
    html = admin.get("/groups/").content.decode()
    assert '<a class="skip-link" href="#main">Skip to content</a>' in html
    assert re.search(
        r'<button type="button" class="menu-toggle" aria-expanded="false"'
        r' aria-controls="site-nav">Menu</button>',
        html,
    )
    assert '<nav id="site-nav" aria-label="Main">' in html
    assert '<main id="main"' in html


def test_filtering_announces_the_count_in_a_live_region(admin):
    group = ServerGroup.objects.create(
        id="g-1", name="finance", image_id="img", synced_at=timezone.now()
    )
    for n in range(3):
        Server.objects.create(
            id=f"s-{n}", name=f"fin-{n}", group=group, image_id="img", synced_at=timezone.now()
        )
    full = admin.get("/servers/").content.decode()
    assert '<p id="results-announce" class="visually-hidden" role="status"></p>' in full
    fragment = admin.get("/servers/?q=fin-1", headers={"HX-Request": "true"}).content.decode()
    assert '<span id="results-announce" hx-swap-oob="innerHTML">1 matching</span>' in fragment


@pytest.mark.parametrize(
    ("sort", "header"),
    [
        ("", r'<th aria-sort="ascending"><a [^>]+>Name</a>'),
        ("-sessions", r'<th class="num" aria-sort="descending"><a [^>]+>Sessions</a>'),
        ("job", r'<th aria-sort="ascending"><a [^>]+>Last job</a>'),
    ],
)
def test_the_sorted_column_says_so_to_screen_readers(admin, sort, header):
    html = admin.get("/servers/", {"sort": sort} if sort else {}).content.decode()
    assert re.search(header, html)
    assert html.count("aria-sort=") == 1


def test_every_state_is_labelled_in_sentence_case(viewer_client):
    from dashboard.models import Rollout, RolloutServer, RolloutWave

    for states in (Rollout.State, RolloutWave.State, RolloutServer.State):
        for label in states.labels:
            assert str(label)[1:] == str(label)[1:].lower(), label
    Rollout.objects.create(created_by="otto", target_image_id="i", state="awaiting_approval")

    html = viewer_client.get("/rollouts/").content.decode()

    assert ">Awaiting approval</span>" in html
