"""Who may sign in, and what happens to everyone else."""

import hashlib
import hmac
import json
import logging
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth import get_user_model
from django.core.checks import run_checks
from django.test import Client
from jwt.utils import base64url_encode

from dashboard.models import AuditEvent
from dashboard.roles import OPERATOR
from tests.conftest import CLIENT_ADDR, PROXY_ADDR, PROXY_CIDR

User = get_user_model()
SSO_LOG = "django.security.sso"


def _sso_lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == SSO_LOG]


# --- Header mode ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_refuses_an_identity_header_from_an_untrusted_address(settings, caplog):
    settings.TRUSTED_PROXY_CIDRS = [PROXY_CIDR]
    spoofer = Client(
        REMOTE_ADDR="203.0.113.66",
        headers={"X-Forwarded-User": "ada.admin", "X-Forwarded-Groups": "dashboard-admins"},
    )
    response = spoofer.get("/")
    assert response.status_code == 403
    assert len(_sso_lines(caplog)) == 1
    assert "untrusted address" in _sso_lines(caplog)[0].getMessage()
    assert not User.objects.exists()
    event = AuditEvent.objects.get()
    assert (event.action, event.outcome, event.actor) == ("sso.refused", "refused", "")
    assert event.details["claimed_user"] == "ada.admin"
    assert event.client_ip == "203.0.113.66"


@pytest.mark.django_db
def test_an_empty_trusted_list_trusts_nobody(settings):
    settings.TRUSTED_PROXY_CIDRS = []
    client = Client(
        REMOTE_ADDR=PROXY_ADDR,
        headers={"X-Forwarded-User": "ada.admin", "X-Forwarded-Groups": "dashboard-admins"},
    )
    assert client.get("/").status_code == 403
    assert not User.objects.exists()


@pytest.mark.django_db
def test_a_spoofed_groups_header_alone_is_refused_too(settings):
    settings.TRUSTED_PROXY_CIDRS = [PROXY_CIDR]
    client = Client(REMOTE_ADDR="203.0.113.66", headers={"X-Forwarded-Groups": "dashboard-admins"})
    assert client.get("/").status_code == 403
    assert AuditEvent.objects.get().outcome == "refused"


@pytest.mark.django_db
def test_the_trusted_proxy_signs_a_person_in_with_email_and_groups(sso_client):
    response = sso_client("ina", ["dashboard-operators"], email="ina@corp.example").get("/")
    assert response.status_code == 200
    user = User.objects.get(username="ina")
    assert user.email == "ina@corp.example"
    assert response.wsgi_request.roles == frozenset({"viewer", "operator"})
    assert response.wsgi_request.sso_groups == ("dashboard-operators",)


@pytest.mark.django_db
def test_the_header_names_follow_the_settings(settings, sso_client):
    settings.SSO_USER_HEADER = "X-Auth-Request-User"
    settings.SSO_GROUPS_HEADER = "X-Auth-Request-Groups"
    settings.SSO_EMAIL_HEADER = "X-Auth-Request-Email"
    assert sso_client("ina", ["dashboard-viewers"]).get("/").status_code == 200
    # The default names are now just headers; nothing reads them.
    old = Client(
        REMOTE_ADDR=PROXY_ADDR,
        headers={"X-Forwarded-User": "ina", "X-Forwarded-Groups": "dashboard-viewers"},
    )
    assert old.get("/").status_code == 403


@pytest.mark.django_db
def test_a_person_in_no_mapped_group_is_refused_and_gets_no_account(outsider_client, caplog):
    assert outsider_client.get("/").status_code == 403
    assert not User.objects.filter(username="olga.outsider").exists()
    assert len(_sso_lines(caplog)) == 1
    event = AuditEvent.objects.get()
    assert (event.actor, event.outcome, event.groups) == ("olga.outsider", "refused", ["finance"])


