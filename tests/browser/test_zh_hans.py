"""The dashboard in Simplified Chinese, in Debian's chromium: no English left on the pages.

The browser asks for zh-Hans (Accept-Language) and walks the main pages. On each, every text
node a person can see is read, and any ASCII word in it that is not a name or a code is a
finding: names come from the simulator's fleet (servers, groups, images) and the signed-in
person; codes are written in `<code>` or a `.mono` element (ids, API and IAM action names,
error codes) or are on the short allow-list below (units, acronyms, product names). Text the
cloud wrote (a job's error message) is marked translate="no" and shown as it came.
"""

import re
from collections.abc import Iterator

import pytest
from django.db.models import Count
from django.utils import translation
from playwright.sync_api import Page, expect

from dashboard import inventory, translations
from dashboard.cloud.client import CloudClient
from dashboard.cloud.config import from_settings
from dashboard.models import Image, Rollout, Server, ServerGroup
from tests.browser.conftest import ARTIFACTS, BackgroundWorker
from tests.sim_fixtures import cloud_settings

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ZH = "zh-Hans,zh;q=0.9"
# Acronyms, units, product and protocol names an operator reads as they are in the console.
ALLOWED = {
    "ID", "IP", "OS", "CSV", "JSON", "API", "APIs", "IAM", "IMS", "SSO", "VM", "AK", "SK",
    "HTTP", "HTTPS", "UTC", "GB", "MB", "NUL", "Date", "Windows", "Linux", "Workspace",
    "WorkspaceApp", "APP", "Access", "Agent", "English", "min", "python", "manage", "py",
    "cloudcheck",
}  # fmt: skip
WORD = re.compile(r"[A-Za-z][A-Za-z]+")
# A token written with digits, dots, colons, underscores or slashes is an identifier or a code
# (WKS.00211102, workspace:server:list, HUAWEICLOUD_SDK_PROJECT_ID, otto.operator, 64bit).
TOKEN = re.compile(r"[A-Za-z0-9_.:/@-]+")
CODE = re.compile(r"[0-9_.:/@]")

# Every text node that is rendered and not inside a code, a .mono element or a script.
VISIBLE_TEXT = """() => {
  const SKIP = 'script, style, template, code, .mono, [translate="no"]';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const found = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent.trim();
    const parent = node.parentElement;
    if (!text || !parent || parent.closest(SKIP)) continue;
    if (!parent.checkVisibility({visibilityProperty: true, opacityProperty: false})) continue;
    found.push(text.replace(/\\s+/g, ' '));
  }
  return found;
}"""


def english_on(page: Page, names: set[str]) -> list[str]:
    """The visible texts of `page` that hold an ASCII word neither a name nor allowed."""
    found = []
    for text in page.evaluate(VISIBLE_TEXT):
        plain = " ".join(t for t in TOKEN.findall(text) if not CODE.search(t))
        words = [w for w in WORD.findall(plain) if w not in ALLOWED and w not in names]
        if words:
            found.append(f"{text[:80]!r}: {', '.join(words)}")
    return found


def fleet_names(*people: str) -> set[str]:
    """The words of every name the simulator's fleet and the people carry."""
    names = [
        *Server.objects.values_list("name", flat=True),
        *Server.objects.values_list("machine_name", flat=True),
        *ServerGroup.objects.values_list("name", flat=True),
        *Image.objects.values_list("name", flat=True),
        *Image.objects.values_list("os_type", flat=True),
        *Image.objects.values_list("os_version", flat=True),
        *Image.objects.values_list("architecture", flat=True),
        *Server.objects.values_list("availability_zone", flat=True),
        *people,
    ]
    return {word for name in names for word in WORD.findall(name or "")}


@pytest.fixture
def dashboard(live_server, simulator_factory, settings):
    translations.compile_all()
    settings.LOCALE_PATHS = list(settings.LOCALE_PATHS)  # Django reads the fresh .mo files
    sim = simulator_factory(servers=12)
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, **cloud_settings(sim)}
    settings.DEBUG = True  # the local demo identity stands in for the SSO proxy
    settings.DASHBOARD_DEV_USER = "ada.admin"
    settings.DASHBOARD_DEV_GROUPS = ["dashboard-admins"]
    settings.SYNC_INTERVAL_SECONDS = 0
    inventory.sync_now(client=CloudClient(from_settings()))
    return live_server.url


@pytest.fixture
def zh_page(browser_page: Page) -> Page:
    browser_page.set_extra_http_headers({"Accept-Language": ZH})
    return browser_page


