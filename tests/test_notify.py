"""Rollout notifications: webhook and e-mail, delivered against receivers on loopback."""

import base64
import email
import hashlib
import hmac
import json
import logging
import runpy
import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import transaction
from django_tasks_db.models import DBTaskResult

from dashboard import notify
from dashboard.logscrub import scrub
from dashboard.models import AuditEvent, Rollout, RolloutServer

WEBHOOK_SECRET = "whsec-test-6f1d2c"
BASE_URL = "https://dash.example.org"

# --- Local receivers ------------------------------------------------------------------


@dataclass
class WebhookReceiver:
    url: str
    statuses: list[int]  # answers to give, in order; 200 once they run out
    requests: list[dict] = field(default_factory=list)


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(url="", statuses=[])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            receiver.requests.append(
                {"method": "POST", "path": self.path, "headers": dict(self.headers), "body": body}
            )
            status = receiver.statuses.pop(0) if receiver.statuses else 200
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", f"{receiver.url}/elsewhere")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def do_GET(self):
            receiver.requests.append({"method": "GET", "path": self.path})
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class SmtpReceiver:
    port: int
    messages: list[dict] = field(default_factory=list)


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: greeting, EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        sender, recipients = "", []
        self.reply("220 127.0.0.1 test SMTP ready")
        while line := self.rfile.readline():
            command = line.decode().rstrip("\r\n")
            verb = command[:4].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250 127.0.0.1")
            elif verb == "MAIL":
                sender, recipients = command.split(":", 1)[1].strip(), []
                self.reply("250 OK")
            elif verb == "RCPT":
                recipients.append(command.split(":", 1)[1].strip().strip("<>"))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                data = []
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                self.server.received.append(
                    {"from": sender, "to": recipients, "data": b"".join(data)}
                )
                self.reply("250 OK queued")
            elif verb in ("RSET", "NOOP"):
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 Bye")
                return
            else:
                self.reply("502 Command not implemented")


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpHandler)
    server.daemon_threads = True
    server.received = []
    receiver = SmtpReceiver(port=server.server_address[1], messages=server.received)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- Fixtures -------------------------------------------------------------------------


@pytest.fixture
def quiet(settings):
    """No channel configured, every event wanted, a fixed base URL."""
    settings.DASHBOARD_BASE_URL = BASE_URL + "/"  # a trailing slash must not double up
    settings.NOTIFY_WEBHOOK_URL = ""
    settings.NOTIFY_WEBHOOK_SECRET = ""
    settings.NOTIFY_EMAILS = []
    settings.NOTIFY_EVENTS = list(notify.EVENTS)
    return settings


@pytest.fixture
def hooked(quiet, webhook):
    quiet.NOTIFY_WEBHOOK_URL = f"{webhook.url}/hooks/rollouts"
    quiet.NOTIFY_WEBHOOK_SECRET = WEBHOOK_SECRET
    return quiet


STARTED = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
FINISHED = datetime(2026, 3, 2, 10, 5, tzinfo=UTC)


def make_rollout(**overrides) -> Rollout:
    fields = {
        "state": Rollout.State.FAILED,
        "created_by": "otto.operator",
        "reason": "March patch level",
        "target_image_id": "img-0f3a",
        "target_image_name": "WinSrv2022-apps-2026-03",
        "started_at": STARTED,
        "finished_at": FINISHED,
    }
    rollout = Rollout.objects.create(**(fields | overrides))
    states = ["succeeded"] * 3 + ["failed"] * 2 + ["skipped"]
    for n, state in enumerate(states):
        RolloutServer.objects.create(
            rollout=rollout,
            server_id=f"srv-{rollout.pk}-{n}",
            server_name=f"app-{n:02d}",
            to_image_id="img-0f3a",
            verdict="change" if state != "skipped" else "skip",
            state=state,
        )
    return rollout


@pytest.fixture
def rollout(db) -> Rollout:
    return make_rollout()


