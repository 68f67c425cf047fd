"""Every page on a phone and under axe-core, in Debian's chromium.

One walk visits every page an operator or admin reaches — overview, groups, servers, a server,
images, rollouts, a new rollout (empty and filled), a plan, a rollout with rows, its cancel
confirmation, audit, the cloud connection check, and the 403 and 404 pages. At each stop the
page is checked at 390 px wide (nothing may scroll the page sideways on a phone) or at 1440 and
390 px under axe-core (the copy shipped in axe-playwright-python), which may find no serious or
critical violation.
"""

import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Page, expect

from dashboard.models import Server
from tests.browser.conftest import DESKTOP, PHONE, serious_violations, start_demo_dashboard

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Violations in templates this suite does not own, each with where it is fixed. The test
# fails when one of them goes away too, so that the list shrinks with the fixes.
# e.g. ("rollout", "aria-progressbar-name"): "templates/rollouts/detail.html: name the bar".
KNOWN: dict[tuple[str, str], str] = {}


@pytest.fixture
def dashboard(live_server, simulator_factory, settings):
    return start_demo_dashboard(live_server, simulator_factory, settings, servers=30)


def walk(page: Page, url: str, settings) -> Iterator[str]:
    """Go to each page in turn and yield its name once it is loaded."""
    for name, path in [
        ("overview", "/"),
        ("groups", "/groups/"),
        ("images", "/images/"),
        ("rollouts", "/rollouts/"),
        ("servers", "/servers/"),
    ]:
        page.goto(url + path)
        yield name

    page.locator("#server-results tbody a").first.click()
    expect(page.locator("dl.facts")).to_be_visible()
    yield "server"

    group = Server.objects.filter(drift=True).values_list("group__name", flat=True).first()
    page.goto(url + "/servers/?drift=yes")
    page.select_option("#id_group", label=group)
    page.get_by_role("button", name=re.compile(r"Plan for all \d+ matching")).click()
    expect(page.locator("#id_reason")).to_be_visible()
    yield "new rollout"

    page.fill("#id_reason", "CHG-7 accessibility walk")
    page.get_by_role("button", name="Show the plan").click()
    expect(page.get_by_role("heading", name=re.compile(r"Plan #\d+"))).to_be_visible()
    yield "plan"

    page.get_by_role("button", name=re.compile(r"Confirm and start")).click()
    expect(page.locator("#rollout-rows tr").first).to_be_visible()
    yield "rollout"

    page.locator("#cancel-rollout").click()
    expect(page.get_by_role("button", name=re.compile("Cancel"))).to_be_visible()
    yield "cancel confirmation"

    page.goto(url + "/rollouts/new/")
    yield "new rollout, nothing chosen"

    page.goto(url + "/audit/")
    expect(page.locator("details.json").first).to_be_attached()
    yield "audit"

    settings.DASHBOARD_DEV_GROUPS = ["dashboard-admins"]
    page.goto(url + "/cloud/")
    yield "cloud connection check"

    settings.DASHBOARD_DEV_GROUPS = ["no-dashboard-role"]
    assert page.goto(url + "/servers/").status == 403
    yield "403"

    settings.DEBUG = False  # Django's own 404 page under DEBUG is not ours
    assert page.goto(url + "/no-such-page/").status == 404
    yield "404"


def at_each_width(page: Page, check: Callable[[Page], list[str]]) -> list[str]:
    """Run `check` at desktop and phone width; return its findings labelled by width."""
    found = []
    for label, viewport in (("1440", DESKTOP), ("390", PHONE)):
        page.set_viewport_size(viewport)
        found += [f"{label} px: {finding}" for finding in check(page)]
    page.set_viewport_size(DESKTOP)
    return found


def sideways(page: Page) -> list[str]:
    width = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    if page.viewport_size["width"] == DESKTOP["width"] or width[0] <= width[1]:
        return []
    culprits = page.evaluate(
        """() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > innerWidth + 1)
            .filter(e => !e.parentElement.closest('.table-scroll, table'))
            .slice(0, 3)
            .map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : ''))"""
    )
    return [f"scrolls sideways ({width[0]} > {width[1]} px): {', '.join(culprits)}"]


