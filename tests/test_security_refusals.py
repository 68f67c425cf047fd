"""Refusals: rationed audit rows, repeated identity headers, odd JWT claims, reason codes."""

import datetime
import threading

import pytest
from django.db import connection
from django.test import Client
from gunicorn.config import Config
from gunicorn.http.message import Request
from gunicorn.http.unreader import IterUnreader
from gunicorn.http.wsgi import create as gunicorn_environ

from dashboard import audit
from dashboard.gunicorn_conf import pre_request
from dashboard.models import AuditEvent, RefusalWindow
from tests.conftest import PROXY_ADDR, PROXY_CIDR, VIEWER_GROUPS
from tests.test_sso import JWT_HEADER, _token, _with, jwt_mode, proxy_key  # noqa: F401

OPERATOR_ONLY = "/inventory/sync/"  # a POST a viewer is refused


def _refused(action: str = "access.denied") -> int:
    return AuditEvent.objects.filter(action=action, outcome="refused").count()


# --- Rationed refusal rows ------------------------------------------------------------------


@pytest.mark.django_db
def test_thirty_refusals_from_one_peer_write_a_bounded_number_of_rows(client, settings, one_minute):
    settings.TRUSTED_PROXY_CIDRS = [PROXY_CIDR]
    reasons = [
        {"HTTP_X_FORWARDED_USER": "a"},
        {"HTTP_X_FORWARDED_GROUPS": "dashboard-admins"},
        {"HTTP_X_FORWARDED_EMAIL": "x@y"},
    ]
    for n in range(30):
        headers = {**reasons[n % 3], "HTTP_X_FORWARDED_USER": f"name-{n}"}
        assert client.get("/", REMOTE_ADDR="203.0.113.9", **headers).status_code == 403
    # Every one is the same refusal (an identity from an untrusted peer): one row a minute.
    assert _refused("sso.refused") == 1


@pytest.mark.django_db
def test_a_signed_in_user_cannot_flood_the_trail_with_access_denied(
    viewer_client, settings, one_minute
):
    settings.AUDIT_REFUSALS_PER_MINUTE = 5
    for _ in range(30):
        assert viewer_client.post(OPERATOR_ONLY).status_code == 403
    assert _refused() == 5
    window = RefusalWindow.objects.get(source="198.51.100.23")
    assert (window.recorded, window.suppressed) == (5, 25)


@pytest.mark.django_db
def test_refusals_a_view_records_itself_share_the_ration(sso_client, settings, one_minute):
    """An approver asking again and again to approve a rollout that is already running: each
    is refused (said on the page it goes back to); the refusal rows stop at the ration."""
    from tests.api_helpers import running_rollout

    settings.AUDIT_REFUSALS_PER_MINUTE = 4
    rollout = running_rollout()
    approver = sso_client("april", ["dashboard-approvers"])
    for _ in range(12):
        assert approver.post(f"/rollouts/{rollout.pk}/approve/").status_code == 302
    assert AuditEvent.objects.filter(action="rollout.approve", outcome="refused").count() == 4
    window = RefusalWindow.objects.get()
    assert (window.recorded, window.suppressed) == (4, 8)


@pytest.mark.django_db
def test_audit_exports_are_rationed_before_they_run(viewer_client, settings, one_minute):
    settings.AUDIT_REFUSALS_PER_MINUTE = 3
    answers = [viewer_client.get("/audit/export.csv", {"since": f"2099-01-0{n + 1}"})
               for n in range(6)]  # fmt: skip

    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429, 429]
    assert answers[-1]["Retry-After"] == "60"
    assert "try again in a minute" in answers[-1].content.decode()
    assert AuditEvent.objects.filter(action="audit.export").count() == 3


@pytest.mark.django_db
def test_sign_outs_in_a_loop_stop_at_the_ration(viewer_client, settings, one_minute):
    settings.AUDIT_REFUSALS_PER_MINUTE = 3
    for _ in range(10):  # behind SSO the next request is signed in again
        assert viewer_client.post("/sign-out/").status_code == 302
    assert AuditEvent.objects.filter(action="session.sign_out").count() == 3


@pytest.mark.django_db
def test_refresh_pressed_again_and_again_joins_one_sync_and_rows_stop(
    operator_client, settings, one_minute
):
    settings.AUDIT_REFUSALS_PER_MINUTE = 2
    for _ in range(8):
        assert operator_client.post("/inventory/sync/", {"project": "default"}).status_code == 302
    rows = AuditEvent.objects.filter(action="sync.request")
    # The one that started the sync, then joins only within the ration.
    assert rows.count() == 3
    assert [r.details["joined"] for r in rows.order_by("pk")] == [False, True, True]


