"""The servers page pages by cursor (keyset), in every sort, forwards and backwards."""

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import dashboard.views.inventory as views
from dashboard import inventory
from dashboard.models import Server, ServerGroup, SyncRun

pytestmark = pytest.mark.django_db

SIZE = 3


@pytest.fixture
def fleet(monkeypatch):
    """Eleven live servers with ties in every sort key, some without group or job; one gone."""
    monkeypatch.setattr(views, "PAGE_SIZE", SIZE)
    now = timezone.now()
    alpha = ServerGroup.objects.create(id="g-a", name="alpha", synced_at=now)
    beta = ServerGroup.objects.create(id="g-b", name="beta", synced_at=now)
    jobs = [None, datetime(2026, 11, 1, 8, tzinfo=UTC), datetime(2026, 11, 1, 8, 0, 0, 500, UTC)]
    Server.objects.bulk_create(
        Server(
            id=f"srv-{i:02d}",
            name=f"host-{i % 6}",  # names repeat: (name, id) decides
            group=[alpha, beta, None][i % 3],
            image_id=f"img-{i % 2}",
            status=["REGISTERED", "STOPPED"][i % 2],
            session_count=i % 4,
            job_time=jobs[i % 3],
            synced_at=now,
        )
        for i in range(11)
    )
    Server.objects.create(id="srv-gone", name="host-0", gone=True, synced_at=now)
    SyncRun.objects.create(state="succeeded", finished_at=now)
    inventory.recount_figures()


def expected(sort: str) -> list[str]:
    no_job = datetime(1970, 1, 1, tzinfo=UTC)
    keys = {
        "name": lambda s: s.name,
        "group": lambda s: s.group.name if s.group else "",
        "image": lambda s: s.image_id,
        "status": lambda s: s.status,
        "sessions": lambda s: s.session_count,
        "job": lambda s: s.job_time or no_job,
    }
    key = keys[sort.lstrip("-")]
    servers = Server.objects.filter(gone=False).select_related("group")
    ordered = sorted(servers, key=lambda s: (key(s), s.id), reverse=sort.startswith("-"))
    return [s.id for s in ordered]


def ids(response) -> list[str]:
    return [s.id for s in response.context["page"]]


def link(response, label: str) -> str | None:
    """The href of the pager link with this label, unescaped, or None."""
    html = response.content.decode()
    found = re.search(r'<a href="(\?[^"]*)"[^>]*>' + re.escape(label) + "</a>", html)
    return unescape(found.group(1)) if found else None


SORTS = [
    "name",
    "-name",
    "group",
    "-group",
    "image",
    "status",
    "-sessions",
    "sessions",
    "job",
    "-job",
]


@pytest.mark.parametrize("sort", SORTS)
def test_next_links_walk_every_server_once_in_order(viewer_client, fleet, sort):
    seen, response = [], viewer_client.get("/servers/", {"sort": sort})
    while True:
        assert response.status_code == 200
        seen += ids(response)
        following = link(response, "next →")
        if following is None:
            break
        response = viewer_client.get("/servers/" + following)
    assert seen == expected(sort)


@pytest.mark.parametrize("sort", SORTS)
def test_previous_links_walk_back_from_the_last_page(viewer_client, fleet, sort):
    response = viewer_client.get("/servers/", {"sort": sort, "cursor": "last"})
    assert link(response, "next →") is None and link(response, "last »") is None
    pages = []
    while True:
        pages.insert(0, ids(response))
        before = link(response, "← previous")
        if before is None:
            break
        response = viewer_client.get("/servers/" + before)
    assert [i for page in pages for i in page] == expected(sort)
    assert len(pages[-1]) == SIZE  # the last page is full; the first one takes the remainder


def test_first_and_last_are_reachable_from_a_middle_page(viewer_client, fleet):
    middle = viewer_client.get("/servers/" + link(viewer_client.get("/servers/"), "next →"))
    assert ids(viewer_client.get("/servers/" + link(middle, "« first"))) == expected("name")[:SIZE]
    assert ids(viewer_client.get("/servers/" + link(middle, "last »"))) == expected("name")[-SIZE:]


def test_links_keep_the_filters_and_a_filter_or_sort_change_starts_over(viewer_client, fleet):
    response = viewer_client.get("/servers/", {"status": "REGISTERED"})
    following = link(response, "next →")
    assert following.startswith("?status=REGISTERED&cursor=")
    second = viewer_client.get("/servers/" + following)
    assert second.context["query"] == "status=REGISTERED"  # the filter form and rollout scope
    assert "cursor" not in second.context["sort_query"]
    assert ids(second) == [i for i in expected("name") if int(i[-2:]) % 2 == 0][SIZE : 2 * SIZE]


def encode(payload) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"cursor": "not a cursor!"}, "damaged"),
        ({"cursor": encode(["after", "name", "host-1"])}, "damaged"),
        ({"cursor": encode(["sideways", "name", "host-1", "srv-01"])}, "damaged"),
        ({"cursor": encode(["after", "name", 7, "srv-01"])}, "damaged"),
        ({"cursor": encode(["after", "sessions", True, "srv-01"]), "sort": "sessions"}, "damaged"),
        (
            {"cursor": encode(["after", "job", "2026-11-01T08:00:00", "x"]), "sort": "job"},
            "damaged",
        ),
        ({"cursor": encode(["after", "job", "yesterday", "x"]), "sort": "job"}, "damaged"),
        (
            {"cursor": encode(["after", "name", "host-1", "srv-01"]), "sort": "-name"},
            "another sort",
        ),
        ({"cursor": "A" * 5000}, "too long"),
        ({"cursor": encode({"a": 1})}, "damaged"),
    ],
)
def test_a_bad_cursor_shows_the_first_page_and_says_why(viewer_client, fleet, params, why):
    response = viewer_client.get("/servers/", params)
    assert response.status_code == 200
    assert ids(response) == expected(params.get("sort", "name"))[:SIZE]
    assert why in " ".join(response.context["page"].notes)
    assert "showing the first page" in response.content.decode()


def test_a_cursor_past_the_end_gives_an_empty_page_with_a_way_back(viewer_client, fleet):
    cursor = encode(["after", "name", "zzz", "srv-99"])
    response = viewer_client.get("/servers/", {"cursor": cursor})
    assert response.status_code == 200 and ids(response) == []
    assert link(response, "« first") is not None


def test_the_query_count_is_the_same_on_every_page(viewer_client, fleet):
    def queries(url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert viewer_client.get(url).status_code == 200
        return len(captured)

    first = viewer_client.get("/servers/")
    middle = "/servers/" + link(first, "next →")
    urls = [
        "/servers/",
        middle,
        "/servers/" + link(viewer_client.get(middle), "← previous"),
        "/servers/?cursor=last",
        "/servers/?cursor=garbage",
        "/servers/?q=host-1&drift=no&sort=-job",
    ]
    counts = {url: queries(url) for url in urls}
    assert len(set(counts.values())) == 1, counts


def test_a_job_time_cursor_survives_microseconds(viewer_client, fleet):
    Server.objects.filter(pk="srv-04").update(job_time=timezone.now() - timedelta(microseconds=7))
    seen, response = [], viewer_client.get("/servers/", {"sort": "-job"})
    while response is not None:
        seen += ids(response)
        following = link(response, "next →")
        response = following and viewer_client.get("/servers/" + following)
    assert seen == expected("-job")
