"""Rollout notifications: a JSON webhook and an e-mail per rollout event, sent by the worker.

The rollout engine calls `notify(event, rollout_id)` inside its own transaction. Delivery is
enqueued only when that transaction commits (a rolled-back transition notifies nobody); the
worker's `deliver_notification` task then calls `deliver()`, which builds the payload once,
posts it to NOTIFY_WEBHOOK_URL, mails it to NOTIFY_EMAILS and records an audit event
`notify.<event>`. A delivery failure is logged and audited, never raised: a notification must
not break a rollout, and the task must not be retried by hand into a duplicate.

The payload describes the rollout as it is at delivery time (`state`, `counts`), which may be
a little later than the transition that triggered it (`event`). See docs/notifications.md.
"""

import base64
import hashlib
import hmac
import http.client
import json
import logging
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import unquote, urlsplit, urlunsplit

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Count
from django.tasks import task
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from dashboard import audit
from dashboard.logscrub import REDACTED, one_line, scrub
from dashboard.models import Rollout, RolloutServer
from dashboard.wording import word_list

log = logging.getLogger("dashboard.notify")

EVENTS = (
    "started",
    "halted",
    "failed",
    "completed",
    "awaiting_approval",
    "cancelled",
    "signoff_needed",
)

SIGNATURE_HEADER = "X-Dashboard-Signature"
EVENT_HEADER = "X-Dashboard-Event"
DELIVERY_HEADER = "X-Dashboard-Delivery"
# At most this many POSTs per notification; the waits between them come from RETRY_DELAYS.
WEBHOOK_ATTEMPTS = 3
RETRY_DELAYS = (1.0, 3.0)
# Answers worth another attempt; anything else that is not 2xx (a 4xx, or a redirect, which
# is never followed) is final.
_RETRY_STATUSES = frozenset({429, *range(500, 600)})

OK, ERROR, SKIPPED = "ok", "error", "skipped"

# The e-mail is worded in the dashboard's own language (LANGUAGE_CODE): it goes to a team,
# not to one person's browser. The webhook's JSON keeps its stable field names and codes.
_HEADLINES = {
    "started": gettext_lazy("started"),
    "halted": gettext_lazy("halted: the error budget was crossed"),
    "failed": gettext_lazy("finished with failures"),
    "completed": gettext_lazy("completed"),
    "awaiting_approval": gettext_lazy("awaits approval"),
    "cancelled": gettext_lazy("was cancelled"),
    "signoff_needed": gettext_lazy("finished its canary wave and waits for sign-off"),
}


def notify(event: str, rollout_id: int) -> None:
    """Enqueue delivery of `event` for the rollout once the current transaction commits.

    Does nothing when the event is filtered out by NOTIFY_EVENTS or no channel is configured.
    Raises ValueError for an event not in EVENTS (a programming error, caught by tests).
    """
    _check_event(event)
    if event not in settings.NOTIFY_EVENTS or not _channels_configured():
        return
    # robust: an enqueue failure is logged by Django and never breaks the caller's commit.
    transaction.on_commit(partial(_enqueue, event, rollout_id), robust=True)


@task()
def deliver_notification(event: str, rollout_id: int) -> dict:
    """The queued delivery (`notify` enqueues it; `dashboard.tasks` lists it)."""
    return deliver(event, rollout_id)


def _enqueue(event: str, rollout_id: int) -> None:
    deliver_notification.enqueue(event, rollout_id)