class Sleeps(list):
    """Records the waits `deliver` asks for instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def audit_events(rollout: Rollout) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(rollout=rollout, action__startswith="notify."))


# --- Webhook --------------------------------------------------------------------------


def test_the_webhook_gets_signed_json_describing_the_rollout(hooked, webhook, rollout):
    sleeps = Sleeps()

    result = notify.deliver("failed", rollout.pk, sleep=sleeps)

    assert result["webhook"] == "ok" and result["outcome"] == "ok"
    assert result["email"] == "skipped"
    assert sleeps == []
    [request] = webhook.requests
    assert request["path"] == "/hooks/rollouts"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["X-Dashboard-Event"] == "failed"
    body = request["body"]
    expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert request["headers"]["X-Dashboard-Signature"] == expected
    wrong = "sha256=" + hmac.new(b"another-secret", body, hashlib.sha256).hexdigest()
    assert request["headers"]["X-Dashboard-Signature"] != wrong

    payload = json.loads(body)
    assert payload["event"] == "failed"
    assert payload["rollout_id"] == rollout.pk
    assert payload["url"] == f"{BASE_URL}/rollouts/{rollout.pk}/"
    assert payload["state"] == "failed"
    assert payload["created_by"] == "otto.operator"
    assert payload["reason"] == "March patch level"
    assert payload["target_image"] == {"id": "img-0f3a", "name": "WinSrv2022-apps-2026-03"}
    assert payload["counts"]["succeeded"] == 3
    assert payload["counts"]["failed"] == 2
    assert payload["counts"]["skipped"] == 1
    assert payload["counts"]["running"] == 0
    assert set(payload["counts"]) == set(RolloutServer.State.values)
    assert payload["total"] == 6
    assert datetime.fromisoformat(payload["started_at"]) == STARTED
    assert datetime.fromisoformat(payload["finished_at"]) == FINISHED
    assert request["headers"]["X-Dashboard-Delivery"] == payload["delivery_id"]
    assert WEBHOOK_SECRET.encode() not in body
    assert django_settings.SECRET_KEY.encode() not in body

    [event] = audit_events(rollout)
    assert event.action == "notify.failed"
    assert event.outcome == "ok"
    assert event.actor == "otto.operator"
    assert event.details["webhook"]["attempts"] == 1
    assert event.details["webhook"]["status"] == 200
    assert event.details["delivery_id"] == payload["delivery_id"]
    # The URL's path may be its credential: the audit trail keeps the host only.
    assert "/hooks/rollouts" not in json.dumps(event.details)


def test_without_a_secret_no_signature_header_is_sent(hooked, webhook, rollout):
    hooked.NOTIFY_WEBHOOK_SECRET = ""

    assert notify.deliver("started", rollout.pk, sleep=Sleeps())["webhook"] == "ok"

    [request] = webhook.requests
    assert "X-Dashboard-Signature" not in request["headers"]
    assert json.loads(request["body"])["event"] == "started"


def test_a_500_then_200_is_retried_once_with_the_same_body(hooked, webhook, rollout):
    webhook.statuses = [500, 200]
    sleeps = Sleeps()

    result = notify.deliver("halted", rollout.pk, sleep=sleeps)

    assert result["webhook"] == "ok"
    assert len(webhook.requests) == 2
    assert webhook.requests[0]["body"] == webhook.requests[1]["body"]
    sigs = {r["headers"]["X-Dashboard-Signature"] for r in webhook.requests}
    assert len(sigs) == 1
    assert sleeps == [notify.RETRY_DELAYS[0]]
    [event] = audit_events(rollout)
    assert (event.outcome, event.details["webhook"]["attempts"]) == ("ok", 2)


def test_a_webhook_that_keeps_failing_gets_a_bounded_number_of_attempts(hooked, webhook, rollout):
    webhook.statuses = [503] * 10
    sleeps = Sleeps()

    result = notify.deliver("halted", rollout.pk, sleep=sleeps)

    assert result["webhook"] == "error" and result["outcome"] == "error"
    assert len(webhook.requests) == notify.WEBHOOK_ATTEMPTS
    assert len(sleeps) == notify.WEBHOOK_ATTEMPTS - 1
    [event] = audit_events(rollout)
    assert event.outcome == "error"
    assert event.details["webhook"]["status"] == 503
    assert event.details["webhook"]["error"] == "HTTP 503"


@pytest.mark.parametrize("status", [400, 404, 302])
def test_a_4xx_or_a_redirect_is_final_and_never_followed(hooked, webhook, rollout, status):
    webhook.statuses = [status]
    sleeps = Sleeps()

    result = notify.deliver("completed", rollout.pk, sleep=sleeps)

    assert result["webhook"] == "error"
    assert [r["method"] for r in webhook.requests] == ["POST"]  # no retry, no redirected GET
    assert sleeps == []
    [event] = audit_events(rollout)
    assert event.details["webhook"]["status"] == status


def test_an_unreachable_webhook_is_an_audited_error_not_an_exception(quiet, rollout, caplog):
    token_path = "/services/T0/B0/very-secret-path-token"
    quiet.NOTIFY_WEBHOOK_URL = f"http://127.0.0.1:{closed_port()}{token_path}"
    quiet.NOTIFY_WEBHOOK_SECRET = WEBHOOK_SECRET
    sleeps = Sleeps()

    with caplog.at_level(logging.INFO, logger="dashboard.notify"):
        result = notify.deliver("failed", rollout.pk, sleep=sleeps)

    assert result["webhook"] == "error" and result["outcome"] == "error"
    assert len(sleeps) == notify.WEBHOOK_ATTEMPTS - 1  # connection errors are retried
    [event] = audit_events(rollout)
    assert event.action == "notify.failed"
    assert event.outcome == "error"
    assert event.actor == "otto.operator"
    assert event.details["webhook"]["attempts"] == notify.WEBHOOK_ATTEMPTS
    assert event.details["webhook"]["status"] is None
    assert "refused" in event.details["webhook"]["error"].lower()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("webhook failed" in message for message in warnings)
    everything = caplog.text + json.dumps(event.details)
    assert "very-secret-path-token" not in everything
    assert WEBHOOK_SECRET not in everything


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1/", "http:///nohost"]
)
def test_only_http_and_https_webhook_urls_are_used(quiet, rollout, url):
    quiet.NOTIFY_WEBHOOK_URL = url

    result = notify.deliver("started", rollout.pk, sleep=Sleeps())

    assert result["webhook"] == "error"
    [event] = audit_events(rollout)
    assert event.details["webhook"]["attempts"] == 0
    assert "http" in event.details["webhook"]["error"]


def test_a_missing_rollout_sends_nothing_and_does_not_raise(hooked, webhook, db):
    result = notify.deliver("started", 987654, sleep=Sleeps())

    assert result["skipped"] == "no such rollout"
    assert webhook.requests == []
    assert not AuditEvent.objects.filter(action__startswith="notify.").exists()


# --- E-mail ---------------------------------------------------------------------------


SMTP = "django.core.mail.backends.smtp.EmailBackend"


@pytest.fixture
def mailing(quiet, smtp):
    quiet.MAILERS = {
        "default": {
            "BACKEND": SMTP,
            "OPTIONS": {"host": "127.0.0.1", "port": smtp.port, "timeout": 5},
        }
    }
    quiet.DEFAULT_FROM_EMAIL = "dashboard@example.org"
    quiet.NOTIFY_EMAILS = ["ops@example.org", "lead@example.org"]
    return quiet


def test_the_email_reaches_an_smtp_server_with_the_permalink(mailing, smtp, rollout):
    result = notify.deliver("failed", rollout.pk, sleep=Sleeps())

    assert result["email"] == "ok" and result["webhook"] == "skipped"
    [received] = smtp.messages
    assert received["to"] == ["ops@example.org", "lead@example.org"]
    assert "dashboard@example.org" in received["from"]
    message = email.message_from_bytes(received["data"])
    assert message.get_content_type() == "text/plain"
    assert message["Subject"] == (
        f"Rollout #{rollout.pk} finished with failures (WinSrv2022-apps-2026-03)"
    )
    body = message.get_payload(decode=True).decode()
    assert f"{BASE_URL}/rollouts/{rollout.pk}/" in body
    assert "otto.operator" in body
    assert "succeeded 3, failed 2, skipped 1" in body
    [event] = audit_events(rollout)
    assert (event.outcome, event.details["email"]["recipients"]) == ("ok", 2)


def test_a_newline_in_a_cloud_image_name_cannot_inject_a_mail_header(mailing, smtp, db):
    rollout = make_rollout(target_image_name="evil\r\nBcc: victim@example.org")

    assert notify.deliver("completed", rollout.pk, sleep=Sleeps())["email"] == "ok"

    [received] = smtp.messages
    assert received["to"] == ["ops@example.org", "lead@example.org"]
    assert email.message_from_bytes(received["data"])["Bcc"] is None


def test_an_unreachable_mail_server_is_an_error_but_the_webhook_still_goes(
    mailing, webhook, rollout
):
    mailing.MAILERS = {
        "default": {"BACKEND": SMTP, "OPTIONS": {"host": "127.0.0.1", "port": closed_port()}}
    }
    mailing.NOTIFY_WEBHOOK_URL = f"{webhook.url}/hook"

    result = notify.deliver("cancelled", rollout.pk, sleep=Sleeps())

    assert (result["webhook"], result["email"], result["outcome"]) == ("ok", "error", "error")
    assert len(webhook.requests) == 1
    [event] = audit_events(rollout)
    assert event.action == "notify.cancelled"
    assert event.outcome == "error"
    assert event.details["email"]["outcome"] == "error"
    assert event.details["webhook"]["outcome"] == "ok"


# --- Filtering and enqueueing -----------------------------------------------------------


def test_notify_events_filters_what_is_sent(hooked, webhook, rollout):
    hooked.NOTIFY_EVENTS = ["failed", "halted"]

    skipped = notify.deliver("started", rollout.pk, sleep=Sleeps())
    sent = notify.deliver("failed", rollout.pk, sleep=Sleeps())

    assert skipped["skipped"] == "event not in NOTIFY_EVENTS"
    assert sent["webhook"] == "ok"
    assert [json.loads(r["body"])["event"] for r in webhook.requests] == ["failed"]
    assert [e.action for e in audit_events(rollout)] == ["notify.failed"]


def test_notify_enqueues_delivery_only_when_the_transaction_commits(
    hooked, rollout, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        notify.notify("halted", rollout.pk)
        assert not DBTaskResult.objects.exists()  # nothing before the commit
    assert len(callbacks) == 1
    assert not DBTaskResult.objects.exists()

    callbacks[0]()

    [task] = DBTaskResult.objects.all()
    assert task.task_path == "dashboard.notify.deliver_notification"
    assert task.args_kwargs["args"] == ["halted", rollout.pk]
    assert task.status == "READY"


def test_a_rolled_back_transition_enqueues_nothing(
    hooked, rollout, django_capture_on_commit_callbacks
):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        notify.notify("started", rollout.pk)
        raise RuntimeError("the transition failed")

    assert callbacks == []
    assert not DBTaskResult.objects.exists()


def test_notify_skips_filtered_events_and_unconfigured_channels(
    quiet, rollout, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        notify.notify("completed", rollout.pk)  # no channel configured
        quiet.NOTIFY_WEBHOOK_URL = "http://127.0.0.1:9/hook"
        quiet.NOTIFY_EVENTS = ["failed"]
        notify.notify("completed", rollout.pk)  # filtered out
        notify.notify("failed", rollout.pk)  # this one goes

    assert len(callbacks) == 1
    [task] = DBTaskResult.objects.all()
    assert task.args_kwargs["args"] == ["failed", rollout.pk]


def test_unknown_events_are_refused(quiet, rollout):
    with pytest.raises(ValueError, match="unknown notification event"):
        notify.notify("finished", rollout.pk)
    with pytest.raises(ValueError, match="unknown notification event"):
        notify.deliver("finished", rollout.pk)


# --- Settings -------------------------------------------------------------------------

SETTINGS_FILE = Path(__file__).resolve().parent.parent / "dashboard" / "settings.py"


def load_settings(monkeypatch, **env: str) -> dict:
    """dashboard/settings.py evaluated afresh with `env` on top of the test environment."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS_FILE))


