"""Credentials: AK/SK headers, IAM token issue, caching, refresh, one retry after a 401."""

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dashboard.cloud.auth import AkSkAuth, IssuedToken, TokenAuth
from dashboard.cloud.client import CloudClient
from dashboard.cloud.errors import CloudError, Outcome
from dashboard.cloud.signing import verify
from tests.test_cloud_client import (
    AK,
    PROJECT,
    SERVERS,
    SK,
    FakeCloud,
    FakeTime,
    Reply,
    Seen,
    make_client,
)

TOKENS = "/v3/auth/tokens"
PASSWORD = "iam-Password-never-shown-123"
SECURITY_TOKEN = "temporary-security-token-never-shown"
EMPTY = Reply(200, {"count": 0, "items": []})


@pytest.fixture
def fake() -> Iterator[FakeCloud]:
    cloud = FakeCloud()
    yield cloud
    cloud.close()


class Iam:
    """Issues numbered tokens valid for `lifetime` from the wall clock."""

    def __init__(self, lifetime: timedelta = timedelta(hours=24)) -> None:
        self.lifetime = lifetime
        self.issued = 0

    def __call__(self, seen: Seen) -> Reply:
        self.issued += 1
        expires = (datetime.now(UTC) + self.lifetime).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
        body = {"token": {"expires_at": expires, "project": {"id": "proj-from-token"}}}
        return Reply(201, body, {"X-Subject-Token": f"token-{self.issued}"})


def token_client(fake: FakeCloud, **changes: Any) -> CloudClient:
    changes = {"ak": "", "sk": "", "iam_user": "ops", "iam_password": PASSWORD, **changes}
    return make_client(fake.url, FakeTime(), **changes)


# --- AK/SK -------------------------------------------------------------------------------


def test_temporary_keys_send_their_security_token_signed(fake: FakeCloud) -> None:
    fake.on("GET", SERVERS, EMPTY)
    make_client(fake.url, FakeTime(), security_token=SECURITY_TOKEN).list_servers()
    seen = fake.seen(SERVERS)[0]
    assert seen.headers["x-security-token"] == SECURITY_TOKEN
    assert "x-security-token" in seen.headers["authorization"]
    verify(
        seen.method,
        seen.path,
        seen.query,
        seen.headers,
        seen.body,
        lambda ak: SK if ak == AK else None,
        datetime.now(UTC),
    )


def test_a_refused_signature_is_not_retried(fake: FakeCloud) -> None:
    fake.on("GET", SERVERS, Reply(401, {"error_code": "APIGW.0301", "error_msg": "bad sig"}))
    client = make_client(fake.url, FakeTime())
    with pytest.raises(CloudError) as caught:
        client.list_servers()
    assert caught.value.outcome == Outcome.REJECTED
    assert client.calls == 1


def test_keys_are_masked_in_the_repr() -> None:
    auth = AkSkAuth(AK, SK, PROJECT, SECURITY_TOKEN)
    assert SK not in repr(auth)
    assert SECURITY_TOKEN not in repr(auth)
    assert AK not in repr(auth)


def test_incomplete_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        AkSkAuth(AK, "")


# --- IAM token over HTTP -----------------------------------------------------------------


def test_it_asks_iam_for_a_project_scoped_password_token(fake: FakeCloud) -> None:
    fake.route("POST", TOKENS, Iam())
    fake.on("GET", SERVERS, EMPTY)
    token_client(fake, iam_domain="acme").list_servers()
    (issue,) = fake.seen(TOKENS)
    auth = issue.json()["auth"]
    assert auth["identity"]["methods"] == ["password"]
    assert auth["identity"]["password"]["user"] == {
        "name": "ops",
        "password": PASSWORD,
        "domain": {"name": "acme"},
    }
    assert auth["scope"] == {"project": {"id": PROJECT}}
    assert issue.param("nocatalog") == "true"
    assert "authorization" not in issue.headers
    assert fake.seen(SERVERS)[0].headers["x-auth-token"] == "token-1"


def test_one_token_serves_many_calls(fake: FakeCloud) -> None:
    iam = Iam()
    fake.route("POST", TOKENS, iam)
    fake.on("GET", SERVERS, EMPTY)
    client = token_client(fake)
    for _ in range(5):
        client.list_servers()
    assert iam.issued == 1
    assert {r.headers["x-auth-token"] for r in fake.seen(SERVERS)} == {"token-1"}


def test_an_expiring_token_is_replaced_before_use(fake: FakeCloud) -> None:
    iam = Iam(lifetime=timedelta(seconds=-1))  # already expired when it arrives
    fake.route("POST", TOKENS, iam)
    fake.on("GET", SERVERS, EMPTY)
    client = token_client(fake)
    client.list_servers()
    client.list_servers()
    assert iam.issued == 2
    assert [r.headers["x-auth-token"] for r in fake.seen(SERVERS)] == ["token-1", "token-2"]


def test_a_refused_token_is_refreshed_once_and_the_call_retried(fake: FakeCloud) -> None:
    iam = Iam()
    fake.route("POST", TOKENS, iam)
    fake.on("GET", SERVERS, Reply(401, {"error_code": "APIGW.0301", "error_msg": "expired"}), EMPTY)
    client = token_client(fake)
    assert client.list_servers() == []
    assert iam.issued == 2
    assert [r.headers["x-auth-token"] for r in fake.seen(SERVERS)] == ["token-1", "token-2"]


