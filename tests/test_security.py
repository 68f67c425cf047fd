"""Hardening: CSRF, CSP, security headers and cookies, error pages, logs, hostile names."""

import logging
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.http import HttpRequest, HttpResponse
from django.urls import path, reverse
from django.utils import timezone

from dashboard.logscrub import OneLineFormatter, scrub
from dashboard.models import AuditEvent, Server, ServerGroup
from dashboard.roles import VIEWER, require_role
from dashboard.urls import urlpatterns as dashboard_urlpatterns
from tests.conftest import OPERATOR_GROUPS, VIEWER_GROUPS

ROOT = Path(__file__).resolve().parent.parent
boom_log = logging.getLogger("dashboard.test_boom")


@require_role(VIEWER)
def boom(request: HttpRequest) -> HttpResponse:
    # Careless code: dumps the request's headers into a log line, then fails with a message
    # quoting a secret. Neither may reach the log.
    boom_log.warning("handling %s with meta %r", request.path, dict(request.META))
    raise RuntimeError(f"upstream refused: {request.headers.get('Authorization')}")


urlpatterns = [path("boom/", boom, name="boom"), *dashboard_urlpatterns]


# --- CSRF ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_state_change_without_the_csrf_token_is_refused_and_audited(sso_client):
    client = sso_client("otto", OPERATOR_GROUPS, enforce_csrf_checks=True)
    response = client.post(reverse("sync"))
    assert response.status_code == 403
    assert b"Form expired" in response.content
    event = AuditEvent.objects.get(action="csrf.refused")
    assert (event.actor, event.outcome) == ("otto", "refused")


@pytest.mark.django_db
def test_htmx_sends_the_csrf_token_from_hx_headers(sso_client):
    client = sso_client("otto", OPERATOR_GROUPS, enforce_csrf_checks=True)
    page = client.get("/").content.decode()
    token = re.search(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page).group(1)
    response = client.post(reverse("sync"), headers={"X-CSRFToken": token})
    assert response.status_code == 302


@pytest.mark.django_db
def test_a_plain_form_post_with_the_token_passes(sso_client):
    client = sso_client("otto", OPERATOR_GROUPS, enforce_csrf_checks=True)
    page = client.get("/").content.decode()
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    assert client.post(reverse("sync"), {"csrfmiddlewaretoken": token}).status_code == 302


# --- CSP -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_csp_header_carries_the_nonce_of_the_page_scripts(viewer_client):
    response = viewer_client.get("/")
    policy = response["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    scripts = re.findall(r"<script\b[^>]*>", response.content.decode())
    assert scripts
    for tag in scripts:
        assert f'nonce="{nonce}"' in tag
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert "frame-ancestors 'none'" in policy


@pytest.mark.django_db
def test_each_response_gets_a_fresh_nonce(viewer_client):
    first = viewer_client.get("/")["Content-Security-Policy"]
    second = viewer_client.get("/")["Content-Security-Policy"]
    assert first != second


INLINE_RULES = {
    "a <script> without the CSP nonce": re.compile(
        r"<script\b(?![^>]*nonce=\"\{\{ csp_nonce \}\}\")[^>]*>", re.I
    ),
    "an inline <style> block": re.compile(r"<style\b", re.I),
    "a style= attribute": re.compile(r"\sstyle\s*=", re.I),
    "an inline event handler": re.compile(r"\son[a-z]+\s*=", re.I),
    "a javascript: URL": re.compile(r"javascript:", re.I),
    "hx-on (needs eval)": re.compile(r"\shx-on", re.I),
}


def test_no_template_uses_inline_script_or_style():
    offences = []
    for template in sorted((ROOT / "templates").rglob("*.html")):
        text = template.read_text()
        for what, rule in INLINE_RULES.items():
            if rule.search(text):
                offences.append(f"{template.relative_to(ROOT)}: {what}")
    assert not offences


# --- Headers and cookies -------------------------------------------------------------------


@pytest.mark.django_db
def test_pages_carry_the_security_headers(viewer_client):
    response = viewer_client.get("/", secure=True)
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


@pytest.mark.django_db
def test_cookies_are_host_prefixed_secure_and_http_only(viewer_client):
    response = viewer_client.get("/")
    session = response.cookies["__Host-sessionid"]
    csrf = response.cookies["__Host-csrftoken"]
    for cookie in (session, csrf):
        assert cookie["secure"] and cookie["httponly"]
        assert cookie["path"] == "/" and not cookie["domain"]
    assert session["samesite"] == "Lax"


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "dash.example.org",
        "TRUSTED_PROXY_CIDRS": "10.0.0.5/32",
        "DASHBOARD_VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


# --- Error pages ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_error_pages_are_generic(settings, sso_client):
    settings.ROOT_URLCONF = __name__
    client = sso_client("vera.viewer", VIEWER_GROUPS)
    client.raise_request_exception = False
    missing = client.get("/no/such/page/")
    assert missing.status_code == 404
    assert b"There is nothing here." in missing.content
    failed = client.get("/boom/", headers={"Authorization": "Bearer very-secret-bearer"})
    assert failed.status_code == 500
    body = failed.content.decode()
    assert "Something went wrong" in body
    for leak in ("very-secret-bearer", "RuntimeError", "upstream refused", "vera.viewer"):
        assert leak not in body
    for response in (missing, failed):
        assert response["X-Frame-Options"] == "DENY"
        assert response["Cache-Control"] == "no-store"


# --- Logs ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_logs_never_contain_credentials_tokens_or_cookies(settings, sso_client, log_output):
    ak = "HPUA" + secrets.token_hex(8).upper()
    sk = secrets.token_urlsafe(30)
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, "AK": ak, "SK": sk}
    settings.ROOT_URLCONF = __name__
    bearer = "bt-" + secrets.token_hex(16)
    iam_token = "MIIx" + secrets.token_hex(24)
    security_token = "st-" + secrets.token_hex(20)
    assertion = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJqbyJ9." + secrets.token_urlsafe(20)
    signature = secrets.token_hex(32)
    client = sso_client("vera.viewer", VIEWER_GROUPS)
    client.raise_request_exception = False
    client.get("/")  # signs in: the client now holds a session cookie
    session = client.cookies["__Host-sessionid"].value
    sdk_auth = f"SDK-HMAC-SHA256 Access={ak}, SignedHeaders=host;x-sdk-date, Signature={signature}"
    for headers in (
        {"Authorization": f"Bearer {bearer}"},
        {"Authorization": sdk_auth, "X-Security-Token": security_token},
        {"X-Auth-Token": iam_token, "Cf-Access-Jwt-Assertion": assertion},
    ):
        assert client.get("/boom/", headers=headers).status_code == 500
    client.get(f"/no/such/page/?token={bearer}&sk={sk}")
    boom_log.error("cloud call failed ak=%s sk=%s token=%s", ak, sk, iam_token)
    boom_log.error("config %r", {"HUAWEICLOUD_SDK_SK": sk, "password": "hunter2hunter2"})

    output = log_output.getvalue()
    assert "Internal Server Error: /boom/" in output  # the errors were logged...
    assert "RuntimeError" in output
    secrets_used = [ak, sk, bearer, iam_token, security_token, assertion, signature, session]
    for secret in [*secrets_used, "hunter2hunter2"]:  # ...without a single secret
        assert secret not in output
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")
    assert all(stamp.match(line) for line in output.splitlines())


