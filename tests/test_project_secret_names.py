"""The secrets of every configured project stay out of DEBUG pages, error reports and logs,
whatever names its projects file gives the variables that hold them."""

import logging
import sys

import pytest
from django.test import RequestFactory
from django.views.debug import technical_500_response

from dashboard import logscrub
from dashboard.cloud.projects import load

SECRET = "Qw8rTy2UiOp4AsDf6GhJk9LzXc1VbNm3PoIuYtRe"
KEY = "BJACCESSKEY0000000001"


@pytest.fixture
def projects_file(tmp_path, settings, monkeypatch):
    path = tmp_path / "projects.toml"
    path.write_text(
        '[[project]]\nname = "beijing"\nregion = "cn-north-4"\n'
        'project_id = "0123456789abcdef0123456789abcdef"\n'
        'ak_env = "BJ_KEY_ID"\nsk_env = "PROD_CREDENTIAL"\n'
    )
    monkeypatch.setenv("BJ_KEY_ID", KEY)
    monkeypatch.setenv("PROD_CREDENTIAL", SECRET)
    settings.CLOUD_PROJECTS = load(path)
    return path


def _debug_page(settings, request) -> str:
    """Django's DEBUG page for a failing request (runserver passes the process's environment
    in its META). Raised where no local variable holds the values."""
    settings.DEBUG = True
    try:
        _fail()
    except RuntimeError:
        return technical_500_response(request, *sys.exc_info()).content.decode()


def _fail() -> None:
    raise RuntimeError("boom")


def test_the_debug_page_hides_the_variables_a_projects_file_names(projects_file, settings):
    environ = {"BJ_KEY_ID": KEY, "PROD_CREDENTIAL": SECRET, "HARMLESS": "visible"}
    page = _debug_page(settings, RequestFactory().get("/", **environ))
    assert SECRET not in page and KEY not in page
    assert "visible" in page  # the filter hides secrets, not the page


def test_the_debug_page_hides_any_key_half_by_its_name(settings):
    environ = {"DEMO_BEIJING_SK": "demo-beijing-secret", "DEMO_BEIJING_AK": "ak-1"}
    page = _debug_page(settings, RequestFactory().get("/", **environ))
    assert "demo-beijing-secret" not in page and "ak-1" not in page


def test_a_projects_secret_is_scrubbed_from_log_lines(projects_file, caplog):
    logger = logging.getLogger("dashboard.test_secret")
    logger.addFilter(logscrub.ScrubSecretsFilter())
    with caplog.at_level(logging.INFO, logger="dashboard.test_secret"):
        logger.info("signing with %s for %s", SECRET, KEY)
    assert SECRET not in caplog.text and KEY not in caplog.text
    assert logscrub.REDACTED in caplog.text


def test_a_secret_read_from_a_file_is_scrubbed_too(projects_file, tmp_path, monkeypatch):
    secret_file = tmp_path / "sk"
    secret_file.write_text("FromAFileSecretValue0123456789abcdefghij\n")
    monkeypatch.delenv("PROD_CREDENTIAL")
    monkeypatch.setenv("PROD_CREDENTIAL_FILE", str(secret_file))
    scrubbed = logscrub.scrub("sk FromAFileSecretValue0123456789abcdefghij")
    assert "FromAFileSecretValue" not in scrubbed
