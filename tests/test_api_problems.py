"""Every error under /api/ is an RFC 9457 problem document with a stable code, whichever
layer answered it; callers are limited per minute (429 with Retry-After), through the
database; cookie sessions need the CSRF token for a state change, tokens do not."""

import pytest
from django.test import Client

from dashboard.api.problems import CONTENT_TYPE, TITLES, TYPE_PREFIX
from dashboard.models import AuditEvent, CloudRateWindow, Rollout
from tests.api_helpers import API, plan_body
from tests.conftest import OPERATOR_GROUPS

pytestmark = pytest.mark.django_db


def problem(response, status: int, code: str) -> dict:
    """The response is a problem document with this status and code; its body."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == CONTENT_TYPE
    body = response.json()
    assert body["status"] == status and body["code"] == code
    assert body["type"] == TYPE_PREFIX + code and body["title"] == TITLES[code]
    assert body["detail"]
    return body


def post_json(client: Client, path: str, body, **headers):
    return client.post(f"{API}{path}", body, content_type="application/json", headers=headers)


def test_no_caller_is_a_401(db):
    response = Client().get(f"{API}/servers")
    problem(response, 401, "auth.required")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_no_answer_is_kept_by_a_cache(operator_token, small_fleet):
    assert operator_token.get(f"{API}/servers")["Cache-Control"] == "no-store"
    assert Client().get(f"{API}/servers")["Cache-Control"] == "no-store"


def test_an_unknown_path_and_an_unknown_rollout_are_404s(operator_token):
    problem(operator_token.get(f"{API}/nowhere"), 404, "not_found")
    problem(operator_token.get(f"{API}/rollouts/999999"), 404, "not_found")
    problem(post_json(operator_token, "/rollouts/999999/pause", {}), 404, "not_found")
    beyond = 10**30  # past any id column: still just not found
    problem(operator_token.get(f"{API}/plans/{beyond}"), 404, "not_found")
    assert operator_token.get(f"{API}/rollouts", {"cursor": "9" * 20}).status_code == 200


def test_a_method_the_path_does_not_take_is_a_405_naming_the_allowed_ones(operator_token):
    response = operator_token.delete(f"{API}/servers")
    problem(response, 405, "method_not_allowed")
    assert response["Allow"] == "GET"


def test_an_invalid_body_is_a_422_naming_each_field(operator_token, small_fleet):
    response = post_json(operator_token, "/plans", {"group": "sg-1", "reason": ""})
    body = problem(response, 422, "validation.invalid")
    fields = {error["field"] for error in body["errors"]}
    assert {"body.body.target_image", "body.body.reason"} <= fields


def test_the_rollout_forms_own_refusals_are_422s(operator_token, small_fleet):
    unknown = post_json(operator_token, "/plans", plan_body(target_image="img-nowhere"))
    body = problem(unknown, 422, "validation.invalid")
    assert [e["field"] for e in body["errors"]] == ["target_image"]
    empty = post_json(operator_token, "/plans", plan_body(group=None, servers=[]))
    assert "Select at least one server." in str(problem(empty, 422, "validation.invalid"))
    twice = post_json(operator_token, "/plans", plan_body(servers=["srv-1"]))
    assert problem(twice, 422, "validation.invalid")["errors"][0]["field"] == "servers"
    assert not Rollout.objects.exists()


def test_a_body_that_is_not_json_is_refused(operator_token):
    problem(
        operator_token.post(f"{API}/plans", "{not json", content_type="application/json"),
        400,
        "request.malformed",
    )
    problem(operator_token.post(f"{API}/plans", {"a": "b"}), 415, "request.unsupported_media_type")


def test_a_nul_anywhere_is_a_400(operator_token, small_fleet):
    with_nul = post_json(operator_token, "/plans", plan_body(reason="a\x00b"))
    problem(with_nul, 400, "request.malformed")
    problem(operator_token.get(f"{API}/servers", {"q": "a\x00"}), 400, "request.malformed")


def test_a_lone_surrogate_is_a_400_and_a_pair_is_a_character(operator_token, small_fleet, caplog):
    lone = operator_token.post(
        f"{API}/plans",
        '{"servers": ["\\ud800"], "target_image": "group", "reason": "r"}',
        content_type="application/json",
    )
    assert "surrogate" in problem(lone, 400, "request.malformed")["detail"]
    assert not Rollout.objects.exists()
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]

    paired = operator_token.post(  # an emoji written as its UTF-16 pair: one character
        f"{API}/plans", '{"reason": "\\ud83d\\ude00"}', content_type="application/json"
    )
    assert paired.status_code == 422  # the schema's answer: the other fields are missing


def test_a_body_over_the_upload_limit_is_a_413_not_an_error(
    operator_token, small_fleet, settings, caplog
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    huge = post_json(operator_token, "/plans", plan_body(reason="a" * 20_000))
    assert "10000 bytes" in problem(huge, 413, "request.too_large")["detail"]
    assert not Rollout.objects.exists()
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


def test_a_bad_cursor_is_a_400(viewer_token):
    problem(viewer_token.get(f"{API}/servers", {"cursor": "garbage"}), 400, "cursor.invalid")
    problem(viewer_token.get(f"{API}/audit", {"cursor": "x"}), 400, "cursor.invalid")
    for path in ("rollouts", "audit"):  # "²": a digit to str.isdigit(), no number to int()
        problem(viewer_token.get(f"{API}/{path}", {"cursor": "\u00b2"}), 400, "cursor.invalid")


def test_a_refused_sso_identity_is_a_problem_with_its_reason(db, settings):
    settings.TRUSTED_PROXY_CIDRS = ["10.20.30.0/29"]
    spoofed = Client(REMOTE_ADDR="203.0.113.9", headers={"X-Forwarded-User": "mallory"})
    body = problem(spoofed.get(f"{API}/servers"), 403, "access.refused")
    assert body["reason"] == "sso.untrusted_peer"


def test_callers_are_limited_per_minute_through_the_database(
    transactional_db, make_token, settings, small_fleet, one_minute
):
    # Transactional: the shared counter is not kept inside a transaction (upstream.py), and
    # requests never run inside one.
    settings.API_REQUESTS_PER_MINUTE = 3
    busy, _ = make_token("busy-bot", "viewer")
    other, _ = make_token("other-bot", "viewer")
    for _ in range(3):
        assert busy.get(f"{API}/groups").status_code == 200

    response = busy.get(f"{API}/groups")

    problem(response, 429, "rate_limited")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert CloudRateWindow.objects.filter(key__startswith="api:").exists()
    assert other.get(f"{API}/groups").status_code == 200  # each caller has its own minute


def test_a_session_needs_the_csrf_token_to_act_and_a_token_does_not(
    sso_client, operator_token, small_fleet
):
    browser = sso_client("otto.operator", OPERATOR_GROUPS, enforce_csrf_checks=True)
    assert browser.get(f"{API}/servers").status_code == 200  # reading needs no token

    refused = post_json(browser, "/plans", plan_body())

    problem(refused, 403, "csrf.failed")
    assert AuditEvent.objects.filter(action="csrf.refused", actor="otto.operator").exists()
    browser.get("/")  # a page sets the CSRF cookie
    csrf = browser.cookies[settings_csrf_cookie()].value
    made = post_json(browser, "/plans", plan_body(), **{"X-CSRFToken": csrf})
    assert made.status_code == 201, made.content
    assert made.json()["created_by"] == "otto.operator"
    assert post_json(operator_token, "/plans", plan_body()).status_code == 201


def settings_csrf_cookie() -> str:
    from django.conf import settings

    return settings.CSRF_COOKIE_NAME


def test_a_state_the_rollout_is_not_in_is_a_409_with_the_state(operator_token, small_fleet):
    plan = post_json(operator_token, "/plans", plan_body()).json()
    body = problem(
        post_json(operator_token, f"/rollouts/{plan['id']}/pause", {}),
        409,
        "rollout.state_conflict",
    )
    assert body["state"] == "planned"
    refusal = AuditEvent.objects.get(action="rollout.pause")
    assert refusal.outcome == "refused" and refusal.actor == "token:deploy-bot"