def deliver(
    event: str, rollout_id: int, *, sleep: Callable[[float], Any] = time.sleep
) -> dict[str, Any]:
    """Send one notification on every configured channel; return what happened.

    The result is JSON-able: {"event", "rollout_id", "webhook", "email", "outcome"} where each
    channel is "ok", "error" or "skipped", plus "skipped" (why) when nothing was sent. `sleep`
    is the wait between webhook attempts (tests pass a recorder).
    """
    _check_event(event)
    result: dict[str, Any] = {
        "event": event,
        "rollout_id": rollout_id,
        "webhook": SKIPPED,
        "email": SKIPPED,
        "outcome": SKIPPED,
    }
    if event not in settings.NOTIFY_EVENTS:
        result["skipped"] = "event not in NOTIFY_EVENTS"
        return result
    if not _channels_configured():
        result["skipped"] = "no channel configured"
        return result
    rollout = Rollout.objects.filter(pk=rollout_id).first()
    if rollout is None:
        log.warning("notify %s: rollout %s does not exist; nothing sent", event, rollout_id)
        result["skipped"] = "no such rollout"
        return result

    payload = build_payload(event, rollout)
    details: dict[str, Any] = {"delivery_id": payload["delivery_id"]}

    if settings.NOTIFY_WEBHOOK_URL:
        body = encode(payload)
        try:
            hook = post_webhook(
                settings.NOTIFY_WEBHOOK_URL,
                body,
                secret=settings.NOTIFY_WEBHOOK_SECRET,
                timeout=settings.NOTIFY_WEBHOOK_TIMEOUT,
                headers={EVENT_HEADER: event, DELIVERY_HEADER: payload["delivery_id"]},
                sleep=sleep,
            )
        except Exception as exc:  # a bug or an odd URL must not lose the e-mail or the audit
            hook = WebhookResult(ERROR, 0, None, f"{type(exc).__name__}: {exc}")
        hook = hook.safe()
        result["webhook"] = hook.outcome
        details["webhook"] = {
            "outcome": hook.outcome,
            "host": _host_of(settings.NOTIFY_WEBHOOK_URL),
            "attempts": hook.attempts,
            "status": hook.status,
            "error": hook.error,
        }
        if hook.outcome == OK:
            log.info(
                "notify %s rollout=%s webhook ok (HTTP %s, attempt %d)",
                event,
                rollout.pk,
                hook.status,
                hook.attempts,
            )
        else:
            log.warning(
                "notify %s rollout=%s webhook failed after %d attempt(s): %s",
                event,
                rollout.pk,
                hook.attempts,
                hook.error,
            )

    if settings.NOTIFY_EMAILS:
        recipients = list(settings.NOTIFY_EMAILS)
        try:
            send_mail(
                email_subject(payload),
                email_body(payload),
                settings.DEFAULT_FROM_EMAIL,
                recipients,
            )
            mail_error = ""
        except Exception as exc:  # SMTP refusals, connection errors, timeouts, bad addresses
            mail_error = _safe(f"{type(exc).__name__}: {exc}")
        result["email"] = ERROR if mail_error else OK
        details["email"] = {
            "outcome": result["email"],
            "recipients": len(recipients),
            "error": mail_error,
        }
        if mail_error:
            log.warning("notify %s rollout=%s e-mail failed: %s", event, rollout.pk, mail_error)
        else:
            log.info(
                "notify %s rollout=%s e-mail ok (%d recipients)", event, rollout.pk, len(recipients)
            )

    result["outcome"] = ERROR if ERROR in (result["webhook"], result["email"]) else OK
    audit.record(
        None,
        f"notify.{event}",
        outcome=result["outcome"],
        actor=rollout.created_by,
        rollout=rollout,
        target=f"rollout #{rollout.pk}",
        **details,
    )
    return result


# --- Payload ----------------------------------------------------------------------------


def permalink(rollout_id: int) -> str:
    return f"{settings.DASHBOARD_BASE_URL.rstrip('/')}/rollouts/{rollout_id}/"


def build_payload(event: str, rollout: Rollout) -> dict[str, Any]:
    """The notification as a JSON-able dict: facts operators see on the page, nothing secret."""
    counts = dict.fromkeys(RolloutServer.State.values, 0)
    rows = (
        RolloutServer.objects.filter(rollout=rollout)
        .order_by()
        .values_list("state")
        .annotate(n=Count("id"))
    )
    for state, n in rows:
        counts[state] = n
    return {
        "event": event,
        "delivery_id": uuid.uuid4().hex,
        "sent_at": _iso(timezone.now()),
        "rollout_id": rollout.pk,
        "url": permalink(rollout.pk),
        "state": rollout.state,
        "created_by": rollout.created_by,
        "reason": scrub(rollout.reason),
        "target_image": {"id": rollout.target_image_id, "name": rollout.target_image_name},
        "counts": counts,
        "total": sum(counts.values()),
        "started_at": _iso(rollout.started_at),
        "finished_at": _iso(rollout.finished_at),
    }