def test_no_page_scrolls_sideways_on_a_phone(dashboard, browser_page, settings):
    problems = {}
    for name in walk(browser_page, dashboard, settings):
        browser_page.set_viewport_size(PHONE)
        found = sideways(browser_page)
        browser_page.set_viewport_size(DESKTOP)
        if found:
            problems[name] = found
    assert problems == {}


def test_axe_finds_no_serious_violation_on_any_page(dashboard, browser_page, settings):
    visited, found = [], {}
    for name in walk(browser_page, dashboard, settings):
        visited.append(name)
        for finding in at_each_width(browser_page, serious_violations):
            rule = finding.split(": ", 1)[1].split(" ", 1)[0]
            found.setdefault((name, rule), []).append(finding)
    assert len(visited) == 15, visited
    unexpected = {key: value for key, value in found.items() if key not in KNOWN}
    assert unexpected == {}, "axe-core: serious or critical violations"
    fixed = set(KNOWN) - set(found)
    assert not fixed, f"fixed now, remove from KNOWN: {sorted(fixed)}"


def test_the_navigation_folds_into_a_menu_on_a_phone(dashboard, browser_page):
    page = browser_page
    page.set_viewport_size(PHONE)
    page.goto(dashboard + "/groups/")
    menu = page.get_by_role("button", name="Menu")
    audit = page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(audit).to_be_hidden()

    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(audit).to_be_visible()
    expect(page.get_by_text("otto.operator")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")

    page.keyboard.press("Escape")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(menu).to_be_focused()
    expect(audit).to_be_hidden()

    page.set_viewport_size(DESKTOP)
    expect(menu).to_be_hidden()
    expect(audit).to_be_visible()


def test_without_javascript_the_navigation_wraps_and_stays_reachable(dashboard, browser_page):
    context = browser_page.context.browser.new_context(viewport=PHONE, java_script_enabled=False)
    page = context.new_page()
    page.goto(dashboard + "/servers/")
    expect(page.get_by_role("button", name="Menu")).to_be_hidden()
    for name in ("Overview", "Groups", "Servers", "Images", "Rollouts", "Audit"):
        expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    context.close()


def test_live_updates_are_announced_where_they_happen(dashboard, browser_page):
    """Swapped text reaches live regions that stay in place, once per change, not per poll."""
    page = browser_page
    page.goto(dashboard + "/servers/")
    results = page.locator("#results-announce")
    freshness = page.locator('[data-announce="#freshness"]')
    expect(results).to_have_attribute("role", "status")
    expect(results).to_have_text("")
    expect(freshness).to_have_attribute("role", "status")
    expect(freshness).to_have_text("")  # nothing is read out on page load
    page.evaluate(
        """() => {
        window.__regions = {results: document.getElementById('results-announce'),
                            freshness: document.querySelector('[data-announce="#freshness"]')};
        window.__spoken = [];
        window.__settled = 0;
        document.addEventListener('htmx:afterSettle', () => window.__settled++);
        new MutationObserver(() => window.__spoken.push(
            document.querySelector('[data-announce="#freshness"]').textContent))
          .observe(document.querySelector('[data-announce="#freshness"]'),
                   {childList: true, characterData: true, subtree: true});
    }"""
    )

    page.select_option("#id_drift", "yes")
    drifted = Server.objects.filter(drift=True, gone=False).count()
    expect(results).to_have_text(f"{drifted} matching")

    # No worker runs here, so the refresh stays "refreshing…" and the badge keeps polling.
    page.get_by_role("button", name="Refresh").click()
    expect(freshness).to_contain_text("refreshing")
    expect(freshness).not_to_contain_text("Refresh ")  # words, not the button
    settled = page.evaluate("window.__settled")
    page.wait_for_function("n => window.__settled >= n", arg=settled + 2)  # two more polls
    assert page.evaluate("window.__spoken.length") == 1, page.evaluate("window.__spoken")
    # The same region elements as before: a replaced live region would be announced by nobody.
    assert page.evaluate(
        "document.getElementById('results-announce') === window.__regions.results"
        " && document.querySelector('[data-announce]') === window.__regions.freshness"
    )
