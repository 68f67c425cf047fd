"""The plan and rollout pages at scale: the summary first, one page of rows a filter chooses,
and a poll that sends only what moved on that page.

Plans are made by the real planning code from a stored inventory; a running rollout's states
are then written into its rows as the worker would leave them. Sizes and query counts are
asserted through the test client, never times.
"""

import re
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from dashboard.models import (
    Image,
    Rollout,
    RolloutEvent,
    RolloutServer,
    RolloutWave,
    Server,
    ServerGroup,
)
from dashboard.rollouts import planning
from dashboard.views.rollouts import PAGE_SIZE, decode_ids, encode_ids
from tests.rollout_helpers import confirm_from_page

pytestmark = pytest.mark.django_db

GROUP_SIZE = 40


def fleet(n: int) -> None:
    """n Windows servers in groups of 40, all to go to img-new; 1 in 25 frozen (blocked) and
    1 in 50 already on img-new (skip). Of 250: 235 change (waves of 2, 59, 59, 59 and 56),
    5 skip, 10 blocked. Made once: a second plan is of the same servers."""
    if Image.objects.filter(id="img-new").exists():
        return
    now = timezone.now()
    facts = {"os_type": "Windows", "architecture": "x86", "status": "active", "synced_at": now}
    Image.objects.create(id="img-old", name="win-2026.10", **facts)
    Image.objects.create(id="img-new", name="win-2026.11", **facts)
    groups = ServerGroup.objects.bulk_create(
        ServerGroup(id=f"grp-{g:03d}", name=f"office-{g:03d}", os_type="Windows",
                    image_id="img-new", synced_at=now)
        for g in range(max(1, n // GROUP_SIZE))
    )  # fmt: skip
    Server.objects.bulk_create(
        Server(id=f"srv-{i:05d}", name=f"aps-{i:05d}", group=groups[i % len(groups)],
               image_id="img-new" if i % 50 == 7 else "img-old", os_type="Windows",
               architecture="x86", system_disk_size=100, status="REGISTERED",
               frozen=i % 25 == 3, session_count=i % 3, synced_at=now)
        for i in range(n)
    )  # fmt: skip


def planned(n: int) -> Rollout:
    """A stored plan of n servers: a canary of 2, then waves of a quarter each."""
    fleet(n)
    servers = list(Server.objects.select_related("group").order_by("id"))
    images = planning.image_map(servers[0].project_id)
    return planning.create_plan(
        created_by="otto.operator",
        servers=servers,
        target=images["img-new"],
        images=images,
        reason="CHG-17",
        safety=planning.Safety(canary="2", wave_size="25%"),
    )


def running(n: int) -> Rollout:
    """The plan of n servers, confirmed and running: the canary done (one row failed, one
    unknown), wave 2 running, the rest pending, skipped and blocked rows skipped."""
    rollout = planned(n)
    rows = RolloutServer.objects.filter(rollout=rollout)
    rows.exclude(verdict="change").update(state="skipped")
    rows.filter(verdict="change", wave=1).update(state="succeeded", verified=True)
    canary = list(rows.filter(wave=1).order_by("pk"))
    rows.filter(pk=canary[0].pk).update(state="failed", error_code="WKS.00129901")
    rows.filter(pk=canary[1].pk).update(state="unknown")
    rows.filter(verdict="change", wave=2).update(state="running")
    rows.filter(verdict="change", wave__gt=2).update(state="pending")
    Rollout.objects.filter(pk=rollout.pk).update(
        state="running", started_at=timezone.now(), confirmed_by="otto.operator"
    )
    RolloutEvent.objects.create(
        rollout=rollout, action="start", from_state="queued", to_state="running", actor="worker"
    )
    rollout.refresh_from_db()
    return rollout


def shown(first: int, last: int, total: int, *, matching: bool = False) -> str:
    """Where a page of rows sits, as the page says it (an en dash between first and last)."""
    return f"Servers {first}\u2013{last} of {total}" + (" matching" if matching else "")


def row_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr id="row-(\d+)"', html)]


def plan_rows(html: str) -> list[str]:
    body = html.split('id="plan-rows"', 1)[1].split("</tbody>", 1)[0]
    return re.findall(r'<tr data-verdict="(\w+)"', body)


def link(html: str, words: str) -> str:
    """The href of the page link whose text holds `words`, as a URL query."""
    found = re.search(rf'<a href="([^"]*)"[^>]*>(?:<[^>]+>)*[^<]*{re.escape(words)}', html)
    assert found, f"no link {words!r}"
    return unescape(found.group(1)).split("#", 1)[0]


def poller(html: str) -> dict[str, list[str]]:
    found = re.search(r'id="rollout-poller"[^>]*hx-get="([^"]+)"', html)
    assert found, "no poller"
    return parse_qs(urlsplit(unescape(found.group(1))).query, keep_blank_values=True)


def as_page(html: str, since) -> dict[str, str]:
    """The query the page's poller would send, its last answer given at `since`."""
    return {key: values[0] for key, values in poller(html).items()} | {"since": since.isoformat()}


def poll(client, rollout: Rollout, **params):
    return client.get(f"/rollouts/{rollout.pk}/poll/", params, HTTP_HX_REQUEST="true")


# --- the plan page ----------------------------------------------------------------------


def test_the_plan_page_counts_every_row_and_shows_one_page_of_them(viewer_client):
    rollout = planned(250)
    page = viewer_client.get(f"/rollouts/new/{rollout.pk}/")
    html = page.content.decode()
    assert len(plan_rows(html)) == PAGE_SIZE
    assert shown(1, 100, 250) in html
    counts = page.context["counts"]
    assert counts == {"change": 235, "skip": 5, "blocked": 10}  # none left out of the figures
    assert sum(g.change + g.skip + g.blocked for g in page.context["per_group"]) == 250
    assert html.index('id="per-group"') < html.index('id="plan-rows"')  # the summary first


def test_the_plan_page_pages_forward_and_back_without_javascript(viewer_client):
    rollout = planned(250)
    url = f"/rollouts/new/{rollout.pk}/"
    first = viewer_client.get(url).content.decode()
    second = viewer_client.get(url + link(first, "next")).content.decode()
    assert shown(101, 200, 250) in second
    last = viewer_client.get(url + link(second, "last")).content.decode()
    assert shown(151, 250, 250) in last and len(plan_rows(last)) == PAGE_SIZE
    assert "next" not in last.split('aria-label="Pages of servers"', 1)[1].split("</nav>")[0]
    back = viewer_client.get(url + link(second, "previous")).content.decode()
    assert shown(1, 100, 250) in back


def test_blocked_servers_are_one_link_away_on_the_plan_page(viewer_client):
    rollout = planned(250)
    url = f"/rollouts/new/{rollout.pk}/"
    html = viewer_client.get(url).content.decode()
    assert "Read why 10 servers are blocked" in html
    blocked = viewer_client.get(url + link(html, "Read why")).content.decode()
    assert plan_rows(blocked) == ["blocked"] * 10
    assert shown(1, 10, 10, matching=True) in blocked
    assert "frozen" in blocked  # the reason, in words


def test_the_plan_page_narrows_by_wave_and_by_group(viewer_client):
    rollout = planned(250)
    url = f"/rollouts/new/{rollout.pk}/"
    canary = viewer_client.get(url, {"wave": "1"}).context["rows"]
    assert [r.wave for r in canary] == [1, 1]
    group = viewer_client.get(url, {"group": "office-002", "verdict": "change"}).context["rows"]
    assert group and {(r.group_name, r.verdict) for r in group} == {("office-002", "change")}


def test_a_filter_value_that_names_nothing_is_left_out(viewer_client):
    rollout = planned(150)
    page = viewer_client.get(f"/rollouts/new/{rollout.pk}/", {"verdict": "x", "wave": "-1"})
    assert page.status_code == 200 and shown(1, 100, 150) + "</span>" in page.content.decode()
    stale = viewer_client.get(f"/rollouts/new/{rollout.pk}/", {"after": "99999999"})
    assert shown(1, 100, 150) in stale.content.decode()  # past the end: the first page


@pytest.mark.parametrize("size", [150, 1200])
def test_the_plan_page_runs_a_fixed_number_of_queries_whatever_the_size(viewer_client, size):
    rollout = planned(size)
    viewer_client.get("/")
    with CaptureQueriesContext(connection) as queries:
        assert viewer_client.get(f"/rollouts/new/{rollout.pk}/", {"after": "3"}).status_code == 200
    assert len(queries) == FIXED_PLAN_PAGE_QUERIES


# session, user, the person's roles as last seen (service tokens follow them), the plan, its
# figures (two aggregates), waves, its last event, the page of rows and its place among them
FIXED_PLAN_PAGE_QUERIES = 10


def test_the_plan_page_of_five_thousand_servers_stays_small(viewer_client):
    rollout = planned(5000)
    page = viewer_client.get(f"/rollouts/new/{rollout.pk}/")
    assert page.status_code == 200 and len(page.content) < 150 * 1024


def test_a_plan_is_confirmed_from_any_page_of_its_rows(operator_client):
    rollout = planned(250)
    operator_client.get(f"/rollouts/new/{rollout.pk}/", {"verdict": "blocked"})
    response = confirm_from_page(operator_client, rollout)
    assert response.status_code == 302
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.QUEUED
    assert rollout.servers.filter(state="pending").count() == 235  # every row, not a page


def test_htmx_paging_of_a_plan_gets_the_rows_alone(viewer_client):
    rollout = planned(250)
    first = rollout.servers.order_by("pk").first()
    response = viewer_client.get(
        f"/rollouts/new/{rollout.pk}/", {"after": first.pk}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert "<html" not in html and 'id="per-group"' not in html
    assert html.startswith('\n<section id="plan-servers"') and len(plan_rows(html)) == PAGE_SIZE
    assert 'id="rows-announce" hx-swap-oob="innerHTML">' + shown(2, 101, 250) in html
    assert response["Cache-Control"].count("no-store") == 1


def test_htmx_paging_of_a_plan_confirmed_meanwhile_goes_to_the_rollout(viewer_client):
    rollout = planned(10)
    Rollout.objects.filter(pk=rollout.pk).update(state="queued")
    response = viewer_client.get(f"/rollouts/new/{rollout.pk}/", HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"] == f"/rollouts/{rollout.pk}/"


# --- the rollout page --------------------------------------------------------------------


def test_the_rollout_page_shows_the_summary_first_then_one_page_of_rows(viewer_client):
    rollout = running(250)
    html = viewer_client.get(f"/rollouts/{rollout.pk}/").content.decode()
    assert len(row_ids(html)) == PAGE_SIZE and shown(1, 100, 250) in html
    assert html.index('id="rollout-summary"') < html.index('id="per-group"')
    assert html.index('id="per-group"') < html.index('id="rollout-rows"')
    assert "Pending 174" in html and "Running 59" in html  # the counts cover every row


def test_problem_rows_are_one_link_away_on_the_rollout_page(viewer_client):
    rollout = running(250)
    url = f"/rollouts/{rollout.pk}/"
    html = viewer_client.get(url).content.decode()
    assert "12 servers need attention" in html  # 1 failed, 1 unknown, 10 blocked
    problems = viewer_client.get(url + link(html, "servers need attention")).context["rows"]
    assert len(problems) == 12
    assert {(r.state, r.verdict) for r in problems} == {
        ("failed", "change"),
        ("unknown", "change"),
        ("skipped", "blocked"),
    }


def test_the_rollout_rows_narrow_by_state_wave_and_group_together(viewer_client):
    rollout = running(250)
    url = f"/rollouts/{rollout.pk}/"
    rows = viewer_client.get(url, {"state": "running", "group": "office-001"}).context["rows"]
    assert rows and {(r.state, r.group_name) for r in rows} == {("running", "office-001")}
    canary = viewer_client.get(url, {"wave": "1"}).context["rows"]
    assert sorted(r.state for r in canary) == ["failed", "unknown"]


def test_page_links_keep_the_filter(viewer_client):
    rollout = running(400)
    url = f"/rollouts/{rollout.pk}/"
    html = viewer_client.get(url, {"state": "pending"}).content.decode()
    following = link(html, "next")
    assert "state=pending" in following and "after=" in following
    rows = viewer_client.get(url + following).context["rows"]
    assert rows and {r.state for r in rows} == {"pending"}


@pytest.mark.parametrize("size", [150, 1200])
def test_the_rollout_page_runs_a_fixed_number_of_queries_whatever_the_size(viewer_client, size):
    rollout = running(size)
    viewer_client.get("/")
    with CaptureQueriesContext(connection) as queries:
        assert (
            viewer_client.get(f"/rollouts/{rollout.pk}/", {"state": "pending"}).status_code == 200
        )
    assert len(queries) == FIXED_ROLLOUT_PAGE_QUERIES


# session, user, the person's roles as last seen, the rollout, the page of rows and its place,
# two summary aggregates, rows per group, events, rows per wave, waves, follow-ups (whether
# anything is revertable is asked only once a row succeeded: none has here)
FIXED_ROLLOUT_PAGE_QUERIES = 13


def test_the_rollout_page_of_five_thousand_servers_stays_small(viewer_client):
    rollout = running(5000)
    page = viewer_client.get(f"/rollouts/{rollout.pk}/")
    assert page.status_code == 200 and len(page.content) < 150 * 1024


def test_htmx_paging_of_a_rollout_gets_the_rows_and_the_live_page_of_that_moment(viewer_client):
    rollout = running(250)
    response = viewer_client.get(
        f"/rollouts/{rollout.pk}/", {"state": "pending"}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert "<html" not in html and html.startswith('\n<section id="rollout-servers"')
    shown = row_ids(html)
    assert len(shown) == PAGE_SIZE
    assert 'id="rollout-summary" hx-swap-oob="true"' in html
    assert 'id="rollout-poller" hx-swap-oob="true"' in html
    assert decode_ids(poller(html)["rows"][0]) == shown  # it now polls the new page's rows


# --- the poll ----------------------------------------------------------------------------


def test_the_poller_names_the_rows_of_its_page_and_the_newest_event(viewer_client):
    rollout = running(250)
    html = viewer_client.get(f"/rollouts/{rollout.pk}/", {"state": "pending"}).content.decode()
    query = poller(html)
    assert decode_ids(query["rows"][0]) == row_ids(html)
    assert query["event"] == [str(rollout.events.get().pk)]


def test_a_poll_sends_the_page_rows_that_moved_and_never_a_row_off_the_page(viewer_client):
    rollout = running(250)
    html = viewer_client.get(f"/rollouts/{rollout.pk}/").content.decode()
    query = poller(html)
    shown = row_ids(html)
    off_page = rollout.servers.exclude(pk__in=shown).filter(state="pending").first()
    since = timezone.now()
    RolloutServer.objects.filter(pk__in=[shown[5], off_page.pk]).update(state="waiting")

    answer = poll(viewer_client, rollout, since=since.isoformat(), rows=query["rows"][0])
    body = answer.content.decode()
    assert answer.status_code == 200
    assert row_ids(body) == [shown[5]]
    assert f'id="row-{off_page.pk}"' not in body
    assert "Waiting 2" in body  # the summary counts the row off the page too


def test_a_poll_in_which_only_rows_off_the_page_moved_sends_the_summary_alone(viewer_client):
    rollout = running(250)
    html = viewer_client.get(f"/rollouts/{rollout.pk}/", {"wave": "1"}).content.decode()
    since = timezone.now()
    rollout.servers.filter(state="pending").update(state="waiting")
    body = poll(viewer_client, rollout, **as_page(html, since)).content
    assert row_ids(body.decode()) == []
    assert b'id="rollout-summary" hx-swap-oob="true"' in body and b"Waiting 174" in body
    assert b'id="rollout-groups" aria-labelledby="h-groups" hx-swap-oob="true"' in body


def test_a_filtered_list_says_when_rows_join_it_and_links_to_the_list_as_it_is_now(
    viewer_client,
):
    rollout = running(250)
    html = viewer_client.get(f"/rollouts/{rollout.pk}/", {"state": "failed"}).content.decode()
    assert row_ids(html) == list(
        rollout.servers.filter(state="failed").values_list("pk", flat=True)
    )
    query = as_page(html, timezone.now())
    assert query["state"] == "failed" and query["matched"] == "1"
    joining = rollout.servers.filter(state="running").order_by("pk")[:3]
    RolloutServer.objects.filter(pk__in=[row.pk for row in joining]).update(state="failed")

    body = unescape(poll(viewer_client, rollout, **query).content.decode())

    assert 'id="rows-matching" role="status" hx-swap-oob="true"' in body
    assert "4 servers match these filters now; 1 did when this list was shown." in body
    assert f'hx-get="/rollouts/{rollout.pk}/?state=failed"' in body
    assert row_ids(body) == []  # the rows that joined are not slipped into the page shown
    # The next poller still compares with the list as shown.
    assert as_page(body, timezone.now())["matched"] == "1"
    shown_now = viewer_client.get(f"/rollouts/{rollout.pk}/", {"state": "failed"}).content
    assert len(row_ids(shown_now.decode())) == 4


def test_a_poll_in_which_no_row_moved_keeps_the_filtered_lists_notice(viewer_client):
    rollout = running(250)
    html = viewer_client.get(f"/rollouts/{rollout.pk}/", {"state": "failed"}).content.decode()
    since = timezone.now()
    Rollout.objects.filter(pk=rollout.pk).update(last_checked_at=timezone.now())
    body = poll(viewer_client, rollout, **as_page(html, since)).content.decode()
    assert "rows-matching" not in body  # not counted, so the notice shown stays as it is
    assert as_page(body, timezone.now())["state"] == "failed"


def test_an_unfiltered_list_has_no_notice_to_keep(viewer_client):
    rollout = running(250)
    html = viewer_client.get(f"/rollouts/{rollout.pk}/").content.decode()
    assert "matched" not in poller(html)
    since = timezone.now()
    rollout.servers.filter(state="running").update(state="failed")
    body = poll(viewer_client, rollout, **as_page(html, since)).content.decode()
    assert "rows-matching" not in body


def test_a_poll_in_which_no_row_moved_leaves_the_per_group_counts_alone(viewer_client):
    rollout = running(250)
    html = viewer_client.get(f"/rollouts/{rollout.pk}/").content.decode()
    since = timezone.now()
    Rollout.objects.filter(pk=rollout.pk).update(last_checked_at=timezone.now())
    body = poll(viewer_client, rollout, **as_page(html, since))
    assert body.status_code == 200
    assert b'id="rollout-summary"' in body.content and b'id="rollout-groups"' not in body.content
    assert row_ids(body.content.decode()) == []


def test_the_final_poll_in_which_nothing_moved_sends_the_outcome_and_286_only(viewer_client):
    rollout = running(1000)
    html = viewer_client.get(f"/rollouts/{rollout.pk}/").content.decode()
    rollout.servers.filter(state__in=["running", "pending", "unknown"]).update(state="succeeded")
    since = timezone.now()
    Rollout.objects.filter(pk=rollout.pk).update(state="failed", finished_at=timezone.now())
    RolloutEvent.objects.create(rollout=rollout, action="fail", from_state="running",
                                to_state="failed", actor="worker")  # fmt: skip

    answer = poll(viewer_client, rollout, **as_page(html, since))
    body = answer.content.decode()
    assert answer.status_code == 286
    assert len(answer.content) < 20 * 1024
    assert row_ids(body) == [] and 'id="rollout-groups"' not in body
    assert re.search(r"\d+ of \d+ changed, 1 failed", body)
    assert body.count("<li data-action=") == 1 and 'data-action="fail"' in body  # the new event
    assert 'id="rollout-poller"></div>' in body  # no hx-get: polling stops


def test_the_final_poll_after_every_row_moved_sends_only_the_page_rows(viewer_client):
    rollout = running(1000)
    html = viewer_client.get(f"/rollouts/{rollout.pk}/").content.decode()
    since = timezone.now()
    rollout.servers.filter(state__in=["running", "pending", "unknown"]).update(state="succeeded")
    Rollout.objects.filter(pk=rollout.pk).update(state="failed", finished_at=timezone.now())
    answer = poll(viewer_client, rollout, **as_page(html, since))
    assert answer.status_code == 286
    moved = row_ids(answer.content.decode())
    assert moved and set(moved) <= set(row_ids(html)) and len(moved) <= PAGE_SIZE


def test_a_poll_adds_only_the_timeline_events_the_page_lacks(viewer_client):
    rollout = running(50)
    html = viewer_client.get(f"/rollouts/{rollout.pk}/").content.decode()
    since = timezone.now()
    RolloutEvent.objects.create(rollout=rollout, action="pause", from_state="running",
                                to_state="paused", actor="otto.operator")  # fmt: skip
    Rollout.objects.filter(pk=rollout.pk).update(state="paused")
    body = poll(viewer_client, rollout, **as_page(html, since))
    text = body.content.decode()
    assert '<ol id="timeline-events" hx-swap-oob="afterbegin">' in text
    assert text.count("<li data-action=") == 1 and 'data-action="pause"' in text
    assert poller(text)["event"] == [str(rollout.events.order_by("-pk").first().pk)]


def test_a_poll_without_its_page_watches_the_first_page(viewer_client):
    rollout = running(250)
    first_page = list(rollout.servers.order_by("pk").values_list("pk", flat=True)[:PAGE_SIZE])
    since = timezone.now()
    beyond = rollout.servers.exclude(pk__in=first_page).filter(state="pending").first()
    RolloutServer.objects.filter(pk__in=[first_page[0], beyond.pk]).update(state="waiting")
    body = poll(viewer_client, rollout, since=since.isoformat()).content.decode()
    assert row_ids(body) == [first_page[0]]


@pytest.mark.parametrize("rows", ["x", "1-", "5-3", "1-100,200", ",".join(map(str, range(101)))])
def test_a_poll_for_rows_that_are_not_a_page_is_refused(viewer_client, rows):
    rollout = running(10)
    response = poll(viewer_client, rollout, since=timezone.now().isoformat(), rows=rows)
    assert response.status_code == 400


def test_a_poll_never_sends_rows_of_another_rollout(viewer_client):
    rollout = running(50)
    other = Rollout.objects.create(created_by="x", reason="y", target_image_id="img-new",
                                   state="running")  # fmt: skip
    stranger = RolloutServer.objects.create(rollout=other, server_id="elsewhere",
                                            server_name="elsewhere", to_image_id="img-new",
                                            verdict="change", state="running")  # fmt: skip
    since = timezone.now() - timedelta(minutes=1)
    body = poll(viewer_client, rollout, since=since.isoformat(), rows=str(stranger.pk))
    assert f'id="row-{stranger.pk}"' not in body.content.decode()


@given(st.lists(st.integers(min_value=1, max_value=10**12), unique=True, max_size=PAGE_SIZE))
def test_a_page_of_row_ids_reads_back_as_written(ids):
    assert decode_ids(encode_ids(ids)) == sorted(ids)


def test_a_wave_waiting_for_its_users_replaces_the_estimate_of_the_time_left(viewer_client):
    rollout = running(40)
    rollout.servers.filter(wave=1).update(finished_at=timezone.now())  # a pace to go by
    page = viewer_client.get(f"/rollouts/{rollout.pk}/").content.decode()
    assert 'id="waiting-for-users"' not in page

    RolloutWave.objects.filter(rollout=rollout, number=2).update(state="draining")
    page = viewer_client.get(f"/rollouts/{rollout.pk}/").content.decode()
    assert "wave 2 waits for its users to leave before it is sent" in page
    assert " left</" not in page and "about " not in page.split('id="rollout-state"')[1][:600]
