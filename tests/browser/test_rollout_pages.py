"""The plan and rollout pages of a large rollout in Debian's chromium.

A plan and a running rollout of 250 servers each (made by the real planning code, their
states written as the worker leaves them): both pages read on a phone without scrolling
sideways and pass axe-core at 1440 and 390 px; their rows page and filter without
JavaScript; with it, htmx swaps the rows in place and the poller then follows the rows shown,
updating one that moves and never adding one the page does not show.
"""

import re

import pytest
from playwright.sync_api import Page, expect

from dashboard.models import Rollout, RolloutServer
from tests.browser.conftest import ARTIFACTS, DESKTOP, PHONE, serious_violations
from tests.test_rollout_pages_paging import planned, running

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def pages(live_server, settings) -> tuple[str, Rollout, Rollout]:
    """(the dashboard's URL, a plan, a running rollout), signed in as the local demo operator."""
    settings.DEBUG = True  # the local demo identity stands in for the SSO proxy
    settings.DASHBOARD_DEV_USER = "otto.operator"
    settings.DASHBOARD_DEV_GROUPS = ["dashboard-operators"]
    settings.SYNC_INTERVAL_SECONDS = 0
    plan = planned(250)
    rollout = running(250)  # the same servers: the plan was made before this one holds them
    return live_server.url, plan, rollout


def sideways(page: Page) -> list[int]:
    widths = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    return widths if widths[0] > widths[1] else []


@pytest.mark.parametrize("which", ["plan", "rollout", "rollout, needing attention"])
def test_a_large_plan_and_rollout_read_on_a_phone_and_under_axe(pages, browser_page, which):
    url, plan, rollout = pages
    page = browser_page
    path = {
        "plan": f"/rollouts/new/{plan.pk}/",
        "rollout": f"/rollouts/{rollout.pk}/",
        "rollout, needing attention": f"/rollouts/{rollout.pk}/?state=problems",
    }[which]
    page.goto(url + path)
    expect(page.get_by_role("navigation", name="Pages of servers")).to_contain_text("Servers 1")
    found = []
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        if viewport == PHONE and sideways(page):
            found.append(f"scrolls sideways at 390 px: {sideways(page)}")
        found += [f"{viewport['width']} px: {v}" for v in serious_violations(page)]
    assert found == []


def test_rows_page_and_filter_without_javascript(pages, browser_page):
    url, plan, rollout = pages
    context = browser_page.context.browser.new_context(viewport=PHONE, java_script_enabled=False)
    page = context.new_page()

    page.goto(f"{url}/rollouts/{rollout.pk}/")
    page.locator("#rollout-servers select[name=state]").select_option("pending")
    page.get_by_role("button", name="Show", exact=True).click()
    expect(page).to_have_url(re.compile(r"state=pending"))
    position = page.locator("#rollout-servers-position")
    expect(position).to_have_text("Servers 1\u2013100 of 174 matching")
    states = page.locator("#rollout-rows tr").evaluate_all("rows => rows.map(r => r.dataset.state)")
    assert set(states) == {"pending"}
    page.get_by_role("link", name=re.compile("next")).click()
    expect(position).to_have_text("Servers 101\u2013174 of 174 matching")

    page.goto(f"{url}/rollouts/new/{plan.pk}/")
    page.get_by_role("link", name=re.compile(r"Read why \d+ servers are blocked")).click()
    verdicts = page.locator("#plan-rows tr").evaluate_all(
        "rows => rows.map(r => r.dataset.verdict)"
    )
    assert verdicts and set(verdicts) == {"blocked"}
    expect(page.get_by_role("button", name=re.compile("Confirm and start"))).to_be_visible()
    context.close()


def test_htmx_swaps_the_rows_and_the_poller_follows_the_rows_shown(pages, browser_page):
    url, _, rollout = pages
    page = browser_page
    page.goto(f"{url}/rollouts/{rollout.pk}/")
    page.evaluate("window.__notReloaded = true")

    page.locator("#rollout-servers select[name=wave]").select_option("2")
    expect(page).to_have_url(re.compile(r"wave=2"))
    position = page.locator("#rollout-servers-position")
    expect(position).to_have_text("Servers 1\u201359 of 59 matching")
    expect(page.locator("#rows-announce")).to_have_text("Servers 1\u201359 of 59 matching")
    assert page.evaluate("window.__notReloaded") is True
    expect(page.locator("#rollout-poller")).to_have_attribute("hx-get", re.compile(r"rows="))

    in_wave = list(rollout.servers.filter(wave=2).order_by("pk"))
    elsewhere = rollout.servers.filter(wave=3).order_by("pk").first()
    RolloutServer.objects.filter(pk__in=[in_wave[3].pk, elsewhere.pk]).update(state="succeeded")
    expect(page.locator(f"#row-{in_wave[3].pk}")).to_have_attribute(
        "data-state", "succeeded", timeout=15_000
    )
    expect(page.locator("#state-counts")).to_contain_text("Succeeded 2")  # both are counted
    expect(page.locator(f"#row-{elsewhere.pk}")).to_have_count(0)  # never added to the page
    assert page.locator("#rollout-rows tr").count() == 59
    assert page.evaluate("window.__notReloaded") is True


def test_a_filtered_list_says_when_rows_join_it_and_shows_them_on_request(pages, browser_page):
    url, _, rollout = pages
    page = browser_page
    page.goto(f"{url}/rollouts/{rollout.pk}/?state=failed")
    page.evaluate("window.__notReloaded = true")
    expect(page.locator("#rollout-rows tr")).to_have_count(1)
    notice = page.locator("#rows-matching")
    expect(notice).to_be_empty()

    joining = list(rollout.servers.filter(state="running").order_by("pk")[:2])
    RolloutServer.objects.filter(pk__in=[row.pk for row in joining]).update(state="failed")
    expect(notice).to_contain_text(
        "3 servers match these filters now; 1 did when this list was shown.", timeout=15_000
    )
    expect(page.locator("#rollout-rows tr")).to_have_count(1)  # the page stays as it was
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    found = []
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        found += [f"{viewport['width']} px: {v}" for v in serious_violations(page)]
        section = page.locator("#rollout-servers")
        section.screenshot(path=str(ARTIFACTS / f"rollout-list-changed-{viewport['width']}.png"))
    assert found == []

    notice.get_by_role("link", name="Show the list as it is now").click()
    expect(page.locator("#rollout-rows tr")).to_have_count(3)
    expect(notice).to_be_empty()
    assert page.evaluate("window.__notReloaded") is True
