"""`Idempotency-Key` on every POST: the same key and body answer the first result and never
act twice; another body under the same key is a 409; keys belong to one caller and expire."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from dashboard.models import AuditEvent, IdempotencyKey, Rollout, RolloutEvent
from tests.api_helpers import API, plan_body, running_rollout

pytestmark = pytest.mark.django_db


def post(client: Client, path: str, body, key: str | None = None):
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(f"{API}{path}", body, content_type="application/json", headers=headers)


def test_a_repeated_plan_answers_the_first_plan_and_makes_no_second(operator_token, small_fleet):
    first = post(operator_token, "/plans", plan_body(), key="build-417")
    again = post(operator_token, "/plans", plan_body(), key="build-417")

    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert Rollout.objects.count() == 1
    assert AuditEvent.objects.filter(action="rollout.plan").count() == 1


def test_the_same_data_sent_differently_is_the_same_request(operator_token, small_fleet):
    body = plan_body()
    spaced = "{\n" + ",\n".join(f'  "{k}": "{v}"' for k, v in reversed(body.items())) + "\n}"
    post(operator_token, "/plans", body, key="k1")
    assert post(operator_token, "/plans", spaced, key="k1")["Idempotent-Replayed"] == "true"
    assert Rollout.objects.count() == 1


def test_another_body_under_the_same_key_is_a_409(operator_token, small_fleet):
    post(operator_token, "/plans", plan_body(), key="build-417")
    response = post(operator_token, "/plans", plan_body(reason="other"), key="build-417")

    assert response.status_code == 409
    assert response.json()["code"] == "idempotency.key_reused"
    assert Rollout.objects.count() == 1


def test_the_same_key_on_another_path_is_a_409(operator_token, small_fleet):
    plan = post(operator_token, "/plans", plan_body(), key="k").json()
    response = post(operator_token, f"/plans/{plan['id']}/discard", {}, key="k")
    assert response.json()["code"] == "idempotency.key_reused"
    assert Rollout.objects.get().state == Rollout.State.PLANNED


def test_keys_belong_to_their_caller(make_token, small_fleet):
    first, _ = make_token("bot-a", "operator")
    second, _ = make_token("bot-b", "operator")
    a = post(first, "/plans", plan_body(), key="shared-name")
    b = post(second, "/plans", plan_body(), key="shared-name")

    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]
    assert "Idempotent-Replayed" not in b


def test_a_repeated_confirm_confirms_once_and_answers_alike(operator_token, small_fleet):
    plan = post(operator_token, "/plans", plan_body()).json()
    body = {"confirm_token": plan["confirm_token"]}
    first = post(operator_token, f"/plans/{plan['id']}/confirm", body, key="confirm-1")
    again = post(operator_token, f"/plans/{plan['id']}/confirm", body, key="confirm-1")

    assert first.status_code == again.status_code == 200
    assert again.content == first.content and again.json()["state"] == "queued"
    assert RolloutEvent.objects.filter(action="confirm").count() == 1
    # Without a key, a second confirm finds the plan confirmed: a 409, and nothing moves.
    unkeyed = post(operator_token, f"/plans/{plan['id']}/confirm", body)
    assert unkeyed.status_code == 409 and unkeyed.json()["state"] == "queued"
    assert RolloutEvent.objects.filter(action="confirm").count() == 1


def test_a_refusal_is_the_first_result_too(operator_token, small_fleet):
    plan = post(operator_token, "/plans", plan_body()).json()
    wrong = {"confirm_token": "forged"}
    first = post(operator_token, f"/plans/{plan['id']}/confirm", wrong, key="c")
    again = post(operator_token, f"/plans/{plan['id']}/confirm", wrong, key="c")

    assert first.status_code == again.status_code == 409
    assert first.json()["code"] == "confirm_token_invalid"
    assert again.content == first.content and again["Content-Type"] == first["Content-Type"]


def test_an_action_replayed_moves_the_rollout_once(operator_token, db):
    rollout = running_rollout()
    first = post(operator_token, f"/rollouts/{rollout.pk}/pause", {}, key="p")
    again = post(operator_token, f"/rollouts/{rollout.pk}/pause", {}, key="p")

    assert first.status_code == again.status_code == 200
    assert again.json()["state"] == "paused"
    assert RolloutEvent.objects.filter(action="pause").count() == 1


def test_a_key_still_being_answered_is_a_409_to_retry(operator_token, small_fleet):
    post(operator_token, "/plans", plan_body(), key="slow")
    IdempotencyKey.objects.filter(key="slow").update(status=None, body="")  # still running

    response = post(operator_token, "/plans", plan_body(), key="slow")

    assert response.status_code == 409
    assert response.json()["code"] == "idempotency.in_progress"
    assert response["Retry-After"] == "1"


def test_an_expired_key_acts_again(operator_token, small_fleet, settings):
    post(operator_token, "/plans", plan_body(), key="old")
    IdempotencyKey.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = post(operator_token, "/plans", plan_body(), key="old")

    assert response.status_code == 201 and "Idempotent-Replayed" not in response
    assert Rollout.objects.count() == 2
    assert IdempotencyKey.objects.count() == 1  # the expired one is gone


def test_a_key_is_one_line_of_printable_characters(operator_token, small_fleet):
    response = post(operator_token, "/plans", plan_body(), key="x" * 256)
    assert response.status_code == 422
    assert not Rollout.objects.exists()


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_the_same_key_sent_at_once_from_two_places_plans_once(make_token, small_fleet):
    """Two requests with one key racing on PostgreSQL: the unique row lets one act; the other
    answers its result or says it is still being answered. Never two plans."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL's concurrent connections")
    _, issued = make_token("race-bot", "operator")
    barrier = threading.Barrier(4)

    def send(_n: int) -> int:
        try:
            client = Client(headers={"Authorization": f"Bearer {issued.secret}"})
            barrier.wait()
            return post(client, "/plans", plan_body(), key="raced").status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(send, range(4)))

    assert Rollout.objects.count() == 1
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}
