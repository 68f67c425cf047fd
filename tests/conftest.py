"""The fixed cast of people, and shared fixtures.

Every identity fixture signs in the way production does: through the authenticating proxy's
headers, from an address inside TRUSTED_PROXY_CIDRS. Each client carries its own identity, so
a test may use several at once.
"""

import io
import logging
from collections.abc import Callable

import pytest
from django.test import Client

from dashboard.logscrub import OneLineFormatter

pytest_plugins = ["tests.sim_fixtures", "tests.api_helpers", "tests.projects_fixtures"]

VIEWER_GROUPS = ["dashboard-viewers"]
OPERATOR_GROUPS = ["dashboard-operators"]
APPROVER_GROUPS = ["dashboard-approvers"]
ADMIN_GROUPS = ["dashboard-admins"]
OUTSIDER_GROUPS = ["finance"]

PROXY_CIDR = "10.20.30.0/29"  # the authenticating proxy, as TRUSTED_PROXY_CIDRS names it
PROXY_ADDR = "10.20.30.2"
CLIENT_ADDR = "198.51.100.23"  # the person's browser, as the proxy reports it


@pytest.fixture
def sso_client(settings, db) -> Callable[..., Client]:
    """A factory: `sso_client("alice", ["dashboard-operators"])` -> a signed-in test Client.

    Keyword arguments: `email`, `client_ip` (sent as X-Forwarded-For) and
    `enforce_csrf_checks` (default False, as Django's own test client).
    """
    settings.TRUSTED_PROXY_CIDRS = [PROXY_CIDR]

    def make(
        username: str,
        groups: list[str] | tuple[str, ...],
        *,
        email: str | None = None,
        client_ip: str = CLIENT_ADDR,
        enforce_csrf_checks: bool = False,
    ) -> Client:
        headers = {
            settings.SSO_USER_HEADER: username,
            settings.SSO_EMAIL_HEADER: email if email is not None else f"{username}@example.org",
            settings.SSO_GROUPS_HEADER: ",".join(groups),
            "X-Forwarded-For": client_ip,
        }
        return Client(
            REMOTE_ADDR=PROXY_ADDR, headers=headers, enforce_csrf_checks=enforce_csrf_checks
        )

    return make


@pytest.fixture
def viewer_client(sso_client) -> Client:
    return sso_client("vera.viewer", VIEWER_GROUPS)


@pytest.fixture
def operator_client(sso_client) -> Client:
    return sso_client("otto.operator", OPERATOR_GROUPS)


@pytest.fixture
def approver_client(sso_client) -> Client:
    return sso_client("april.approver", APPROVER_GROUPS)


@pytest.fixture
def admin_client_sso(sso_client) -> Client:
    return sso_client("ada.admin", ADMIN_GROUPS)


@pytest.fixture
def outsider_client(sso_client) -> Client:
    """Signed in at the company, but in no dashboard group: refused everywhere."""
    return sso_client("olga.outsider", OUTSIDER_GROUPS)


@pytest.fixture
def log_output():
    """Everything the configured console handler writes, as the operator would see it."""
    handlers = [
        h for h in logging.getLogger().handlers if isinstance(h.formatter, OneLineFormatter)
    ]
    assert handlers, "the LOGGING console handler is missing"
    buffer = io.StringIO()
    previous = [handler.setStream(buffer) for handler in handlers]
    yield buffer
    for handler, stream in zip(handlers, previous, strict=True):
        handler.setStream(stream)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """The cache (de-duplication of refusal audits, JWKS) never leaks from one test to the next."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def one_minute():
    """Rations count per wall-clock minute (refusal rows, the API's requests a minute): a test
    that counts within one starts with enough of its minute left, never straddling two."""
    import time

    left = 60 - time.time() % 60
    if left < 10:
        time.sleep(left + 0.05)
