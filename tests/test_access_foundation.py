"""Nothing is public except /healthz and static files; the demo identity is local-only."""

import pytest
from django.test import Client

PAGES = ["/", "/groups/", "/servers/", "/images/", "/rollouts/", "/audit/"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", PAGES)
def test_every_page_refuses_an_anonymous_visitor(client, path):
    assert client.get(path).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("path", PAGES)
def test_every_page_opens_for_a_viewer(viewer_client, path):
    response = viewer_client.get(path)
    assert response.status_code == 200
    assert b'hx-headers=\'{"X-CSRFToken": "' in response.content


@pytest.mark.django_db
def test_the_demo_identity_is_ignored_for_a_remote_client(settings):
    settings.DEBUG = True
    settings.DASHBOARD_DEV_USER = "demo"
    remote = Client(REMOTE_ADDR="203.0.113.9")
    assert remote.get("/").status_code == 403


@pytest.mark.django_db
def test_the_demo_identity_is_ignored_with_debug_off(settings):
    settings.DEBUG = False
    settings.DASHBOARD_DEV_USER = "demo"
    assert Client(REMOTE_ADDR="127.0.0.1").get("/").status_code == 403


@pytest.mark.django_db
def test_htmx_is_served_from_our_own_static_files(viewer_client):
    page = viewer_client.get("/").content.decode()
    assert "/static/vendor/htmx-2.0.11.min.js" in page
    assert "unpkg" not in page and "cdn" not in page.lower()
