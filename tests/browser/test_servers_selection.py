"""The servers page's ticks follow the stored selection, in Debian's chromium:

- "Select all N matching" ticks the rows shown at once; unticking one leaves the others;
- Back after htmx paging, and a page shown again from the back/forward cache, show the
  selection as the server holds it, not as it was when the page was left;
- a refused filter value is said in an alert, and nothing is offered for the whole filter;
- the search box shows its whole placeholder, on a desktop and on a phone, in both languages.
"""

import re

import pytest
from playwright.sync_api import Page, expect

from dashboard.models import Server
from tests.browser.conftest import DESKTOP, PHONE, serious_violations, start_demo_dashboard

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BOXES = "#server-results input[name=server]"


@pytest.fixture
def dashboard(live_server, simulator_factory, settings):
    return start_demo_dashboard(live_server, simulator_factory, settings, servers=120)


def ticked(page: Page):
    return page.locator(f"{BOXES}:checked")


def test_select_all_matching_ticks_the_rows_shown_at_once(dashboard, browser_page):
    page = browser_page
    matching = Server.objects.filter(gone=False, drift=True).count()
    assert 1 < matching <= 50  # one page: every matching row is shown
    page.goto(dashboard + "/servers/?drift=yes")
    bar = page.locator("#selection-bar")
    expect(ticked(page)).to_have_count(0)

    page.get_by_role("button", name=f"Select all {matching} matching").click()
    expect(bar).to_contain_text(
        f"{matching} selected (all matching the filters shown: Not on group image: yes)"
    )
    expect(ticked(page)).to_have_count(matching)
    expect(page.locator("[data-toggle-all]")).to_be_checked()

    # Elsewhere the bar names the filter the selection was made with, and leads back to it.
    page.goto(dashboard + "/servers/?status=REGISTERED")
    named = page.locator("#selection-filter")
    expect(named).to_have_text("(all matching: Not on group image: yes)")
    named.get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"/servers/\?drift=yes$"))
    expect(ticked(page)).to_have_count(matching)

    # Unticking one makes the selection explicit: the others stay ticked and the whole
    # filter is offered again.
    page.locator(BOXES).first.uncheck()
    expect(bar).to_contain_text(f"{matching - 1} selected")
    expect(bar).not_to_contain_text("all matching")
    expect(ticked(page)).to_have_count(matching - 1)
    expect(page.locator(BOXES).first).not_to_be_checked()
    expect(page.get_by_role("button", name=f"Select all {matching} matching")).to_be_visible()
    page.reload()
    expect(ticked(page)).to_have_count(matching - 1)  # what the page showed was the truth

    page.get_by_role("button", name="clear").click()
    expect(bar).to_contain_text("No servers selected")
    expect(ticked(page)).to_have_count(0)


def test_back_after_paging_shows_the_selection_the_server_holds(dashboard, browser_page):
    page = browser_page
    page.goto(dashboard + "/servers/")
    bar = page.locator("#selection-bar")
    page.locator(BOXES).nth(0).check()
    expect(bar).to_contain_text("1 selected")
    page.locator(BOXES).nth(1).check()
    expect(bar).to_contain_text("2 selected")

    page.get_by_role("link", name=re.compile("next")).click()
    expect(page).to_have_url(re.compile(r"cursor="))
    page.locator(BOXES).first.check()
    expect(bar).to_contain_text("3 selected")

    page.go_back()
    expect(page).not_to_have_url(re.compile(r"cursor="))
    expect(page.locator("#selection-bar")).to_contain_text("3 selected")
    expect(ticked(page)).to_have_count(2)
    expect(page.locator(BOXES).nth(0)).to_be_checked()

    page.go_forward()
    expect(page).to_have_url(re.compile(r"cursor="))
    expect(page.locator("#selection-bar")).to_contain_text("3 selected")
    expect(ticked(page)).to_have_count(1)