def test_a_second_refusal_is_final(fake: FakeCloud) -> None:
    iam = Iam()
    fake.route("POST", TOKENS, iam)
    fake.on("GET", SERVERS, Reply(401, {"error_code": "APIGW.0301", "error_msg": "no"}))
    client = token_client(fake)
    with pytest.raises(CloudError) as caught:
        client.list_servers()
    assert caught.value.status == 401
    assert caught.value.error_code == "APIGW.0301"
    assert len(fake.seen(SERVERS)) == 2
    assert iam.issued == 2


def test_a_wrong_password_is_a_rejection_in_keystone_words(fake: FakeCloud) -> None:
    fake.on(
        "POST",
        TOKENS,
        Reply(
            401,
            {"error": {"code": 401, "message": "The username or password is wrong.", "title": "x"}},
        ),
    )
    client = token_client(fake)
    with pytest.raises(CloudError) as caught:
        client.list_servers()
    error = caught.value
    assert (error.status, error.error_code, error.outcome) == (401, "401", Outcome.REJECTED)
    assert "username or password" in error.message
    assert PASSWORD not in str(error)
    assert fake.seen(SERVERS) == []
    assert len(fake.seen(TOKENS)) == 1


def test_an_answer_without_a_token_header_is_an_error(fake: FakeCloud) -> None:
    fake.on("POST", TOKENS, Reply(201, {"token": {"expires_at": "2099-01-01T00:00:00Z"}}))
    with pytest.raises(CloudError, match="usable token"):
        token_client(fake).list_servers()


def test_the_project_comes_from_the_token_when_not_configured(fake: FakeCloud) -> None:
    fake.route("POST", TOKENS, Iam())
    fake.on("GET", "/v1/proj-from-token/app-servers", EMPTY)
    token_client(fake, project_id="").list_servers()
    (issue,) = fake.seen(TOKENS)
    assert issue.json()["auth"]["scope"] == {"project": {"name": ""}}
    assert len(fake.seen("/v1/proj-from-token/app-servers")) == 1


def test_concurrent_callers_share_one_token(fake: FakeCloud) -> None:
    iam = Iam()
    fake.route("POST", TOKENS, iam)
    fake.on("GET", SERVERS, EMPTY)
    client = token_client(fake)
    threads = [threading.Thread(target=client.list_servers) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert iam.issued == 1
    assert len(fake.seen(SERVERS)) == 8
    assert client.calls == 9


def test_the_token_and_password_stay_out_of_reprs_and_logs(
    fake: FakeCloud, caplog: pytest.LogCaptureFixture
) -> None:
    fake.route("POST", TOKENS, Iam())
    fake.on("GET", SERVERS, Reply(503), EMPTY)
    client = token_client(fake)
    with caplog.at_level(logging.DEBUG):
        client.list_servers()
    for text in (repr(client), repr(client._auth), caplog.text):
        assert "token-1" not in text
        assert PASSWORD not in text


def test_an_echoed_token_is_scrubbed_from_errors(fake: FakeCloud) -> None:
    fake.route("POST", TOKENS, Iam())
    fake.on("GET", SERVERS, Reply(400, {"error_code": "X", "error_msg": "bad token token-1"}))
    with pytest.raises(CloudError) as caught:
        token_client(fake).list_servers()
    assert "token-1" not in str(caught.value)


# --- token cache timing (the clock injected) ---------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _issuer(clock: Clock, lifetime: timedelta) -> tuple[list[str], Any]:
    issued: list[str] = []

    def issue() -> IssuedToken:
        issued.append(f"t{len(issued) + 1}")
        return IssuedToken(issued[-1], clock.now + lifetime, "p")

    return issued, issue


def test_a_token_is_reused_until_five_minutes_before_expiry() -> None:
    clock = Clock()
    issued, issue = _issuer(clock, timedelta(hours=24))
    auth = TokenAuth(issue, clock=clock)
    assert auth.token() == "t1"
    clock.now += timedelta(hours=23, minutes=54)
    assert auth.token() == "t1"
    clock.now += timedelta(minutes=1)
    assert auth.token() == "t2"
    assert issued == ["t1", "t2"]


def test_a_short_lived_token_is_renewed_halfway() -> None:
    clock = Clock()
    _, issue = _issuer(clock, timedelta(minutes=4))
    auth = TokenAuth(issue, clock=clock)
    auth.token()
    clock.now += timedelta(minutes=1, seconds=59)
    assert auth.token() == "t1"
    clock.now += timedelta(seconds=1)
    assert auth.token() == "t2"


def test_a_refusal_of_an_old_token_keeps_the_new_one() -> None:
    clock = Clock()
    issued, issue = _issuer(clock, timedelta(hours=1))
    auth = TokenAuth(issue, clock=clock)
    auth.token()
    auth.after_unauthorized({"X-Auth-Token": "t1"})
    assert auth.token() == "t2"
    # A late 401 for t1 from another thread must not throw t2 away.
    assert auth.after_unauthorized({"X-Auth-Token": "t1"}) is True
    assert auth.token() == "t2"
    assert issued == ["t1", "t2"]
