"""The API's role walk: every operation by every kind of caller, against one table.

A new operation makes `test_every_operation_is_in_the_table` fail until it has a row: its
method and path, the role it needs, and a JSON body that a holder of the role could send.
Each case runs with a service token of that role (and once with none): without the role the
answer is 403 `role.missing` (401 without a caller), with it anything but a refusal.
"""

import pytest
from django.test import Client

from tests.api_helpers import API, running_rollout

pytestmark = pytest.mark.django_db

CALLERS = ("none", "viewer", "operator", "approver", "admin")
HOLDERS = {
    "viewer": {"viewer", "operator", "approver", "admin"},
    "operator": {"operator", "admin"},
    "approver": {"approver", "admin"},
}
PLAN = {"servers": ["srv-1"], "target_image": "img-new", "reason": "walk", "preset": "custom"}

# (method, path with {rollout}) → (role, body)
OPERATIONS: dict[tuple[str, str], tuple[str, dict | None]] = {
    ("GET", "/groups"): ("viewer", None),
    ("GET", "/images"): ("viewer", None),
    ("GET", "/servers"): ("viewer", None),
    ("GET", "/rollouts"): ("viewer", None),
    ("GET", "/rollouts/{rollout_id}"): ("viewer", None),
    ("GET", "/plans/{rollout_id}"): ("viewer", None),
    ("GET", "/audit"): ("viewer", None),
    ("POST", "/plans"): ("operator", PLAN),
    ("POST", "/plans/{rollout_id}/confirm"): ("operator", {"confirm_token": "x"}),
    ("POST", "/plans/{rollout_id}/discard"): ("operator", {}),
    ("POST", "/rollouts/{rollout_id}/approve"): ("approver", {}),
    ("POST", "/rollouts/{rollout_id}/reject"): ("approver", {"reason": "not now"}),
    ("POST", "/rollouts/{rollout_id}/pause"): ("operator", {}),
    ("POST", "/rollouts/{rollout_id}/resume"): ("operator", {"how": "continue"}),
    ("POST", "/rollouts/{rollout_id}/cancel"): ("operator", {}),
    ("POST", "/rollouts/{rollout_id}/retry"): ("operator", {}),
    ("POST", "/rollouts/{rollout_id}/revert"): ("operator", {}),
}


def test_every_operation_is_in_the_table(make_token):
    client, _ = make_token("walker", "viewer")
    document = client.get(f"{API}/openapi.json").json()
    found = {
        (method.upper(), path.removeprefix(API))
        for path, item in document["paths"].items()
        for method in item
    }
    assert found == set(OPERATIONS), f"update OPERATIONS: {found ^ set(OPERATIONS)}"


CASES = [
    pytest.param(method, path, caller, id=f"{method} {path} as {caller}")
    for (method, path) in OPERATIONS
    for caller in CALLERS
]


@pytest.mark.parametrize(("method", "path", "caller"), CASES)
def test_each_caller_gets_what_its_role_allows(method, path, caller, make_token, small_fleet):
    role, body = OPERATIONS[(method, path)]
    rollout = running_rollout(created_by="someone.else", state="paused")
    url = API + path.format(rollout_id=rollout.pk)
    client = Client() if caller == "none" else make_token(f"walk-{caller}", caller)[0]
    if method == "GET":
        response = client.get(url)
    else:
        response = client.post(url, body, content_type="application/json")

    answer = response.json()
    if caller == "none":
        assert (response.status_code, answer["code"]) == (401, "auth.required")
    elif caller not in HOLDERS[role]:
        assert (response.status_code, answer["code"]) == (403, "role.missing")
    else:
        assert response.status_code not in (401, 403, 405), answer
        assert response.status_code < 500, answer