@pytest.mark.django_db
def test_a_header_naming_another_user_ends_the_old_session(sso_client):
    client = sso_client("alice", ["dashboard-operators"])
    first = client.get("/")
    assert first.wsgi_request.user.username == "alice"
    alice_session = first.wsgi_request.session.session_key
    second = client.get("/", headers={"X-Forwarded-User": "bob"})
    assert second.status_code == 200
    assert second.wsgi_request.user.username == "bob"
    assert second.wsgi_request.session.session_key != alice_session
    from django.contrib.sessions.models import Session

    assert not Session.objects.filter(session_key=alice_session).exists()


@pytest.mark.django_db
def test_a_missing_header_makes_the_request_anonymous(sso_client):
    client = sso_client("alice", ["dashboard-viewers"])
    assert client.get("/").status_code == 200
    # Same browser session, but the proxy no longer vouches for anyone.
    response = client.get("/", headers={"X-Forwarded-User": "", "X-Forwarded-Groups": ""})
    assert response.status_code == 403
    assert not response.wsgi_request.user.is_authenticated


@pytest.mark.django_db
def test_a_role_removed_in_the_groups_header_is_gone_on_the_next_request(sso_client):
    client = sso_client("otto", ["dashboard-viewers", "dashboard-operators"])
    assert OPERATOR in client.get("/").wsgi_request.roles
    response = client.get("/", headers={"X-Forwarded-Groups": "dashboard-viewers"})
    assert response.status_code == 200
    assert OPERATOR not in response.wsgi_request.roles


@pytest.mark.django_db
def test_losing_every_group_ends_access_at_once(sso_client):
    client = sso_client("otto", ["dashboard-operators"])
    assert client.get("/").status_code == 200
    response = client.get("/", headers={"X-Forwarded-Groups": "finance"})
    assert response.status_code == 403
    assert not response.wsgi_request.user.is_authenticated


@pytest.mark.django_db
def test_a_locally_disabled_account_is_refused(sso_client):
    User.objects.create(username="mallory", is_active=False)
    assert sso_client("mallory", ["dashboard-admins"]).get("/").status_code == 403


@pytest.mark.django_db
def test_healthz_and_static_files_need_no_identity(client):
    assert client.get("/healthz").status_code in {200, 503}
    assert client.get("/static/app.css").status_code == 200
    assert client.get("/").status_code == 403


@pytest.mark.django_db
def test_the_demo_identity_works_on_loopback_with_debug_on(settings):
    settings.DEBUG = True
    settings.DASHBOARD_DEV_USER = "demo"
    settings.DASHBOARD_DEV_GROUPS = ["dashboard-viewers"]
    assert Client(REMOTE_ADDR="127.0.0.1").get("/").status_code == 200


@pytest.mark.django_db
def test_identity_headers_on_loopback_are_not_the_demo_identity(settings):
    settings.DEBUG = True
    settings.DASHBOARD_DEV_USER = "demo"
    settings.TRUSTED_PROXY_CIDRS = [PROXY_CIDR]
    client = Client(REMOTE_ADDR="127.0.0.1", headers={"X-Forwarded-User": "ada.admin"})
    assert client.get("/").status_code == 403


# --- Deploy checks -------------------------------------------------------------------------


def _ids(deploy: bool = True) -> set[str]:
    return {message.id for message in run_checks(include_deployment_checks=deploy)}


def test_the_deploy_check_refuses_an_empty_trusted_list(settings):
    settings.TRUSTED_PROXY_CIDRS = []
    settings.SSO_JWT_HEADER = ""
    assert "dashboard.E001" in _ids()
    settings.TRUSTED_PROXY_CIDRS = ["10.0.0.5/32"]
    assert "dashboard.E001" not in _ids()


def test_the_checks_refuse_a_malformed_or_worldwide_proxy_range(settings):
    settings.TRUSTED_PROXY_CIDRS = ["10.0.0.300/32"]
    assert "dashboard.E003" in _ids(deploy=False)
    settings.TRUSTED_PROXY_CIDRS = ["0.0.0.0/0"]
    assert "dashboard.E004" in _ids(deploy=False)


