"""From an operator's pass over the pages: every page the navigation links is one the reader
may open (and the admins' pages are linked), and a server's OS is not named twice."""

import re

import pytest
from django.urls import resolve
from django.utils import timezone

from dashboard.models import Server, ServerGroup
from dashboard.roles import IMPLIED
from tests.conftest import ADMIN_GROUPS, APPROVER_GROUPS, OPERATOR_GROUPS, VIEWER_GROUPS

pytestmark = pytest.mark.django_db

PEOPLE = {
    "viewer": VIEWER_GROUPS,
    "operator": OPERATOR_GROUPS,
    "approver": APPROVER_GROUPS,
    "admin": ADMIN_GROUPS,
}


def nav_links(html: str) -> dict[str, str]:
    """The main navigation's links: path → label."""
    nav = re.search(r'<nav id="site-nav".*?</nav>', html, re.S)
    assert nav, "no main navigation"
    return {
        href.split("?")[0]: re.sub(r"\s+", " ", label).strip()
        for href, label in re.findall(r'<a href="([^"]+)"[^>]*>(.*?)</a>', nav.group(0), re.S)
    }


@pytest.mark.parametrize("role", PEOPLE)
def test_the_navigation_links_only_pages_the_reader_may_open(sso_client, role):
    client = sso_client(f"{role}.person", PEOPLE[role])
    links = nav_links(client.get("/groups/").content.decode())
    for path in links:
        required = resolve(path).func.required_role
        assert required in IMPLIED[role], f"{role} is shown {path}, which needs {required}"
    admin_pages = {"/tokens/": "Service tokens", "/cloud/": "Connection check"}
    if role == "admin":
        assert admin_pages.items() <= links.items()
    else:
        assert not admin_pages.keys() & links.keys()


def test_the_tokens_page_is_marked_current_in_the_navigation(sso_client):
    admin = sso_client("ada.admin", ADMIN_GROUPS)
    html = admin.get("/tokens/").content.decode()
    assert re.search(r'<a href="/tokens/" aria-current="page">Service tokens</a>', html)


def server_with_os(os_type: str, os_version: str) -> str:
    now = timezone.now()
    group = ServerGroup.objects.get_or_create(
        id="g-1", defaults={"name": "finance", "image_id": "img", "synced_at": now}
    )[0]
    Server.objects.update_or_create(
        id="s-1",
        defaults={
            "name": "fin-1",
            "group": group,
            "image_id": "img",
            "synced_at": now,
            "os_type": os_type,
            "os_version": os_version,
        },
    )
    return "/servers/s-1/"


@pytest.mark.parametrize(
    ("os_type", "os_version", "shown"),
    [
        ("Windows", "Windows Server 2019 Datacenter 64bit", "Windows Server 2019 Datacenter 64bit"),
        ("WINDOWS", "Windows Server 2022", "Windows Server 2022"),
        ("Windows", "Server 2019", "Windows Server 2019"),
        ("Linux", "", "Linux"),
        ("", "Ubuntu 22.04", "Ubuntu 22.04"),
        ("", "", "—"),
    ],
)
def test_the_server_page_names_its_os_once(sso_client, os_type, os_version, shown):
    viewer = sso_client("vera.viewer", VIEWER_GROUPS)
    html = viewer.get(server_with_os(os_type, os_version)).content.decode()
    assert re.search(r"<dt>OS</dt><dd>(.*?)</dd>", html).group(1) == shown