@pytest.mark.django_db
def test_csrf_refusals_share_the_same_ration(sso_client, settings, one_minute):
    settings.AUDIT_REFUSALS_PER_MINUTE = 3
    client = sso_client("otto", ["dashboard-operators"], enforce_csrf_checks=True)
    for _ in range(10):
        response = client.post(OPERATOR_ONLY)
        assert response.status_code == 403
    assert _refused("csrf.refused") == 3
    assert response.wsgi_request.refusal_code == "csrf.failed"


@pytest.mark.django_db
def test_a_finished_minute_with_suppressed_refusals_is_summarized_once(viewer_client, settings):
    settings.AUDIT_REFUSALS_PER_MINUTE = 2
    for _ in range(7):
        viewer_client.post(OPERATOR_ONLY)
    assert not AuditEvent.objects.filter(action=audit.SUPPRESSED).exists()
    # The minute ends (the counter is moved back, as the clock would).
    RefusalWindow.objects.update(
        window_start=datetime.datetime(2026, 1, 1, 9, 0, tzinfo=datetime.UTC)
    )
    viewer_client.post(OPERATOR_ONLY)
    viewer_client.post(OPERATOR_ONLY)
    summary = AuditEvent.objects.get(action=audit.SUPPRESSED)
    assert summary.details["suppressed"] == 5
    assert summary.details["source"] == "198.51.100.23"
    assert summary.details["minute"].startswith("2026-01-01T09:00:00")
    assert _refused() == 4  # two in each minute


@pytest.mark.django_db
def test_an_ipv6_client_counts_as_its_whole_slash_64(settings, one_minute):
    settings.TRUSTED_PROXY_CIDRS = [PROXY_CIDR]
    for n in range(10):
        Client(REMOTE_ADDR=f"2001:db8:1:2::{n + 1}", HTTP_X_FORWARDED_USER="m").get("/")
    assert _refused("sso.refused") == 1
    assert RefusalWindow.objects.filter(source="2001:db8:1:2::/64").exists()


@pytest.mark.django_db(transaction=True)
def test_the_ration_holds_across_processes(settings, one_minute):
    """Two web processes (threads with their own database connections) refusing at once."""
    settings.TRUSTED_PROXY_CIDRS = [PROXY_CIDR]
    settings.AUDIT_REFUSALS_PER_MINUTE = 4
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def process(name: str) -> None:
        try:
            client = Client(
                REMOTE_ADDR=PROXY_ADDR,
                headers={
                    "X-Forwarded-User": f"{name}.viewer",
                    "X-Forwarded-Groups": ",".join(VIEWER_GROUPS),
                    "X-Forwarded-For": "198.51.100.77",
                },
            )
            start.wait()
            for _ in range(15):
                assert client.post(OPERATOR_ONLY).status_code == 403
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=process, args=(n,)) for n in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert _refused() == 4
    window = RefusalWindow.objects.get(source="198.51.100.77")
    assert window.recorded + window.suppressed == 30


# --- Reason codes -------------------------------------------------------------------------


@pytest.mark.django_db
def test_refusals_carry_a_stable_reason_code_in_the_audit_and_on_the_page(
    client, settings, viewer_client, outsider_client
):
    settings.TRUSTED_PROXY_CIDRS = [PROXY_CIDR]
    spoofed = client.get("/", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_USER="ada")
    assert b"sso.untrusted_peer" in spoofed.content
    denied = viewer_client.post(OPERATOR_ONLY)
    assert b"role.missing" in denied.content
    outsider = outsider_client.get("/")
    assert b"sso.no_role" in outsider.content
    anonymous = Client().get("/")
    assert b"sso.no_identity" in anonymous.content
    codes = {(event.action, event.details["code"]) for event in AuditEvent.objects.all()}
    assert codes == {
        ("sso.refused", "sso.untrusted_peer"),
        ("access.denied", "role.missing"),
        ("sso.refused", "sso.no_role"),
    }


@pytest.mark.django_db
def test_the_csrf_page_names_its_code(sso_client):
    client = sso_client("otto", ["dashboard-operators"], enforce_csrf_checks=True)
    response = client.post(OPERATOR_ONLY)
    assert b"csrf.failed" in response.content
    assert AuditEvent.objects.get(action="csrf.refused").details["code"] == "csrf.failed"


# --- Repeated identity headers ------------------------------------------------------------


