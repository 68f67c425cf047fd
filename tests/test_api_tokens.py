"""Service tokens: made by an admin on /tokens/, shown once, stored hashed, with a role, an
expiry and the time of last use; revocable; every API action they take is audited under
their name."""

import re
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


def form_nonce(html: str) -> str:
    """The one-time nonce the creation form carries (a new one each time it is shown)."""
    match = re.search(r'<input type="hidden" name="nonce" value="([^"]+)"', html)
    assert match, "the creation form carries no nonce"
    return match.group(1)


def test_sending_the_creation_form_again_says_the_token_was_made_and_makes_nothing(
    admin_client_sso,
):
    nonce = form_nonce(admin_client_sso.get("/tokens/").content.decode())
    first = create_on_page(admin_client_sso, name="reload-test", nonce=nonce)
    assert first.status_code == 201
    secret = first.context["issued"].secret

    # The browser's Reload, its resubmission accepted: the very same form, sent again.
    again = create_on_page(admin_client_sso, name="reload-test", nonce=nonce)

    assert again.status_code == 200
    html = again.content.decode()
    assert again.context["issued"] is None and "data-secret" not in html
    assert secret not in html and secret[8:] not in html
    assert again.context["already"] == ServiceToken.objects.get()
    assert "token:reload-test was already created by this form" in html
    assert "Its secret was shown only once, when it was created" in html
    assert "revoke this token and create another" in html
    assert "A token of that name exists" not in html
    assert form_nonce(html) != nonce  # the page's form is a new one, for another token
    assert ServiceToken.objects.count() == 1
    made = AuditEvent.objects.filter(action="token.create", outcome="ok")
    assert made.count() == 1
    resent = AuditEvent.objects.get(action="token.create", outcome="refused")
    assert (resent.target, resent.details["code"]) == ("token:reload-test", "token.form_resent")


def test_another_creation_with_a_taken_name_is_still_refused(admin_client_sso):
    first_form = form_nonce(admin_client_sso.get("/tokens/").content.decode())
    second_form = form_nonce(admin_client_sso.get("/tokens/").content.decode())
    assert first_form != second_form  # one nonce each time the form is shown
    assert create_on_page(admin_client_sso, name="reload-test", nonce=first_form).status_code == 201

    for nonce in (second_form, "", "x" * 300):
        refused = create_on_page(admin_client_sso, name="reload-test", nonce=nonce)

        assert refused.status_code == 400
        html = refused.content.decode()
        assert "A token of that name exists; pick another name." in html
        assert "already created by this form" not in html
    assert ServiceToken.objects.count() == 1


def test_a_used_nonce_with_another_name_makes_that_other_token(admin_client_sso):
    """A form sent once, then brought back and given another name: a new, deliberate token."""
    nonce = form_nonce(admin_client_sso.get("/tokens/").content.decode())
    assert create_on_page(admin_client_sso, name="reload-test", nonce=nonce).status_code == 201

    other = create_on_page(admin_client_sso, name="other-bot", nonce=nonce)

    assert other.status_code == 201 and other.context["issued"].token.name == "other-bot"
    assert "already created by this form" not in other.content.decode()
    again = create_on_page(admin_client_sso, name="reload-test", nonce=nonce)
    assert again.context["already"].name == "reload-test"
    assert ServiceToken.objects.count() == 2


def described_by_ids(html: str) -> list[str]:
    """Every id the page's aria-describedby attributes point to."""
    values = re.findall(r'aria-describedby="([^"]*)"', html)
    return [ident for value in values for ident in value.split()]


def test_the_name_rules_show_under_the_field_before_any_error(admin_client_sso):
    html = admin_client_sso.get("/tokens/").content.decode()

    name_input = re.search(r'<input[^>]*name="name"[^>]*>', html).group(0)
    assert 'aria-describedby="id_name_helptext"' in name_input
    rules = re.search(r'<[a-z]+ [^>]*id="id_name_helptext"[^>]*>([^<]*)<', html)
    assert rules, "no element carries the name's help text id"
    assert "letters, digits, dashes and underscores" in rules.group(1)
    assert "50" in rules.group(1)
    assert html.index(name_input) < rules.start() < html.index('name="role"')
    for ident in described_by_ids(html):
        assert f'id="{ident}"' in html, ident


def test_after_an_error_every_description_the_fields_point_to_is_there(admin_client_sso):
    html = create_on_page(admin_client_sso, name="deploy bot").content.decode()

    assert "id_name_error" in described_by_ids(html)
    assert "id_name_helptext" in described_by_ids(html)
    for ident in described_by_ids(html):
        assert f'id="{ident}"' in html, ident


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
