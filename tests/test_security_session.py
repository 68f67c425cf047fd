"""Signing out, and what htmx is allowed to do with swapped content."""

import html
import json
import re
import runpy
from pathlib import Path

import pytest
from django.contrib.sessions.models import Session
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from dashboard.models import AuditEvent

ROOT = Path(__file__).resolve().parent.parent
SIGN_OUT = "/sign-out/"

pytestmark = pytest.mark.django_db


# --- Sign out -------------------------------------------------------------------------------


def test_sign_out_ends_the_session_and_goes_to_the_proxy_sign_out(viewer_client):
    session_key = viewer_client.get("/").wsgi_request.session.session_key
    assert Session.objects.filter(session_key=session_key).exists()
    response = viewer_client.post(SIGN_OUT)
    assert response.status_code == 302
    assert response["Location"] == "/oauth2/sign_out"
    assert not Session.objects.filter(session_key=session_key).exists()
    event = AuditEvent.objects.get(action="session.sign_out")
    assert (event.actor, event.outcome) == ("vera.viewer", "ok")


def test_sign_out_follows_the_setting(viewer_client, settings):
    settings.SSO_SIGN_OUT_URL = "https://sso.example.org/logout?return=dash"
    assert viewer_client.post(SIGN_OUT)["Location"] == "https://sso.example.org/logout?return=dash"


def test_sign_out_is_a_post_with_a_csrf_token(sso_client):
    client = sso_client("vera", ["dashboard-viewers"], enforce_csrf_checks=True)
    assert client.get(SIGN_OUT).status_code == 405
    assert client.post(SIGN_OUT).status_code == 403  # no token: a link elsewhere cannot sign out
    assert not AuditEvent.objects.filter(action="session.sign_out").exists()


def test_every_page_offers_sign_out_next_to_the_user_name(sso_client):
    client = sso_client("vera", ["dashboard-viewers"], enforce_csrf_checks=True)
    page = client.get("/").content.decode()
    form = re.search(r'<div class="whoami">.*?</div>', page, re.S).group(0)
    assert "vera" in form
    assert f'action="{SIGN_OUT}"' in form and 'method="post"' in form
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    assert client.post(SIGN_OUT, {"csrfmiddlewaretoken": token}).status_code == 302


@pytest.mark.parametrize(
    "value", ["//evil.example/", "http://sso.example.org/logout", "evil", "/\\evil.example"]
)
def test_a_sign_out_url_elsewhere_than_a_path_or_https_is_refused_at_start(monkeypatch, value):
    monkeypatch.setenv("SSO_SIGN_OUT_URL", value)
    with pytest.raises(ImproperlyConfigured, match="SSO_SIGN_OUT_URL"):
        runpy.run_path(str(ROOT / "dashboard" / "settings.py"))


def test_a_path_or_an_https_sign_out_url_is_accepted(monkeypatch):
    for value in ("/oauth2/sign_out", "https://sso.example.org/logout"):
        monkeypatch.setenv("SSO_SIGN_OUT_URL", value)
        assert runpy.run_path(str(ROOT / "dashboard" / "settings.py"))["SSO_SIGN_OUT_URL"] == value


# --- htmx ----------------------------------------------------------------------------------


def _htmx_config(page: str) -> dict:
    meta = re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", page).group(1)
    return json.loads(html.unescape(meta))


def test_htmx_runs_no_script_from_swapped_content(viewer_client):
    response = viewer_client.get("/")
    config = _htmx_config(response.content.decode())
    assert config["allowScriptTags"] is False
    assert config["allowEval"] is False
    assert "inlineScriptNonce" not in config


def test_the_csp_nonce_is_only_on_the_pages_own_script_tags(viewer_client):
    response = viewer_client.get("/")
    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"]).group(1)
    page = response.content.decode()
    script_tags = re.findall(r"<script\b[^>]*>", page)
    assert page.count(nonce) == len(script_tags) == sum(nonce in tag for tag in script_tags)


def test_the_bundled_htmx_knows_the_settings_it_is_given():
    bundled = next((ROOT / "static" / "vendor").glob("htmx-*.min.js")).read_text()
    for key in ("allowScriptTags", "allowEval", "includeIndicatorStyles"):
        assert key in bundled


def test_anonymous_refusals_offer_no_sign_out():
    assert SIGN_OUT.encode() not in Client().get("/").content
