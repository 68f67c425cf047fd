"""Browser tests: Playwright driving Debian's chromium (never a downloaded browser).

Where /usr/bin/chromium is missing, the tests skip with a clear message — unless
REQUIRE_BROWSER=1 (set by .ci/run), where a missing browser is a failure.
"""

import os
import shutil
import threading
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe

from dashboard import inventory
from dashboard.cloud.client import CloudClient
from dashboard.cloud.config import from_settings
from tests.sim_fixtures import cloud_settings

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[2]
# Screenshots go under var/ (git-ignored): a test run never changes a tracked file.
# `make screenshots` points SCREENSHOT_DIR at docs/screenshots/ to refresh those on purpose.
ARTIFACTS = Path(os.environ.get("SCREENSHOT_DIR") or ROOT / "var" / "screenshots")
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


def pytest_collection_modifyitems(config, items):
    if Path(CHROMIUM).exists() or shutil.which("chromium"):
        return
    message = f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("REQUIRE_BROWSER") == "1":
        raise pytest.UsageError(message + "; REQUIRE_BROWSER=1 makes this a failure.")
    for item in items:
        if "browser" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=message))


@pytest.fixture
def browser_page():
    # Playwright's sync API refuses to start inside a running asyncio loop; Django's async
    # safety check would also trip on its thread, so allow sync DB access in this test.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport=DESKTOP)
        yield page
        browser.close()


class BackgroundWorker:
    """Runs queued tasks in a thread, like `manage.py worker`, until stopped."""

    def __init__(self) -> None:
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, name="test-worker", daemon=True)

    def run(self) -> None:
        from django.db import connection
        from django_tasks_db.management.commands.db_worker import Worker

        while not self.stopped.is_set():
            worker = Worker(
                queue_names=["default"],
                interval=0.2,
                batch=True,
                backend_name="default",
                startup_delay=False,
                max_tasks=None,
                worker_id="browser-test",
                excluded_queue_names=[],
            )
            worker.run()
            self.stopped.wait(0.3)
        connection.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join(timeout=30)


def start_demo_dashboard(live_server, simulator_factory, settings, *, servers: int) -> str:
    """A live dashboard on a synced simulated fleet, signed in as the local demo operator."""
    sim = simulator_factory(servers=servers)
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, **cloud_settings(sim)}
    settings.DEBUG = True  # the local demo identity stands in for the SSO proxy
    settings.DASHBOARD_DEV_USER = "otto.operator"
    settings.DASHBOARD_DEV_GROUPS = ["dashboard-operators"]
    settings.SYNC_INTERVAL_SECONDS = 0
    inventory.sync_now(client=CloudClient(from_settings()))
    return live_server.url


def serious_violations(page) -> list[str]:
    """axe-core's serious and critical violations on the page, a line each."""
    results = Axe().run(page).response
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes'][:3]]}"
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]
