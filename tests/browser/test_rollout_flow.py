"""An operator's whole journey in a real browser, against the simulator.

Select the drifted servers of a group, plan, confirm, and watch the rows go from waiting to
running to succeeded or failed without a page reload; then retry a failed server to success.
"""

import re

import pytest
from playwright.sync_api import expect

from dashboard import inventory
from dashboard.cloud.client import CloudClient
from dashboard.cloud.config import from_settings
from dashboard.models import Rollout, Server
from tests.browser.conftest import ARTIFACTS, PHONE, BackgroundWorker
from tests.sim_fixtures import cloud_settings

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def dashboard(live_server, simulator_factory, settings):
    sim = simulator_factory(servers=60, job_seconds=4, manual_clock=False)
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, **cloud_settings(sim)}
    settings.DEBUG = True  # the local demo identity stands in for the SSO proxy
    settings.DASHBOARD_DEV_USER = "otto.operator"
    settings.DASHBOARD_DEV_GROUPS = ["dashboard-operators"]
    settings.ROLLOUT_REFRESH_SECONDS = 0.5
    settings.SYNC_INTERVAL_SECONDS = 0
    inventory.sync_now(client=CloudClient(from_settings()))
    with BackgroundWorker():
        yield live_server.url, sim


def test_an_operator_rolls_out_watches_live_and_retries_a_failure(dashboard, browser_page):
    url, sim = dashboard
    page = browser_page
    group = (
        Server.objects.filter(drift=True, frozen=False)
        .exclude(job_status__in=["WAITING", "RUNNING"])
        .values_list("group__name", flat=True)
        .first()
    )
    victim_name = None

    # Filter the servers page down to the group's drifted servers (htmx keeps the URL).
    page.goto(f"{url}/servers/")
    page.select_option("#id_group", label=group)
    page.select_option("#id_drift", "yes")
    expect(page).to_have_url(re.compile(r"drift=yes"))
    page.get_by_role("button", name=re.compile(r"Plan for all \d+ matching")).click()

    # Choose the target (the group image is preselected), give a reason, see the plan.
    page.fill("#id_reason", "CHG-42 November patches")
    page.check("#preset-custom")  # every server at once, no canary sign-off, no session wait
    page.get_by_role("button", name="Show the plan").click()
    expect(page.get_by_role("heading", name=re.compile(r"Plan #\d+"))).to_be_visible()
    rollout = Rollout.objects.latest("pk")
    changing = list(rollout.servers.filter(verdict="change"))
    assert changing
    victim = changing[0]
    victim_name = victim.server_name
    sim.state.reject(victim.server_id, "WKS.00129901")

    page.get_by_role("button", name=re.compile(r"Confirm and start")).click()
    expect(page.get_by_role("heading", name=f"Rollout #{rollout.pk}")).to_be_visible()
    page.evaluate("window.__notReloaded = true")

    # Rows move through the states live; the page is never reloaded.
    rows = page.locator("#rollout-rows tr")
    expect(rows.first).to_be_visible()
    # Every state a row shows is recorded as the row changes (no sampling, no sleeps).
    page.evaluate(
        """() => {
        const body = document.getElementById('rollout-rows');
        const note = () => body.querySelectorAll('tr')
            .forEach(r => window.__states.add(r.dataset.state));
        window.__states = new Set();
        note();
        new MutationObserver(note).observe(body,
            {subtree: true, childList: true, attributes: true, attributeFilter: ['data-state']});
    }"""
    )
    expect(page.locator("#rollout-state")).to_have_text(
        re.compile("Failed|Succeeded"), timeout=90_000
    )
    seen_states = set(page.evaluate("[...window.__states]"))
    assert page.evaluate("window.__notReloaded") is True
    assert {"waiting", "running"} & seen_states, seen_states
    victim_row = page.locator(f"#row-{victim.pk}")
    expect(victim_row).to_have_attribute("data-state", "failed")
    expect(victim_row).to_contain_text("WKS.00129901")
    for row in changing[1:]:
        expect(page.locator(f"#row-{row.pk}")).to_have_attribute("data-state", "succeeded")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "rollout.png"), full_page=False)
    desktop = page.viewport_size
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(ARTIFACTS / "rollout-phone.png"), full_page=False)
    page.set_viewport_size(desktop)

    # Retry the failed server: a new plan of only that server, linked to the original.
    sim.state.faults.rejections.clear()
    page.get_by_role("button", name="Retry failed").click()
    expect(page.get_by_role("heading", name=re.compile(r"Plan #\d+"))).to_be_visible()
    expect(page.get_by_text(victim_name)).to_be_visible()
    page.get_by_role("button", name=re.compile(r"Confirm and start")).click()
    retry = Rollout.objects.latest("pk")
    assert retry.retry_of_id == rollout.pk
    expect(page.locator("#rollout-state")).to_have_text("Succeeded", timeout=30_000)
    expect(page.locator("#rollout-rows tr").first).to_have_attribute("data-state", "succeeded")
