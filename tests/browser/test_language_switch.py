"""Switching the language keeps what the person typed, in Debian's chromium.

The switcher is a POST form to Django's set_language that sends the browser back to the page:
the page is served again, in the other language, with its forms as the server renders them.
app.js keeps the fields the person changed (never the CSRF token, hidden inputs or
passwords) for that one reload and puts them back.
"""

import json

import pytest
from playwright.sync_api import expect

from dashboard.models import ServerGroup
from tests.browser.conftest import serious_violations, start_demo_dashboard

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REASON = "Patch Tuesday: 2026-06 cumulative update"


@pytest.fixture
def dashboard(live_server, simulator_factory, settings):
    return start_demo_dashboard(live_server, simulator_factory, settings, servers=40)


def kept_entries(page) -> dict:
    return page.evaluate(
        """() => Object.fromEntries(Object.keys(sessionStorage)
            .filter((k) => k.startsWith("kept-input:"))
            .map((k) => [k, sessionStorage.getItem(k)]))"""
    )


def test_typed_input_survives_switching_the_language_and_back(dashboard, browser_page):
    page = browser_page
    group = ServerGroup.objects.filter(servers__gone=False).distinct().first()
    page.goto(f"{dashboard}/rollouts/new/?group={group.pk}")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    reason = page.locator("#id_reason")
    reason.fill(REASON)
    page.locator("#preset-custom").check()
    sessions = page.locator("#id_start_below_sessions")
    sessions.fill("3")

    # What is kept on the way: the changed fields, never the token.
    page.evaluate(
        """() => window.addEventListener("submit", () => {
              window.name = JSON.stringify(Object.keys(sessionStorage)
                .filter((k) => k.startsWith("kept-input:")).map((k) => sessionStorage.getItem(k)));
            })"""
    )
    page.get_by_role("button", name="简体中文").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page).to_have_url(f"{dashboard}/rollouts/new/?group={group.pk}")
    sent = json.loads(page.evaluate("window.name"))
    assert len(sent) == 1 and REASON in sent[0]
    assert "csrfmiddlewaretoken" not in sent[0]
    assert '"name":"group"' not in sent[0]  # hidden: the server renders it again

    expect(page.locator("#id_reason")).to_have_value(REASON)
    expect(page.locator("#preset-custom")).to_be_checked()
    expect(page.locator("#id_start_below_sessions")).to_have_value("3")
    assert kept_entries(page) == {}  # put back once, then forgotten
    assert serious_violations(page) == []

    page.get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#id_reason")).to_have_value(REASON)
    expect(page.locator("#preset-custom")).to_be_checked()
    assert kept_entries(page) == {}

    # A plain reload after that is the page as served: nothing is put back again.
    page.reload()
    expect(page.locator("#id_reason")).to_have_value("")