def _through_gunicorn(raw_headers: list[tuple[str, str]]) -> dict:
    """The environ gunicorn builds for these headers, with the dashboard's pre_request hook."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in raw_headers)
    raw = f"GET / HTTP/1.1\r\nHost: testserver\r\n{lines}\r\n".encode()
    cfg = Config()
    request = Request(cfg, IterUnreader([raw]), (PROXY_ADDR, 40000))
    pre_request(None, request)

    class Socket:
        def send(self, data):
            pass

    _response, environ = gunicorn_environ(
        request, Socket(), (PROXY_ADDR, 40000), ("127.0.0.1", 8000), cfg
    )
    return {key: value for key, value in environ.items() if key.startswith("HTTP_")}


@pytest.mark.django_db
def test_two_user_headers_merged_by_the_server_are_refused(sso_client):
    client = sso_client("alice", VIEWER_GROUPS)
    response = client.get("/", headers={"X-Forwarded-User": "alice,bob"})
    assert response.status_code == 403
    event = AuditEvent.objects.get(action="sso.refused")
    assert event.details["code"] == "sso.duplicate_header"


@pytest.mark.django_db
def test_a_repeated_email_header_is_refused(sso_client):
    client = sso_client("alice", VIEWER_GROUPS)
    assert client.get("/", headers={"X-Forwarded-Email": "a@x.org,b@x.org"}).status_code == 403


@pytest.mark.django_db
def test_two_groups_headers_through_gunicorn_do_not_make_an_admin(settings):
    settings.TRUSTED_PROXY_CIDRS = [PROXY_CIDR]
    environ = _through_gunicorn(
        [
            ("X-Forwarded-User", "mallory"),
            ("X-Forwarded-Groups", "dashboard-viewers"),
            ("X-Forwarded-Groups", "dashboard-admins"),
        ]
    )
    # gunicorn joins them into what looks like one list; the hook's marker gives it away.
    assert environ["HTTP_X_FORWARDED_GROUPS"] == "dashboard-viewers,dashboard-admins"
    response = Client(REMOTE_ADDR=PROXY_ADDR, **environ).get("/")
    assert response.status_code == 403
    assert AuditEvent.objects.get().details["code"] == "sso.duplicate_header"


@pytest.mark.django_db
def test_one_groups_header_with_several_groups_still_signs_in(settings):
    settings.TRUSTED_PROXY_CIDRS = [PROXY_CIDR]
    environ = _through_gunicorn(
        [
            ("X-Forwarded-User", "ada"),
            ("X-Forwarded-Groups", "finance,dashboard-admins"),
            ("Accept", "text/html"),
            ("Accept", "*/*"),  # other headers may repeat
        ]
    )
    response = Client(REMOTE_ADDR=PROXY_ADDR, **environ).get("/")
    assert response.status_code == 200
    assert "admin" in response.wsgi_request.roles


@pytest.mark.django_db
def test_a_client_sending_the_marker_itself_only_refuses_itself(sso_client):
    client = sso_client("alice", VIEWER_GROUPS)
    response = client.get("/", headers={"X-Dashboard-Repeated-Headers": "X-FORWARDED-USER"})
    assert response.status_code == 403


@pytest.mark.django_db
def test_a_repeated_assertion_header_is_refused(jwt_mode, proxy_key):  # noqa: F811
    token = _token(proxy_key)
    assert _with(f"{token},{token}").get("/").status_code == 403
    assert AuditEvent.objects.get().details["code"] == "sso.duplicate_header"


# --- The user claim must be a string --------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("claim", [["a", "b"], {"name": "a"}, 42, True])
def test_a_user_claim_that_is_not_a_string_is_refused(jwt_mode, proxy_key, claim):  # noqa: F811
    response = _with(_token(proxy_key, email=claim)).get("/")
    assert response.status_code == 403
    assert AuditEvent.objects.get().details["code"] == "sso.bad_user_claim"
    assert b"sso.bad_user_claim" in response.content


@pytest.mark.django_db
def test_a_user_claim_with_a_comma_is_refused(jwt_mode, proxy_key):  # noqa: F811
    assert _with(_token(proxy_key, email="a@x.org,b@x.org")).get("/").status_code == 403
    assert AuditEvent.objects.get().details["code"] == "sso.malformed_user"


@pytest.mark.django_db
@pytest.mark.parametrize("groups", [42, {"dashboard-admins": True}, [["dashboard-admins"]], [1]])
def test_a_groups_claim_of_another_shape_is_refused(jwt_mode, proxy_key, groups):  # noqa: F811
    response = _with(_token(proxy_key, groups=groups)).get("/")
    assert response.status_code == 403
    assert AuditEvent.objects.get().details["code"] == "sso.bad_groups_claim"


# --- A refusal in the log ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_role_refusal_is_one_line_in_the_log_not_a_traceback(viewer_client, caplog, log_output):
    with caplog.at_level("INFO"):
        response = viewer_client.post(OPERATOR_ONLY)

    assert response.status_code == 403
    forbidden = [r for r in caplog.records if r.name == "django.request"]
    assert [(r.levelname, r.getMessage()) for r in forbidden] == [
        ("WARNING", f"Forbidden (Permission denied): {OPERATOR_ONLY}")
    ]
    assert all(r.exc_info is None and not r.exc_text for r in forbidden)
    assert any("outcome=refused" in r.getMessage() for r in caplog.records)  # the audit's line
    written = log_output.getvalue()
    assert "Traceback" not in written and "PermissionDenied" not in written
    assert len([line for line in written.splitlines() if OPERATOR_ONLY in line]) <= 2