def test_the_settings_list_of_events_matches_the_module():
    assert tuple(django_settings.NOTIFY_ALL_EVENTS) == notify.EVENTS


def test_notification_settings_default_to_all_events_and_a_local_smtp_mailer(monkeypatch):
    for name in ("NOTIFY_EVENTS", "NOTIFY_WEBHOOK_URL", "NOTIFY_EMAILS", "EMAIL_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    loaded = load_settings(monkeypatch)

    assert loaded["NOTIFY_EVENTS"] == list(notify.EVENTS)
    assert loaded["NOTIFY_WEBHOOK_URL"] == "" and loaded["NOTIFY_EMAILS"] == []
    assert loaded["DASHBOARD_BASE_URL"] == "http://127.0.0.1:8000"
    assert loaded["MAILERS"]["default"]["BACKEND"] == SMTP
    assert "EMAIL_HOST" not in loaded  # deprecated in Django 6.1; MAILERS carries it


def test_email_environment_variables_configure_the_default_mailer(monkeypatch, tmp_path):
    password_file = tmp_path / "smtp-password"
    password_file.write_text("smtp-pass-from-file\n")
    loaded = load_settings(
        monkeypatch,
        EMAIL_HOST="smtp.example.org",
        EMAIL_PORT="587",
        EMAIL_HOST_USER="dashboard",
        EMAIL_HOST_PASSWORD_FILE=str(password_file),
        EMAIL_USE_TLS="1",
        NOTIFY_EMAILS="ops@example.org, lead@example.org",
        NOTIFY_EVENTS="failed,halted",
        DASHBOARD_BASE_URL="https://dash.example.org/",
    )

    assert loaded["MAILERS"]["default"]["OPTIONS"] == {
        "host": "smtp.example.org",
        "port": 587,
        "username": "dashboard",
        "password": "smtp-pass-from-file",
        "use_tls": True,
        "use_ssl": False,
        "timeout": 10.0,
    }
    assert loaded["NOTIFY_EMAILS"] == ["ops@example.org", "lead@example.org"]
    assert loaded["NOTIFY_EVENTS"] == ["failed", "halted"]
    assert loaded["DASHBOARD_BASE_URL"] == "https://dash.example.org"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NOTIFY_EVENTS", "failed,finished"),
        ("NOTIFY_WEBHOOK_URL", "file:///etc/passwd"),
        ("EMAIL_PORT", "smtp"),
    ],
)
def test_bad_notification_settings_stop_start_up(monkeypatch, name, value):
    with pytest.raises(ImproperlyConfigured, match=name):
        load_settings(monkeypatch, **{name: value})