@pytest.mark.django_db  # the model checks ask the database what it supports
@pytest.mark.parametrize(
    "cidrs",
    [
        ["0.0.0.0/1", "128.0.0.0/1"],  # the whole Internet in two halves
        ["10.0.0.0/7"],
        ["10.0.0.0/8", "172.16.0.0/12"],  # more than a /8 in all
        ["::/1", "8000::/1"],
        ["2000::/3"],
    ],
)
def test_the_checks_refuse_ranges_wider_than_a_private_network(settings, cidrs):
    settings.TRUSTED_PROXY_CIDRS = cidrs
    assert "dashboard.E004" in _ids(deploy=False)


@pytest.mark.django_db  # the model checks ask the database what it supports
@pytest.mark.parametrize(
    "cidrs",
    [
        ["10.0.0.0/8"],
        ["10.0.0.0/8", "10.1.0.0/16"],  # overlapping ranges count once
        ["127.0.0.1/32", "::1/128", "fd00::/16"],
        ["192.168.0.0/16", "172.16.0.0/12"],
    ],
)
def test_the_checks_accept_private_sized_ranges(settings, cidrs):
    settings.TRUSTED_PROXY_CIDRS = cidrs
    assert "dashboard.E004" not in _ids(deploy=False)


def test_the_checks_warn_about_header_names_gunicorn_drops(settings):
    settings.SSO_USER_HEADER = "X_Forwarded_User"
    assert "dashboard.W001" in _ids(deploy=False)


def test_the_checks_refuse_an_incomplete_jwt_mode(settings):
    settings.SSO_JWT_HEADER = "Cf-Access-Jwt-Assertion"
    settings.SSO_JWT_AUDIENCE = ""
    assert "dashboard.E005" in _ids(deploy=False)


def test_the_checks_refuse_the_demo_identity_in_production(settings):
    settings.DEBUG = False
    settings.DASHBOARD_DEV_USER = "demo"
    assert "dashboard.E002" in _ids()


# --- Signed-assertion (JWT) mode -----------------------------------------------------------

ISSUER = "https://team.cloudflareaccess.test"
AUDIENCE = "dashboard-aud-tag"
JWT_HEADER = "Cf-Access-Jwt-Assertion"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def proxy_key() -> rsa.RSAPrivateKey:
    return _key()


@pytest.fixture
def jwt_mode(settings, tmp_path, proxy_key):
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(proxy_key.public_key()))
    jwk.update(kid="proxy-1", use="sig", alg="RS256")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    settings.SSO_JWT_HEADER = JWT_HEADER
    settings.SSO_JWT_JWKS_FILE = str(jwks)
    settings.SSO_JWT_JWKS_URL = "http://127.0.0.1:9/never-fetched"
    settings.SSO_JWT_ISSUER = ISSUER
    settings.SSO_JWT_AUDIENCE = AUDIENCE
    settings.SSO_JWT_GROUPS_CLAIM = "groups"
    settings.TRUSTED_PROXY_CIDRS = [PROXY_CIDR]
    return settings


def _token(key, *, kid="proxy-1", alg="RS256", **overrides) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": [AUDIENCE],
        "sub": "0f1e2d",
        "email": "jo@corp.example",
        "groups": ["dashboard-operators"],
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def _with(token: str, **headers) -> Client:
    return Client(REMOTE_ADDR=PROXY_ADDR, headers={JWT_HEADER: token, **headers})


@pytest.mark.django_db
def test_a_valid_assertion_signs_a_person_in(jwt_mode, proxy_key):
    response = _with(_token(proxy_key)).get("/")
    assert response.status_code == 200
    assert response.wsgi_request.user.username == "jo@corp.example"
    assert OPERATOR in response.wsgi_request.roles


