"""Two projects in Debian's chromium: the pages with a project column, the switcher and a
failing project's warning, on a phone and under axe-core; the switcher by keyboard and
without JavaScript."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from dashboard import inventory, projects
from dashboard.cloud.projects import ProjectConfig
from dashboard.models import Server, SyncRun
from dashboard.simulator.state import SimProject
from tests.browser.conftest import ARTIFACTS, DESKTOP, PHONE, serious_violations
from tests.browser.test_pages import sideways
from tests.sim_fixtures import cloud_settings

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BEIJING = SimProject(project_id="b" * 32, region="cn-north-4", ak="BJKEY000000000001", sk="bj")
SINGAPORE = SimProject(
    project_id="5" * 32, region="ap-southeast-3", ak="SGKEY000000000001", sk="sg", servers=12
)


@pytest.fixture
def dashboard(live_server, simulator_factory, settings, monkeypatch) -> str:
    """Both projects synced from one simulator; Singapore's sync failed since."""
    sim = simulator_factory(servers=30, projects=(BEIJING, SINGAPORE))
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, **cloud_settings(sim), "VERIFY_TLS": False}
    for name, value in {"BJ_AK": BEIJING.ak, "BJ_SK": BEIJING.sk, "SG_AK": SINGAPORE.ak,
                        "SG_SK": SINGAPORE.sk}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    settings.CLOUD_PROJECTS = (
        ProjectConfig(name="beijing", region=BEIJING.region, label="Beijing offices",
                      project_id=BEIJING.project_id, ak_env="BJ_AK", sk_env="BJ_SK"),
        ProjectConfig(name="singapore", region=SINGAPORE.region, label="Singapore",
                      project_id=SINGAPORE.project_id, ak_env="SG_AK", sk_env="SG_SK"),
    )  # fmt: skip
    settings.DEBUG = True  # the local demo identity stands in for the SSO proxy
    settings.DASHBOARD_DEV_USER = "otto.operator"
    settings.DASHBOARD_DEV_GROUPS = ["dashboard-operators"]
    settings.SYNC_INTERVAL_SECONDS = 0
    for project in projects.rows():
        assert inventory.sync_now(project=project).state == "succeeded"
    SyncRun.objects.create(
        project=projects.by_name("singapore"),
        state="failed",
        trigger="schedule",
        finished_at=timezone.now(),  # after the syncs above
        error="IAM refused the token (APIGW.0301): the key is not valid in ap-southeast-3",
    )
    return live_server.url


PAGES = [
    ("overview", "/"),
    ("overview of a failing project", "/?project=singapore"),
    ("groups", "/groups/"),
    ("servers", "/servers/"),
    ("servers of a project, filtered", "/servers/?project=beijing&drift=yes"),
    ("images", "/images/"),
    ("audit", "/audit/"),
    ("unknown project", "/groups/?project=mars"),
]


def visit(page: Page, url: str, settings):
    for name, path in PAGES:
        page.goto(url + path)
        yield name
    server = Server.objects.filter(project__name="singapore").first()
    page.goto(f"{url}/servers/{server.pk}/")
    yield "server of a failing project"
    settings.DASHBOARD_DEV_GROUPS = ["dashboard-admins"]
    page.goto(url + "/cloud/?project=singapore")
    yield "connection check of a project"


def test_no_project_page_scrolls_sideways_on_a_phone(dashboard, browser_page, settings):
    problems = {}
    for name in visit(browser_page, dashboard, settings):
        browser_page.set_viewport_size(PHONE)
        if found := sideways(browser_page):
            problems[name] = found
        browser_page.set_viewport_size(DESKTOP)
    assert problems == {}


def test_axe_finds_no_serious_violation_on_the_project_pages(dashboard, browser_page, settings):
    found, visited = {}, []
    for name in visit(browser_page, dashboard, settings):
        visited.append(name)
        for label, viewport in (("1440", DESKTOP), ("390", PHONE)):
            browser_page.set_viewport_size(viewport)
            if violations := serious_violations(browser_page):
                found[f"{name} at {label} px"] = violations
        browser_page.set_viewport_size(DESKTOP)
    assert len(visited) == len(PAGES) + 2
    assert found == {}


def test_the_pages_show_the_project_column_and_the_failing_project(dashboard, browser_page):
    page = browser_page
    page.goto(dashboard + "/servers/")
    expect(page.get_by_role("columnheader", name="Project")).to_be_visible()
    expect(page.locator("#freshness")).to_contain_text("Singapore: sync failed")
    page.goto(dashboard + "/")
    row = page.locator('tr[data-project="singapore"]')
    expect(row).to_contain_text("sync failed")
    expect(row).to_contain_text("APIGW.0301")
    # The README's picture of two projects (`make screenshots` writes it to docs/screenshots/).
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "projects.png"), full_page=False)


def test_the_switcher_works_by_keyboard_and_keeps_the_filters(dashboard, browser_page):
    page = browser_page
    page.goto(dashboard + "/servers/?drift=yes")
    switch = page.get_by_label("Project", exact=True).first
    switch.focus()
    expect(switch).to_be_focused()
    page.keyboard.press("ArrowDown")  # "All projects" → the first project
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Show")).to_be_focused()
    page.keyboard.press("Enter")
    page.wait_for_url("**/servers/?*project=beijing*")
    assert parse_qs(urlsplit(page.url).query) == {"drift": ["yes"], "project": ["beijing"]}
    names = page.locator("#server-results tbody tr td:nth-child(3)").all_inner_texts()
    assert names and set(names) == {"Beijing offices"}
    expect(page.get_by_role("link", name="Groups", exact=True)).to_have_attribute(
        "href", "/groups/?project=beijing"
    )


def test_the_switcher_works_without_javascript_on_a_phone(dashboard, browser_page):
    context = browser_page.context.browser.new_context(viewport=PHONE, java_script_enabled=False)
    page = context.new_page()
    page.goto(dashboard + "/groups/")
    page.get_by_label("Project", exact=True).select_option(label="Singapore")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**/groups/?project=singapore")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Singapore")
    expect(page.locator(".sync-failures")).to_contain_text("APIGW.0301")
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    context.close()


def test_the_switcher_stays_in_view_when_the_menu_folds(dashboard, browser_page):
    page = browser_page
    page.set_viewport_size(PHONE)
    page.goto(dashboard + "/images/")
    expect(page.get_by_role("button", name="Menu")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    expect(page.get_by_label("Project", exact=True)).to_be_visible()