def test_scrub_handles_the_usual_shapes():
    cases = [
        "Authorization: Bearer abc.def.ghi",
        "'HTTP_AUTHORIZATION': 'Basic dXNlcjpwYXNz'",
        "'HTTP_COOKIE': '__Host-sessionid=s3cr3tvalue; __Host-csrftoken=s3cr3tvalue'",
        '{"password": "s3cr3tvalue"}',
        "GET /x?access_token=s3cr3tvalue&page=2",
        "X-Subject-Token: s3cr3tvalue",
        "HUAWEICLOUD_SDK_SECURITY_TOKEN=s3cr3tvalue",
        "Set-Cookie: sessionid=s3cr3tvalue; Path=/",
    ]
    for text in cases:
        cleaned = scrub(text)
        assert "s3cr3tvalue" not in cleaned and "abc.def.ghi" not in cleaned, cleaned
        assert "dXNlcjpwYXNz" not in cleaned
    assert scrub("server_count=5 page=2 disk=40") == "server_count=5 page=2 disk=40"


# --- Hostile names -------------------------------------------------------------------------

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.mark.django_db
def test_hostile_server_and_group_names_render_escaped(viewer_client):
    now = timezone.now()
    group = ServerGroup.objects.create(id="sg-evil", name=HOSTILE, synced_at=now)
    Server.objects.create(id="srv-evil", name=HOSTILE, group=group, synced_at=now)
    for url in ("/servers/", "/servers/srv-evil/", "/groups/"):
        body = viewer_client.get(url).content.decode()
        assert HOSTILE not in body, url
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body, url


@pytest.mark.django_db
def test_a_hostile_user_name_renders_escaped_on_pages_and_in_the_audit(sso_client):
    client = sso_client(HOSTILE, VIEWER_GROUPS)
    client.get("/audit/export.csv")
    body = client.get("/audit/").content.decode()
    assert HOSTILE not in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body


@pytest.mark.django_db
def test_a_user_name_with_control_characters_is_refused_and_logged_on_one_line(
    sso_client, log_output
):
    forged = "eve\n2026-01-01 00:00:00,000 INFO dashboard.audit audit rollout.approve ok"
    response = sso_client(forged, VIEWER_GROUPS).get("/")
    assert response.status_code == 403
    lines = log_output.getvalue().splitlines()
    assert not any(line.startswith("2026-01-01") for line in lines)
    # Refused (its comma reads as a repeated header) and logged with the newline escaped.
    assert any("refused SSO identity" in line and "\\n2026" in line for line in lines)


def test_one_line_formatting_escapes_every_line_break():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "a\rb\nc\u2028d", None, None)
    assert "\n" not in OneLineFormatter("%(message)s").format(record)
    assert django_settings.LOGGING["handlers"]["console"]["formatter"] == "line"


def test_error_pages_and_reports_hide_the_cloud_keys(rf, settings):
    import sys

    from django.views.debug import technical_500_response

    # Built here, never spelled out: the page shows this test's source lines too.
    ak, sk = "AK" + "SHOWN" * 2, "sk-" + "never" * 3
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, "AK": ak, "SK": sk}
    del ak, sk  # nor kept in this frame's variables, which the page lists
    try:
        raise ValueError("boom")
    except ValueError:
        page = technical_500_response(rf.get("/"), *sys.exc_info()).content.decode()

    assert "HUAWEICLOUD" in page  # the setting is listed, its keys masked
    assert "sk-" + "never" * 3 not in page and "AK" + "SHOWN" * 2 not in page


def test_reopening_an_address_that_only_takes_a_form_shows_a_page(viewer_client):
    for address in ("/sign-out/", "/inventory/sync/", "/rollouts/new/plan/"):
        response = viewer_client.get(address)
        assert response.status_code == 405
        assert "POST" in response["Allow"]
        page = response.content.decode()
        assert "This address is not a page" in page and 'href="/"' in page
    api = viewer_client.get("/api/v1/plans/1/confirm")
    assert api["Content-Type"] == "application/problem+json"