def main_pages(page: Page, url: str) -> Iterator[str]:
    """Each main page in turn, named once it is loaded."""
    for name, path in [
        ("overview", "/"),
        ("groups", "/groups/"),
        ("servers", "/servers/"),
        ("images", "/images/"),
        ("rollouts", "/rollouts/"),
        ("audit", "/audit/"),
        ("cloud check", "/cloud/"),
        ("service tokens", "/tokens/"),
        ("new rollout, nothing chosen", "/rollouts/new/"),
    ]:
        page.goto(url + path)
        expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
        yield name
    page.goto(url + "/servers/")
    page.locator("#server-results tbody a").first.click()
    expect(page.locator("dl.facts")).to_be_visible()
    yield "a server"


def test_the_main_pages_hold_no_untranslated_english(dashboard, zh_page):
    names = fleet_names("ada.admin")
    found = {}
    for name in main_pages(zh_page, dashboard):
        if english := english_on(zh_page, names):
            found[name] = english
    assert found == {}, "\n".join(f"{k}: {v}" for k, vs in found.items() for v in vs)


def test_the_check_finds_an_english_word_left_in_a_chinese_page(zh_page):
    zh_page.set_content(
        "<main><h1>服务器</h1><p>共 3 台 <b>servers</b></p><p class='mono'>WKS.00211102</p>"
        "<p hidden>Hidden words</p><p translate='no'>The cloud's own words</p>"
        "<p>镜像 WinSrv2022 · 12 GB · workspace:server:list</p></main>"
    )
    assert english_on(zh_page, names={"WinSrv"}) == ["'servers': servers"]


def test_the_switcher_changes_the_language_and_remembers_it(dashboard, browser_page):
    page = browser_page
    page.goto(dashboard + "/")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.get_by_role("button", name="简体中文").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    with translation.override("zh-hans"):
        expect(page.get_by_role("heading", level=1)).to_have_text(translation.gettext("Overview"))
    page.goto(dashboard + "/servers/")  # the choice holds on the next page
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    page.get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert page.url.endswith("/servers/")  # back where the switch was made


@pytest.fixture
def live_dashboard(live_server, simulator_factory, settings):
    translations.compile_all()
    settings.LOCALE_PATHS = list(settings.LOCALE_PATHS)
    sim = simulator_factory(servers=24, job_seconds=3, manual_clock=False)
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, **cloud_settings(sim)}
    settings.DEBUG = True
    settings.DASHBOARD_DEV_USER = "ada.admin"
    settings.DASHBOARD_DEV_GROUPS = ["dashboard-admins"]
    settings.ROLLOUT_REFRESH_SECONDS = 0.5
    settings.SYNC_INTERVAL_SECONDS = 0
    inventory.sync_now(client=CloudClient(from_settings()))
    with BackgroundWorker():
        yield live_server.url, sim


def test_the_rollout_flow_holds_no_untranslated_english(live_dashboard, zh_page):
    url, sim = live_dashboard
    page = zh_page
    names = fleet_names("ada.admin")
    found = {}

    def check(name: str) -> None:
        expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
        if english := english_on(page, names):
            found[name] = english

    group = (  # the group with the most servers to change
        Server.objects.filter(drift=True, frozen=False)
        .exclude(job_status__in=["WAITING", "RUNNING"])
        .values("group_id")
        .annotate(n=Count("id"))
        .order_by("-n")
        .values_list("group_id", flat=True)
        .first()
    )
    page.goto(f"{url}/groups/")
    page.locator(f"a.button[href$='/rollouts/new/?group={group}']").click()
    expect(page.locator("#id_reason")).to_be_visible()
    check("new rollout")

    page.fill("#id_reason", "变更 42 月度补丁")
    page.check("#preset-custom")  # every server at once: no canary sign-off, no session wait
    page.locator("form[action$='/rollouts/new/plan/'] button[type=submit]").click()
    confirm = page.locator("form[action$='/confirm/'] button[type=submit]")
    expect(confirm).to_be_visible()
    check("plan")
    rollout = Rollout.objects.latest("pk")
    refused = rollout.servers.filter(verdict="change").first()
    sim.state.reject(refused.server_id, "WKS.00129901")  # its explanation is translated

    confirm.click()
    expect(page.locator("#rollout-rows tr").first).to_be_visible()
    check("rollout, live")
    # Final once the poller stops (it drops hx-get with the last answer).
    expect(page.locator("#rollout-poller")).not_to_have_attribute(
        "hx-get", re.compile("."), timeout=90_000
    )
    expect(page.locator(f"#row-{refused.pk}")).to_have_attribute("data-state", "failed")
    check("rollout, finished")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "rollout-zh-hans.png"), full_page=False)

    page.locator("#retry-failed").click()  # a plan of only the failed server
    expect(page.locator("form[action$='/confirm/'] button[type=submit]")).to_be_visible()
    check("retry plan")
    assert found == {}, "\n".join(f"{k}: {v}" for k, vs in found.items() for v in vs)
