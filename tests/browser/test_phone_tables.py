"""Tables on a phone (390 px), in Debian's chromium: a row's action is in view without
scrolling the table sideways, and the waves' Users column reads as lines, not a word a line."""

import pytest
from playwright.sync_api import expect

from dashboard.models import Rollout, RolloutWave
from tests.browser.conftest import (
    ARTIFACTS,
    DESKTOP,
    PHONE,
    serious_violations,
    start_demo_dashboard,
)
from tests.test_rollout_pages_paging import running

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

UPDATE = "a.button[href*='/rollouts/new/?group=']"
# The link's centre is inside the viewport and the link itself is what is there (not covered
# by a column sliding beneath it).
IN_VIEW = """(link) => {
  const box = link.getBoundingClientRect();
  const x = box.left + box.width / 2, y = box.top + box.height / 2;
  return box.left >= 0 && box.right <= innerWidth && link.contains(document.elementFromPoint(x, y));
}"""


def test_each_groups_update_link_is_in_view_on_a_phone(
    live_server, simulator_factory, settings, browser_page
):
    url = start_demo_dashboard(live_server, simulator_factory, settings, servers=40)
    page = browser_page
    page.set_viewport_size(PHONE)
    page.goto(url + "/groups/")
    box = page.locator(".table-scroll")
    links = page.locator(UPDATE)
    assert links.count() > 1
    assert box.evaluate("(el) => el.scrollWidth > el.clientWidth")  # the table still scrolls
    for n in range(links.count()):
        link = links.nth(n)
        link.scroll_into_view_if_needed()
        assert box.evaluate("(el) => el.scrollLeft") == 0
        assert link.evaluate(IN_VIEW), f"update link {n} is not in view at 390 px"
    page.screenshot(path=ARTIFACTS / "groups-390.png", full_page=True)
    # Scrolled sideways, the action stays put over the columns sliding beneath it.
    box.evaluate("(el) => { el.scrollLeft = el.scrollWidth; }")
    assert links.first.evaluate(IN_VIEW)
    assert serious_violations(page) == []

    page.set_viewport_size(DESKTOP)  # on a wide screen the last column, as before
    page.goto(url + "/groups/")
    expect(links.first).to_be_visible()
    assert box.evaluate("(el) => el.scrollWidth <= el.clientWidth")
    assert serious_violations(page) == []


def test_the_waves_users_column_keeps_room_on_a_phone(live_server, settings, browser_page):
    settings.DEBUG = True  # the local demo identity stands in for the SSO proxy
    settings.DASHBOARD_DEV_USER = "otto.operator"
    settings.DASHBOARD_DEV_GROUPS = ["dashboard-operators"]
    settings.SYNC_INTERVAL_SECONDS = 0
    rollout = running(40)
    RolloutWave.objects.filter(rollout=rollout).update(session_policy="wait_logoff")
    page = browser_page
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server.url}/rollouts/{rollout.pk}/")
    users = page.locator("table.waves th", has_text="Users")
    expect(users).to_be_visible()
    cell = page.locator("table.waves tbody tr").first.locator("td").nth(4)
    expect(cell).to_contain_text("wait, then warn and log users off")
    width = users.evaluate("(th) => th.getBoundingClientRect().width")
    # Lines of text in the cell: the distinct tops of its text's boxes.
    lines = cell.evaluate(
        """(td) => { const range = document.createRange(); range.selectNodeContents(td);
            return new Set(Array.from(range.getClientRects(), (r) => Math.round(r.top))).size; }"""
    )
    assert width >= 180, f"Users column is {width} px wide at 390 px"
    assert lines <= 4, f"the session policy takes {lines} lines"
    page.locator(".table-scroll:has(table.waves)").screenshot(path=ARTIFACTS / "waves-390.png")


def test_a_paused_rollouts_resume_menu_does_not_widen_a_phones_page(
    live_server, settings, browser_page
):
    settings.DEBUG = True  # the local demo identity stands in for the SSO proxy
    settings.DASHBOARD_DEV_USER = "otto.operator"
    settings.DASHBOARD_DEV_GROUPS = ["dashboard-operators"]
    settings.SYNC_INTERVAL_SECONDS = 0
    rollout = running(40)
    rollout.servers.filter(state="failed").update(state="succeeded")  # "(no server failed)"
    Rollout.objects.filter(pk=rollout.pk).update(state="paused")
    page = browser_page
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server.url}/rollouts/{rollout.pk}/")
    menu = page.locator("select[name=how]")
    expect(menu).to_be_visible()
    assert "(no server failed)" in menu.inner_text()
    width = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    assert width[0] <= width[1], f"the page is {width[0]} px wide on a {width[1]} px screen"
    page.screenshot(path=ARTIFACTS / "paused-rollout-390.png", full_page=True)
