"""Words of hundreds of letters (a reason, a target, an error pasted without spaces) break in
their cells: no page grows wider than the window, at 1440 or 390 px, in Debian's chromium. The
audit page's refused-filters alert passes axe-core too."""

import pytest
from playwright.sync_api import Page

from dashboard import audit
from dashboard.models import Rollout, RolloutServer
from tests.api_helpers import running_rollout
from tests.browser.conftest import DESKTOP, PHONE, serious_violations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG = "X" * 500


@pytest.fixture
def dashboard(live_server, settings) -> tuple[str, Rollout]:
    settings.DEBUG = True  # the local demo identity stands in for the SSO proxy
    settings.DASHBOARD_DEV_USER = "otto.operator"
    settings.DASHBOARD_DEV_GROUPS = ["dashboard-operators"]
    settings.SYNC_INTERVAL_SECONDS = 0
    rollout = running_rollout(state="failed")
    Rollout.objects.filter(pk=rollout.pk).update(reason=LONG, created_by="c" * 150)
    RolloutServer.objects.filter(rollout=rollout).update(
        state="failed", error_code="WKS.00129901", error_message=LONG
    )
    audit.record(None, "rollout.plan", actor="a" * 150, target=LONG, rollout=rollout)
    return live_server.url, rollout


def widths(page: Page) -> list[int]:
    return page.evaluate("[document.documentElement.scrollWidth, innerWidth]")


def test_a_long_word_breaks_in_its_cell_on_every_page_that_shows_it(dashboard, browser_page):
    url, rollout = dashboard
    found = {}
    for path in ("/", "/rollouts/", f"/rollouts/{rollout.pk}/", "/audit/"):
        browser_page.goto(url + path)
        for viewport in (DESKTOP, PHONE):
            browser_page.set_viewport_size(viewport)
            scroll, inner = widths(browser_page)
            if scroll > inner:
                found[f"{path} at {viewport['width']} px"] = scroll
        browser_page.set_viewport_size(DESKTOP)
    assert found == {}


def test_the_audit_pages_refusal_passes_axe(dashboard, browser_page):
    url, _rollout = dashboard
    browser_page.goto(url + "/audit/?rollout=abc&from=garbage")
    assert browser_page.locator("#refused-filters").is_visible()
    assert serious_violations(browser_page) == []
