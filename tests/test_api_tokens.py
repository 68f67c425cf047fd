"""Service tokens: made by an admin on /tokens/, shown once, stored hashed, with a role, an
expiry and the time of last use; revocable; every API action they take is audited under
their name."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from dashboard.api import tokens
from dashboard.models import AuditEvent, ServiceToken
from tests.api_helpers import API, bearer, plan_body

pytestmark = pytest.mark.django_db


def create_on_page(client: Client, **fields):
    data = {"name": "deploy-bot", "role": "operator", "expires_in": "30", **fields}
    return client.post("/tokens/", data)


def test_a_token_name_with_spaces_is_refused_in_plain_words(admin_client_sso):
    response = create_on_page(admin_client_sso, name="deploy bot")

    assert response.status_code == 400
    html = response.content.decode()
    assert "Use only letters, digits, dashes and underscores, e.g. deploy-bot." in html
    assert "slug" not in html.lower().replace("slugfield", "")
    assert not ServiceToken.objects.exists()


def test_an_admin_makes_a_token_and_sees_its_secret_once(admin_client_sso):
    response = create_on_page(admin_client_sso)

    assert response.status_code == 201
    secret = response.context["issued"].secret
    assert secret.startswith("dsh_") and secret.encode() in response.content
    assert response["Cache-Control"] == "no-store"
    token = ServiceToken.objects.get()
    assert (token.name, token.role, token.created_by) == ("deploy-bot", "operator", "ada.admin")
    assert token.secret_hash == tokens.digest(secret)
    stored = [str(value) for value in ServiceToken.objects.values_list().get()]
    assert not any(secret in value for value in stored)  # only its hash is kept
    assert timezone.now() + timedelta(days=29) < token.expires_at
    assert secret.encode() not in admin_client_sso.get("/tokens/").content
    event = AuditEvent.objects.get(action="token.create")
    assert (event.actor, event.target, event.details["role"]) == (
        "ada.admin",
        "token:deploy-bot",
        "operator",
    )


def test_the_secret_works_at_once_and_last_use_is_recorded(admin_client_sso, small_fleet):
    secret = create_on_page(admin_client_sso).context["issued"].secret

    assert bearer(secret).get(f"{API}/groups").status_code == 200
    assert ServiceToken.objects.get().last_used_at is not None


def test_two_tokens_cannot_share_a_name(admin_client_sso):
    create_on_page(admin_client_sso)
    response = create_on_page(admin_client_sso, name="Deploy-Bot")
    assert response.status_code == 400
    assert ServiceToken.objects.count() == 1


@pytest.mark.parametrize("role", ["viewer", "operator", "approver"])
def test_only_admins_reach_the_tokens_page(role, sso_client):
    client = sso_client(f"walk.{role}", [f"dashboard-{role}s"])
    assert client.get("/tokens/").status_code == 403
    assert create_on_page(client).status_code == 403
    assert not ServiceToken.objects.exists()


def test_a_revoked_token_stops_working_at_once(admin_client_sso, make_token):
    client, issued = make_token("deploy-bot", "operator")
    assert client.get(f"{API}/rollouts").status_code == 200

    response = admin_client_sso.post(f"/tokens/{issued.token.pk}/revoke/")

    assert response.status_code == 302
    refused = client.get(f"{API}/rollouts")
    assert refused.status_code == 401
    assert refused.json()["code"] == "auth.token_revoked"
    token = ServiceToken.objects.get()
    assert token.revoked_by == "ada.admin" and token.revoked_at is not None
    assert AuditEvent.objects.filter(action="token.revoke", target="token:deploy-bot").exists()


def test_an_expired_token_is_refused(make_token):
    client, issued = make_token("old-bot", "operator")
    ServiceToken.objects.filter(pk=issued.token.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    response = client.get(f"{API}/rollouts")
    assert response.status_code == 401
    assert response.json()["code"] == "auth.token_expired"


@pytest.mark.parametrize("secret", ["dsh_not-a-real-one", "somebody-elses", "dsh_" + "x" * 300])
def test_an_unknown_token_is_refused_and_the_refusal_audited(secret, db):
    response = bearer(secret).get(f"{API}/rollouts")

    assert response.status_code == 401
    assert response.json()["code"] == "auth.invalid_token"
    assert response["WWW-Authenticate"].startswith("Bearer")
    event = AuditEvent.objects.get(action="api.refused")
    assert event.outcome == "refused" and event.details["code"] == "auth.invalid_token"
    assert secret not in str(event.details)


def test_a_tokens_actions_are_audited_under_its_name(operator_token, small_fleet):
    response = operator_token.post(f"{API}/plans", plan_body(), content_type="application/json")

    assert response.status_code == 201, response.content
    plan = response.json()
    assert plan["created_by"] == "token:deploy-bot"
    event = AuditEvent.objects.get(action="rollout.plan")
    assert (event.actor, event.rollout_id, event.outcome) == ("token:deploy-bot", plan["id"], "ok")

    confirmed = operator_token.post(
        f"{API}/plans/{plan['id']}/confirm",
        {"confirm_token": plan["confirm_token"]},
        content_type="application/json",
    )
    assert confirmed.status_code == 200, confirmed.content
    assert confirmed.json()["confirmed_by"] == "token:deploy-bot"
    event = AuditEvent.objects.get(action="rollout.confirm")
    assert event.actor == "token:deploy-bot"
    timeline = confirmed.json()["events"]
    assert timeline[0]["action"] == "confirm" and timeline[0]["actor"] == "token:deploy-bot"


def test_a_token_acts_only_with_its_role(make_token, small_fleet):
    viewer, _ = make_token("report-bot", "viewer")
    assert viewer.get(f"{API}/servers").status_code == 200

    response = viewer.post(f"{API}/plans", plan_body(), content_type="application/json")

    assert response.status_code == 403
    assert response.json()["code"] == "role.missing"
    event = AuditEvent.objects.get(action="access.denied")
    assert event.actor == "token:report-bot" and event.details["required_role"] == "operator"
