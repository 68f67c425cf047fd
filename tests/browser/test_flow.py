"""The operator flow in Debian's chromium, at 1440 and 390 px, under axe-core:

- group first: Groups → "Update this group" → the group's image Recommended and chosen;
- a selection that survives paging and filter changes, a sticky "N selected · clear" bar and
  "select all N matching", planned by selection id;
- the Careful preset, then a plan per group;
- Cancel behind a page that says what it stops (without JavaScript too).
"""

import re

import pytest
from playwright.sync_api import Page, expect

from dashboard.models import Rollout, Selection, Server, ServerGroup
from tests.browser.conftest import (
    ARGS,
    ARTIFACTS,
    CHROMIUM,
    DESKTOP,
    PHONE,
    serious_violations,
    start_demo_dashboard,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def dashboard(live_server, simulator_factory, settings):
    return start_demo_dashboard(live_server, simulator_factory, settings, servers=120)


def no_sideways_scroll(page: Page) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    assert widths[0] <= widths[1], f"scrolls sideways at {widths}"


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1440", "390"])
def test_update_a_group_from_the_groups_page(dashboard, browser_page, viewport):
    page = browser_page
    page.set_viewport_size(viewport)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    group = ServerGroup.objects.filter(servers_drifted__gt=0, os_type="Windows").order_by("name")[0]
    page.goto(dashboard + "/rollouts/new/")
    expect(page.locator("#rollout-empty")).to_be_visible()
    expect(page.locator("input[name=target_image]")).to_have_count(0)
    assert serious_violations(page) == []

    page.goto(dashboard + "/groups/")
    page.get_by_role("link", name=f"Update this group: {group.name}").click()
    expect(page.get_by_role("heading", name=f"Update {group.name}")).to_be_visible()
    chosen = page.locator("input[name=target_image]:checked")
    expect(chosen).to_have_value(group.image_id)
    first = page.locator("#target-choice label").first
    expect(first).to_contain_text("Recommended")
    expect(page.locator("#preset-careful")).to_be_checked()
    no_sideways_scroll(page)
    assert serious_violations(page) == []

    # Choosing Custom opens the settings it uses; choosing a preset again keeps them in view.
    custom = page.locator("#custom-safety")
    expect(custom).not_to_have_attribute("open", "")
    page.locator("#preset-custom").check()
    expect(custom).to_have_attribute("open", "")
    expect(page.get_by_role("textbox", name="Error budget")).to_be_visible()
    page.locator("#preset-careful").check()

    # A missing reason is said at the field, and the field says so to a screen reader. The
    # page comes back with the summary of its problems focused, each a link to its field.
    page.get_by_role("button", name="Show the plan").click()
    summary = page.locator("#error-summary")
    expect(summary).to_be_focused()
    expect(summary.get_by_role("heading", name="There is a problem")).to_be_visible()
    assert serious_violations(page) == []
    page.screenshot(path=str(ARTIFACTS / f"flow-refused-{viewport['width']}.png"))
    summary.get_by_role("link", name="Say why (a ticket or a few words).").click()
    reason = page.get_by_label("Reason or ticket")
    expect(reason).to_be_focused()
    expect(reason).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#id_reason_error")).to_be_visible()
    assert "id_reason_error" in (reason.get_attribute("aria-describedby") or "")
    reason.fill("CHG-100 November patches")

    # A refused custom setting: the settings come back open, and its link shows the field
    # with its label, not the input at the top edge with its label out of view.
    page.locator("#preset-custom").check()
    canary = page.get_by_label("Canary wave", exact=True)
    canary.fill("-1")
    page.get_by_role("button", name="Show the plan").click()
    expect(summary).to_be_focused()
    expect(custom).to_have_attribute("open", "")
    summary.locator("a[href='#id_canary']").click()
    expect(canary).to_be_focused()
    expect(page.locator("label[for=id_canary]")).to_be_in_viewport()
    canary.fill("")
    page.locator("#preset-careful").check()
    page.get_by_role("button", name="Show the plan").click()
    expect(page.get_by_role("heading", name=re.compile(r"Plan #\d+"))).to_be_visible()
    expect(page.locator("#per-group")).to_contain_text(group.name)
    expect(page.locator("dl.facts")).to_contain_text("paused after the canary for sign-off")
    assert "not_in_maintenance" not in page.locator("main").inner_text()  # words, not codes
    no_sideways_scroll(page)
    assert serious_violations(page) == []
    page.screenshot(path=str(ARTIFACTS / f"flow-plan-{viewport['width']}.png"), full_page=True)


def test_a_selection_survives_paging_and_filters_and_is_planned_by_id(dashboard, browser_page):
    page = browser_page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.goto(dashboard + "/servers/")
    bar = page.locator("#selection-bar")
    expect(bar).to_contain_text("No servers selected")
    boxes = page.locator("#server-results input[name=server]")
    boxes.nth(0).check()
    expect(bar).to_contain_text("1 selected")
    boxes.nth(1).check()
    expect(bar).to_contain_text("2 selected")

    # The next page, then a filter: the bar keeps counting both; the first page still ticks them.
    page.get_by_role("link", name=re.compile("next")).click()
    expect(page).to_have_url(re.compile(r"cursor="))
    expect(page.locator("#server-results input[name=server]:checked")).to_have_count(0)
    expect(bar).to_contain_text("2 selected")
    page.locator("#server-results input[name=server]").first.check()
    expect(bar).to_contain_text("3 selected")
    page.get_by_role("link", name=re.compile("first")).click()
    expect(page).not_to_have_url(re.compile(r"cursor="))
    expect(page.locator("#server-results input[name=server]:checked")).to_have_count(2)
    page.select_option("#id_drift", "yes")
    expect(page).to_have_url(re.compile(r"drift=yes"))
    expect(page.locator("#selection-bar")).to_contain_text("3 selected")
    assert serious_violations(page) == []

    # Select all matching the filter: the banner names the count and takes them all.
    matching = Server.objects.filter(gone=False, drift=True).count()
    page.get_by_role("button", name=f"Select all {matching} matching").click()
    expect(page.locator("#selection-bar")).to_contain_text(f"{matching} selected")
    page.set_viewport_size(PHONE)
    no_sideways_scroll(page)
    page.screenshot(path=str(ARTIFACTS / "flow-selection-390.png"))
    page.set_viewport_size(DESKTOP)

    page.locator("#plan-selection").click()
    selection = Selection.objects.get()
    expect(page).to_have_url(re.compile(rf"selection={selection.pk}"))
    assert page.locator("form input[name=server]").count() == 0  # one id, not a field each
    expect(page.locator("#target-group")).to_be_checked()  # across groups: each its own image
    page.get_by_label("Reason or ticket").fill("CHG-101 drifted servers")
    page.locator("#preset-standard").check()
    page.get_by_role("button", name="Show the plan").click()
    expect(page.get_by_role("heading", name=re.compile(r"Plan #\d+"))).to_be_visible()
    rollout = Rollout.objects.latest("pk")
    assert rollout.target_image_id == "" and rollout.preset == "standard"
    groups = set(rollout.servers.values_list("group_name", flat=True))
    for name in groups:
        expect(page.locator("#per-group")).to_contain_text(name)

    page.goto(dashboard + "/servers/")
    page.get_by_role("button", name="clear").click()
    expect(page.locator("#selection-bar")).to_contain_text("No servers selected")


def test_cancel_asks_first_even_without_javascript(dashboard):
    from playwright.sync_api import sync_playwright

    group = ServerGroup.objects.filter(servers_drifted__gt=0, os_type="Windows").order_by("name")[0]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport=PHONE, java_script_enabled=False)
        page.goto(f"{dashboard}/rollouts/new/?group={group.id}")
        page.get_by_label("Reason or ticket").fill("CHG-102")
        page.locator("#preset-custom").check()
        page.get_by_role("button", name="Show the plan").click()
        page.get_by_role("button", name=re.compile("Confirm and start")).click()
        rollout = Rollout.objects.latest("pk")
        page.locator("#cancel-rollout").click()
        expect(page.get_by_role("heading", name=f"Cancel rollout #{rollout.pk}?")).to_be_visible()
        expect(page.locator("#cancel-effects")).to_contain_text("will not be sent")
        rollout.refresh_from_db()
        assert not rollout.is_final  # looking at the question changed nothing
        page.get_by_role("button", name=re.compile(r"Cancel: stop \d+ server")).click()
        rollout.refresh_from_db()
        assert rollout.state in (Rollout.State.CANCELLED, Rollout.State.CANCELLING)
        browser.close()