def test_a_page_shown_again_from_the_cache_asks_for_the_selection(dashboard, browser_page):
    page = browser_page
    page.goto(dashboard + "/servers/")
    expect(page.locator("#selection-bar")).to_contain_text("No servers selected")

    # Meanwhile (in another tab, say) a server is ticked: the server's selection changes,
    # this page's does not.
    first = page.locator(BOXES).first.get_attribute("value")
    status = page.evaluate(
        """(id) => fetch("/rollouts/selection/", {
            method: "POST",
            headers: JSON.parse(document.body.getAttribute("hx-headers")),
            body: new URLSearchParams({toggle: id, server: id}),
        }).then((response) => response.status)""",
        first,
    )
    assert status in (200, 302)
    expect(page.locator("#selection-bar")).to_contain_text("No servers selected")

    # What the browser fires when it shows this page again from its back/forward cache.
    page.evaluate("dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}))")
    expect(page.locator("#selection-bar")).to_contain_text("1 selected")
    expect(page.locator(BOXES).first).to_be_checked()


def test_a_refused_filter_is_said_and_offers_nothing_for_the_whole_filter(dashboard, browser_page):
    page = browser_page
    page.goto(dashboard + "/servers/?group=00000000-dead-beef-0000-000000000000&drift=yes")
    expect(page.get_by_role("alert")).to_contain_text("Group: Select a valid choice.")
    matching = Server.objects.filter(gone=False, drift=True).count()
    expect(page.locator("#server-results")).to_contain_text(f"{matching} matching")
    expect(page.locator("#id_drift")).to_have_value("yes")
    expect(page.locator("#id_group")).to_have_value("")
    expect(page.get_by_role("button", name=re.compile(r"(Plan for|Select) all"))).to_have_count(0)
    expect(page.locator("#update-group")).to_have_count(0)
    assert serious_violations(page) == []

    # Any change of the form sends only what it shows: the refusal goes, the actions return.
    page.select_option("#id_maintenance", "no")
    expect(page.get_by_role("alert")).to_have_count(0)
    plan_all = page.get_by_role("button", name=re.compile(r"Plan for all \d+ matching"))
    expect(plan_all).to_be_visible()


def test_ticks_in_quick_succession_are_all_kept_in_order(dashboard, browser_page):
    """Each tick is one request changing the stored selection: sent one after another, none
    overwrites another, and the bar ends saying what is ticked (and what is stored)."""
    page = browser_page
    page.goto(dashboard + "/servers/?drift=yes")
    bar = page.locator("#selection-bar")
    boxes = page.locator(BOXES)
    for n in range(5):
        boxes.nth(n).check()  # no wait between the ticks
    expect(bar).to_contain_text("5 selected")
    expect(page.locator("[data-toggle-all]")).not_to_be_checked()  # not every row shown
    # One way to plan them: the bar's; the form's button is for browsers without scripts.
    expect(page.get_by_role("button", name="Plan rollout for selected")).to_be_hidden()
    expect(page.locator("#plan-selection")).to_contain_text("Plan rollout for 5 selected")
    page.reload()
    expect(ticked(page)).to_have_count(5)
    expect(bar).to_contain_text("5 selected")


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_the_search_box_shows_its_whole_placeholder(dashboard, browser_page, language):
    page = browser_page
    page.set_extra_http_headers({"Accept-Language": language})
    page.goto(dashboard + "/servers/")
    search = page.locator("#id_q")
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        # The placeholder's words as a value: the box must not scroll to show them.
        room = search.evaluate(
            """box => { const shown = box.cloneNode(); shown.removeAttribute("id");
              shown.removeAttribute("name"); shown.value = box.placeholder;
              box.after(shown); const r = [shown.scrollWidth, shown.clientWidth];
              shown.remove(); return r; }"""
        )
        assert room[0] <= room[1], f"placeholder cut off at {viewport['width']} px: {room}"