@pytest.mark.django_db(transaction=True)
def test_the_background_worker_delivers_a_notification(hooked, webhook):
    rollout = make_rollout(state=Rollout.State.SUCCEEDED)

    notify.notify("completed", rollout.pk)  # autocommit: enqueued at once
    assert webhook.requests == []  # nothing sent by the caller itself

    call_command("db_worker", batch=True, reload=False, verbosity=0)

    [request] = webhook.requests
    payload = json.loads(request["body"])
    assert (payload["event"], payload["rollout_id"]) == ("completed", rollout.pk)
    [task] = DBTaskResult.objects.all()
    assert task.status == "SUCCESSFUL"
    assert task.return_value["webhook"] == "ok"
    assert [e.outcome for e in audit_events(rollout)] == ["ok"]


# --- Credentials in the webhook URL ------------------------------------------------------------


def test_credentials_in_the_webhook_url_are_sent_as_basic_auth(quiet, webhook, rollout, caplog):
    password = "p@ss:w0rd/secret"  # reserved characters, percent-encoded in the URL
    host = webhook.url.removeprefix("http://")
    quiet.NOTIFY_WEBHOOK_URL = f"http://hook-user:{quote(password, safe='')}@{host}/hooks/r"

    with caplog.at_level(logging.INFO):
        result = notify.deliver("started", rollout.pk, sleep=Sleeps())

    assert result["webhook"] == "ok"
    [request] = webhook.requests
    assert request["path"] == "/hooks/r"
    expected = base64.b64encode(f"hook-user:{password}".encode()).decode()
    assert request["headers"]["Authorization"] == f"Basic {expected}"
    [event] = audit_events(rollout)
    everything = caplog.text + json.dumps(event.details)
    for secret in (password, quote(password, safe=""), expected):
        assert secret not in everything


def test_a_failing_webhook_with_credentials_never_logs_them(quiet, rollout, caplog):
    quiet.NOTIFY_WEBHOOK_URL = f"http://hook-user:Sup3rSecretPw@127.0.0.1:{closed_port()}/h"

    with caplog.at_level(logging.INFO):
        result = notify.deliver("failed", rollout.pk, sleep=Sleeps())

    assert result["webhook"] == "error"
    [event] = audit_events(rollout)
    assert "Sup3rSecretPw" not in caplog.text + json.dumps(event.details)


def test_log_scrubbing_removes_credentials_from_any_url(settings):
    settings.NOTIFY_WEBHOOK_URL = "https://bot:Zq8%2Fpw-webhook@chat.example.org/hook"
    for text in (
        "POST https://bot:Zq8%2Fpw-webhook@chat.example.org/hook failed",
        "connecting to postgres://dash:An0therPassw0rd@db:5432/dash",
        "password part alone: Zq8/pw-webhook",
    ):
        cleaned = scrub(text)
        for secret in ("Zq8%2Fpw-webhook", "Zq8/pw-webhook", "An0therPassw0rd"):
            assert secret not in cleaned, cleaned
    assert scrub("see https://chat.example.org/hook") == "see https://chat.example.org/hook"