def encode(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def sign(body: bytes, secret: str) -> str:
    """The X-Dashboard-Signature value for `body`: "sha256=" + hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def email_subject(payload: dict[str, Any]) -> str:
    image = payload["target_image"]["name"] or payload["target_image"]["id"]
    with translation.override(settings.LANGUAGE_CODE):
        subject = _("Rollout #%(id)s %(headline)s (%(image)s)") % {
            "id": payload["rollout_id"],
            "headline": _HEADLINES[payload["event"]],
            "image": image,
        }
    return " ".join(subject.split())[:200]  # one line: no header injection from cloud names


def email_body(payload: dict[str, Any]) -> str:
    with translation.override(settings.LANGUAGE_CODE):
        return _email_body(payload)


def _email_body(payload: dict[str, Any]) -> str:
    # Lower case as in a sentence ("succeeded 3, failed 2"); Chinese has no case to lower.
    labels = {state: str(label).lower() for state, label in RolloutServer.State.choices}
    counts = word_list(f"{labels[state]} {n}" for state, n in payload["counts"].items() if n)
    image = payload["target_image"]
    facts = [
        (
            _("State"),
            str(dict(Rollout.State.choices).get(payload["state"], payload["state"])).lower(),
        ),
        (_("Target image"), f"{image['name']} ({image['id']})"),
        (_("Requested by"), payload["created_by"]),
        (_("Reason"), payload["reason"] or "-"),
        (_("Started"), payload["started_at"] or "-"),
        (_("Finished"), payload["finished_at"] or "-"),
        (_("Servers"), f"{payload['total']} ({counts or _('none')})"),
    ]
    headline = _("Rollout #%(id)s %(headline)s.") % {
        "id": payload["rollout_id"],
        "headline": _HEADLINES[payload["event"]],
    }
    lines = [headline, "", *(f"{label}: {value}" for label, value in facts), "", payload["url"]]
    return "\n".join(one_line(line) for line in lines) + "\n"


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


# --- Webhook ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookResult:
    outcome: str  # "ok" or "error"
    attempts: int  # POSTs made (0: the URL was refused before any)
    status: int | None  # the last HTTP status, None without an answer
    error: str  # empty when ok

    def safe(self) -> "WebhookResult":
        return WebhookResult(self.outcome, self.attempts, self.status, _safe(self.error))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: following it would resend the body (signed) somewhere else."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def post_webhook(
    url: str,
    body: bytes,
    *,
    secret: str = "",
    timeout: float = 5.0,
    headers: dict[str, str] | None = None,
    sleep: Callable[[float], Any] = time.sleep,
) -> WebhookResult:
    """POST `body` as JSON, retrying connection errors, 429 and 5xx at most WEBHOOK_ATTEMPTS
    times. Never raises for a network or HTTP failure; refuses anything but http(s) URLs.

    Credentials in the URL (`https://user:pass@host/…`) are sent as HTTP Basic auth, the way a
    browser or curl would; they never appear in a log line or the audit trail."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return WebhookResult(ERROR, 0, None, "the webhook URL must be http:// or https://")
    url, authorization = _without_credentials(url)
    all_headers = {
        "Content-Type": "application/json",
        "User-Agent": "rollout-dashboard-notify/1",
        **(headers or {}),
    }
    if authorization:
        all_headers["Authorization"] = authorization
    if secret:
        all_headers[SIGNATURE_HEADER] = sign(body, secret)
    opener = urllib.request.build_opener(_NoRedirect)
    status: int | None = None
    error = ""
    attempt = 0
    for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
        if attempt > 1:
            sleep(RETRY_DELAYS[min(attempt - 2, len(RETRY_DELAYS) - 1)])
        # The scheme was checked above: http or https only.
        request = urllib.request.Request(url, data=body, headers=all_headers, method="POST")  # noqa: S310
        try:
            with opener.open(request, timeout=timeout) as response:
                response.read(4096)
                return WebhookResult(OK, attempt, response.status, "")
        except HTTPError as exc:
            status, error = exc.code, f"HTTP {exc.code}"
            exc.close()
            if exc.code not in _RETRY_STATUSES:
                break
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timeout, DNS
            status = None
            reason = exc.reason if isinstance(exc, URLError) else exc
            error = f"{type(exc).__name__}: {reason}"
    return WebhookResult(ERROR, attempt, status, error)


def _without_credentials(url: str) -> tuple[str, str]:
    """The URL without its `user:pass@`, and the Basic Authorization value for them ("" when
    the URL has none). urllib would otherwise take "user:pass@host" for a host and a port."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, ""
    host = parts.netloc.rpartition("@")[2]
    credentials = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    token = base64.b64encode(credentials.encode()).decode("ascii")
    return urlunsplit(parts._replace(netloc=host)), f"Basic {token}"


# --- Helpers ----------------------------------------------------------------------------


def _check_event(event: str) -> None:
    if event not in EVENTS:
        raise ValueError(f"unknown notification event {event!r}; known: {EVENTS}")


def _channels_configured() -> bool:
    return bool(settings.NOTIFY_WEBHOOK_URL or settings.NOTIFY_EMAILS)


def _host_of(url: str) -> str:
    """scheme://host[:port] only: a webhook URL's path or query often is its credential."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return REDACTED


def _url_credentials(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
        return [value for value in (parts.password, unquote(parts.password or "")) if value]
    except ValueError:
        return []


def _safe(text: str) -> str:
    """An error text fit for logs and the audit trail: the notification secrets this module
    holds (which logscrub does not know) removed, then the usual scrub, on one line."""
    mailer = getattr(settings, "MAILERS", {}).get("default", {})
    secrets = {
        settings.NOTIFY_WEBHOOK_URL,
        _without_credentials(settings.NOTIFY_WEBHOOK_URL)[0],
        settings.NOTIFY_WEBHOOK_SECRET,
        str(mailer.get("OPTIONS", {}).get("password") or ""),
        *_url_credentials(settings.NOTIFY_WEBHOOK_URL),
    }
    for value in sorted(secrets, key=len, reverse=True):
        if value and len(value) >= 4:
            text = text.replace(value, REDACTED)
    return one_line(scrub(text))[:500]
