"""The fixed cast of people, and shared fixtures."""

import pytest
from django.test import Client

pytest_plugins = ["tests.sim_fixtures"]

VIEWER_GROUPS = ["dashboard-viewers"]
OPERATOR_GROUPS = ["dashboard-operators"]
APPROVER_GROUPS = ["dashboard-approvers"]
ADMIN_GROUPS = ["dashboard-admins"]


def _client_as(settings, username: str, groups: list[str]) -> Client:
    settings.DEBUG = True
    settings.DASHBOARD_DEV_USER = username
    settings.DASHBOARD_DEV_GROUPS = groups
    return Client(REMOTE_ADDR="127.0.0.1")


@pytest.fixture
def viewer_client(settings, db) -> Client:
    return _client_as(settings, "vera.viewer", VIEWER_GROUPS)


@pytest.fixture
def operator_client(settings, db) -> Client:
    return _client_as(settings, "otto.operator", OPERATOR_GROUPS)


@pytest.fixture
def admin_client_sso(settings, db) -> Client:
    return _client_as(settings, "ada.admin", ADMIN_GROUPS)