@pytest.mark.django_db
def test_the_groups_claim_may_be_a_comma_separated_string(jwt_mode, proxy_key):
    token = _token(proxy_key, groups="finance, dashboard-viewers")
    assert _with(token).get("/").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    "case",
    ["forged", "expired", "wrong-audience", "wrong-issuer", "unknown-kid", "garbage"],
)
def test_it_refuses_a_bad_assertion(jwt_mode, proxy_key, caplog, case):
    tokens = {
        "forged": lambda: _token(_key()),  # same kid, another key
        "expired": lambda: _token(proxy_key, iat=1000, nbf=1000, exp=2000),
        "wrong-audience": lambda: _token(proxy_key, aud="someone-else"),
        "wrong-issuer": lambda: _token(proxy_key, iss="https://evil.test"),
        "unknown-kid": lambda: _token(proxy_key, kid="proxy-2"),
        "garbage": lambda: "not.a.jwt",
    }
    response = _with(tokens[case]()).get("/")
    assert response.status_code == 403
    assert not User.objects.exists()
    assert len(_sso_lines(caplog)) == 1
    assert AuditEvent.objects.get().details["reason"] == "invalid signed assertion"


@pytest.mark.django_db
def test_it_refuses_an_unsigned_assertion(jwt_mode):
    token = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "email": "jo@corp.example", "exp": 9999999999},
        key=None,
        algorithm="none",
        headers={"kid": "proxy-1"},
    )
    assert _with(token).get("/").status_code == 403


@pytest.mark.django_db
def test_it_refuses_an_assertion_signed_with_the_public_key_as_a_shared_secret(jwt_mode, proxy_key):
    # The classic algorithm-confusion attack: HS256 keyed with the (public) key's PEM. PyJWT
    # will not even build such a token, so it is assembled by hand.
    public_pem = proxy_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    header = {"alg": "HS256", "typ": "JWT", "kid": "proxy-1"}
    claims = {"iss": ISSUER, "aud": AUDIENCE, "email": "x@y", "iat": now, "exp": now + 60}
    signing_input = b".".join(
        base64url_encode(json.dumps(part).encode()) for part in (header, claims)
    )
    signature = base64url_encode(hmac.new(public_pem, signing_input, hashlib.sha256).digest())
    token = (signing_input + b"." + signature).decode()
    assert _with(token).get("/").status_code == 403


@pytest.mark.django_db
def test_plain_identity_headers_are_refused_in_assertion_mode(jwt_mode, proxy_key):
    # Even from the trusted proxy, and even alongside a valid assertion.
    response = _with(
        _token(proxy_key),
        **{"X-Forwarded-User": "ada.admin", "X-Forwarded-Groups": "dashboard-admins"},
    ).get("/")
    assert response.status_code == 403
    assert not User.objects.exists()


@pytest.mark.django_db
def test_an_assertion_from_outside_the_trusted_range_is_refused(jwt_mode, proxy_key):
    client = Client(REMOTE_ADDR="203.0.113.66", headers={JWT_HEADER: _token(proxy_key)})
    assert client.get("/").status_code == 403


@pytest.mark.django_db
def test_no_assertion_means_anonymous(jwt_mode):
    assert Client(REMOTE_ADDR=PROXY_ADDR).get("/").status_code == 403
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_the_client_address_is_the_right_most_untrusted_hop(sso_client):
    client = sso_client("vera", ["dashboard-viewers"], client_ip=f"6.6.6.6, {CLIENT_ADDR}")
    client.get("/audit/export.csv")
    assert AuditEvent.objects.get(action="audit.export").client_ip == CLIENT_ADDR


@pytest.mark.django_db
def test_a_flood_of_spoofed_headers_is_refused_every_time_but_audited_once(client, settings):
    settings.TRUSTED_PROXY_CIDRS = ["10.0.0.0/8"]
    # The claimed name is the caller's choice: changing it must not buy another row.
    for n in range(30):
        response = client.get("/", HTTP_X_FORWARDED_USER=f"mallory{n}", REMOTE_ADDR="203.0.113.7")
        assert response.status_code == 403
    event = AuditEvent.objects.get(action="sso.refused")
    assert event.details["code"] == "sso.untrusted_peer"
    assert event.details["claimed_user"] == "mallory0"
    # Another address is another source.
    client.get("/", HTTP_X_FORWARDED_USER="eve", REMOTE_ADDR="203.0.113.8")
    assert AuditEvent.objects.filter(action="sso.refused").count() == 2
