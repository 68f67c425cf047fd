"""The audit trail: who did what, from where, and how it ended.

Call `record()` for every action, and `refusal()` for a refused request (a refused identity, a
failed CSRF check, a missing role). Events are append-only: the model refuses save-after-create
and delete, and database triggers (migration 0002) refuse UPDATE and DELETE even from raw SQL or
`QuerySet.update()/.delete()`.

Because nothing can remove a row, what anyone signed in (or not) can repeat at will is
rationed: refusals, and exports of the audit log. Each source (the client address, an IPv6
client's /64) gets at most AUDIT_REFUSALS_PER_MINUTE such rows a minute, counted in the database
so the cap holds across every web process. Refusals beyond it are logged and counted, and one
`audit.suppressed` row per source and minute says how many there were; an export beyond it is
refused (429) before it runs.
"""

import datetime
import ipaddress
import logging
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db.models import F, Q
from django.http import HttpRequest
from django.utils import timezone

from dashboard.logscrub import REDACTED, is_secret_name, known_secrets, scrub
from dashboard.models import AuditEvent, Project, RefusalWindow, Rollout
from dashboard.netaddr import client_address

log = logging.getLogger("dashboard.audit")

OK, REFUSED, ERROR = "ok", "refused", "error"
OUTCOMES = (OK, REFUSED, ERROR)

_MAX_DETAIL_CHARS = 2000


def _clean(value: Any, secrets: list[str], depth: int = 0) -> Any:
    """Details as JSON-safe values, secrets scrubbed and long strings cut. `secrets`: the
    process's secret values (logscrub.known_secrets), read once for the whole event."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth < 4 and isinstance(value, dict):
        return {
            str(key)[:100]: (
                REDACTED if is_secret_name(str(key)) else _clean(item, secrets, depth + 1)
            )
            for key, item in list(value.items())[:50]
        }
    if depth < 4 and isinstance(value, list | tuple | set | frozenset):
        return [_clean(item, secrets, depth + 1) for item in list(value)[:200]]
    return _text(scrub(str(value), secrets))[:_MAX_DETAIL_CHARS]


def _text(value: str) -> str:
    # PostgreSQL refuses NUL in text and JSON: a NUL a client managed to send (a claimed user
    # name, a header) is written out, never allowed to turn its refusal into a 500.
    return value.replace("\x00", "\\x00")


def _actor_of(request: HttpRequest | None) -> tuple[str, list[str]]:
    if request is None:
        return "", []
    identity = getattr(request, "sso_identity", None)
    if identity is not None:
        return identity.username, list(identity.groups)
    user = getattr(request, "user", AnonymousUser())
    if user.is_authenticated:
        return user.get_username(), list(getattr(request, "sso_groups", ()))
    return "", []


def record(
    request_or_none: HttpRequest | None,
    action: str,
    *,
    outcome: str = OK,
    target: str = "",
    rollout: Rollout | int | None = None,
    actor: str | None = None,
    project: Project | int | str | None = None,
    **details: Any,
) -> AuditEvent | None:
    """Append one audit event and return it.

    `action` is a dotted verb such as "rollout.confirm"; `outcome` is "ok", "refused" or
    "error"; `target` names what was acted on; `rollout` links the event to a rollout (object
    or id) and to its project (`project` names one for events without a rollout); `details`
    are any JSON-able facts (scrubbed of secrets). Actor, groups and client
    address come from the request's SSO identity unless `actor` is given (for work done by a
    worker on someone's behalf, pass `actor=rollout.created_by` and no request).

    A refused request counts against its source's ration of refusal rows like `refusal()`'s:
    beyond it, it is only logged and counted, and None is returned (nothing can delete rows,
    so nobody may add them without bound by asking for what they may not do).

    Runs in the caller's transaction: an event about an action rolled back is rolled back
    with it. Raises ValueError for an unknown outcome.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown audit outcome {outcome!r}")
    if outcome == REFUSED and request_or_none is not None:
        code = str(details.get("code", ""))
        if not within_ration(request_or_none, action, target=target, code=code):
            return None
    request_actor, groups = _actor_of(request_or_none)
    project_id = _project_id(project, rollout)
    if isinstance(project, str):
        details["project"] = project  # as the caller named it, beside the link
    event = AuditEvent.objects.create(
        actor=_text(actor if actor is not None else request_actor)[:150],
        groups=[_text(group)[:200] for group in groups[:100]],
        client_ip=client_address(request_or_none) if request_or_none is not None else None,
        action=action[:64],
        outcome=outcome,
        target=_text(str(target))[:255],
        rollout_id=rollout.pk if isinstance(rollout, Rollout) else rollout,
        project_id=project_id,
        details=_clean(details, known_secrets()),
    )
    log.info(
        "audit %s outcome=%s actor=%r target=%r rollout=%s",
        event.action,
        event.outcome,
        event.actor,
        event.target,
        event.rollout_id or "-",
    )
    return event


def _project_id(project: Project | int | str | None, rollout: Rollout | int | None) -> int | None:
    """The project an event touched: the one named (a row, an id or a name), else the
    rollout's."""
    if isinstance(project, Project):
        return project.pk
    if isinstance(project, int):
        return project
    if isinstance(project, str):
        return Project.objects.filter(name=project).values_list("pk", flat=True).first()
    if isinstance(rollout, Rollout):
        return rollout.project_id
    if rollout is not None:
        return Rollout.objects.filter(pk=rollout).values_list("project_id", flat=True).first()
    return None


def record_for_rollout(rollout: Rollout, action: str, *, outcome: str = OK, **details: Any):
    """An event the worker records on behalf of whoever started the rollout."""
    return record(
        None,
        action,
        outcome=outcome,
        actor=rollout.created_by,
        rollout=rollout,
        target=f"rollout #{rollout.pk}",
        via="worker",
        **details,
    )


# --- Refusals ---------------------------------------------------------------------------------

SUPPRESSED = "audit.suppressed"
_WINDOW = datetime.timedelta(minutes=1)
_KEEP_WINDOWS = datetime.timedelta(minutes=10)
_SUMMARIES_PER_CALL = 20


def refusal_source(request: HttpRequest) -> str:
    """Who a refusal is counted against: the client address, never anything the client names.

    An IPv6 client holds a whole /64, so that prefix is one source.
    """
    address = client_address(request) or ""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "unknown"
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def refusal(
    request: HttpRequest,
    action: str,
    *,
    code: str,
    target: str = "",
    once_per_minute: bool = False,
    **details: Any,
) -> AuditEvent | None:
    """Audit a refused request, within the source's per-minute ration; return the event, or
    None when the refusal was only logged and counted.

    `code` is a stable reason code (`sso.untrusted_peer`, `role.missing`, `csrf.failed`, …),
    stored in the details and shown on the 403 page. With `once_per_minute`, a source's repeats
    of the same code within a minute are counted instead of recorded (for refused identities,
    where nothing else about the request can be believed).
    """
    request.refusal_code = code
    if once_per_minute:
        window = timezone.now().replace(second=0, microsecond=0)
        if not _take(f"{code}@{refusal_source(request)}"[:128], window, limit=1):
            _not_recorded(request, action, target, code)
            return None
    return record(request, action, outcome=REFUSED, target=target, code=code, **details)


def within_ration(request: HttpRequest, action: str, *, target: str = "", code: str = "") -> bool:
    """Count one row against the request's source for this minute (AUDIT_REFUSALS_PER_MINUTE
    a minute); False, logged and counted for the minute's `audit.suppressed` row, beyond it."""
    window = timezone.now().replace(second=0, microsecond=0)
    summarize_refusals(before=window)
    if _take(refusal_source(request), window, limit=settings.AUDIT_REFUSALS_PER_MINUTE):
        return True
    _not_recorded(request, action, target, code)
    return False


def _not_recorded(request: HttpRequest, action: str, target: str, code: str) -> None:
    log.warning(
        "audit %s code=%s source=%s target=%r not recorded: "
        "over this source's ration of rows for the minute (counted)",
        action,
        code,
        refusal_source(request),
        str(target)[:200],
    )


def _take(source: str, window: datetime.datetime, *, limit: int) -> bool:
    """Count one refusal against `source` in `window`; True while it is within `limit`.

    Conditional UPDATEs on one shared row: two processes can never both take the last place.
    """
    bucket, _ = RefusalWindow.objects.get_or_create(source=source, window_start=window)
    taken = RefusalWindow.objects.filter(pk=bucket.pk, recorded__lt=limit).update(
        recorded=F("recorded") + 1
    )
    if taken:
        return True
    RefusalWindow.objects.filter(pk=bucket.pk).update(suppressed=F("suppressed") + 1)
    return False


def summarize_refusals(*, before: datetime.datetime | None = None) -> int:
    """Write one `audit.suppressed` row for each finished minute in which refusals were
    counted but not recorded; forget old counters. Returns the rows written.

    Runs with every refusal and among the worker's periodic duties (so a minute is summarized
    even when no refusal follows it); safe to call from anywhere (each minute is summarized
    once, by whichever process claims it first).
    """
    before = before or timezone.now().replace(second=0, microsecond=0)
    pending = RefusalWindow.objects.filter(
        window_start__lt=before, suppressed__gt=0, summarized=False
    ).order_by("window_start")[:_SUMMARIES_PER_CALL]
    written = 0
    for bucket in pending:
        if not RefusalWindow.objects.filter(pk=bucket.pk, summarized=False).update(summarized=True):
            continue  # another process summarized it
        code, _, source = bucket.source.rpartition("@")
        record(
            None,
            SUPPRESSED,
            outcome=REFUSED,
            target=source,
            code=code or "audit.rate_limited",
            source=source,
            minute=bucket.window_start.isoformat(),
            suppressed=bucket.suppressed,
        )
        written += 1
    RefusalWindow.objects.filter(window_start__lt=before - _KEEP_WINDOWS).filter(
        Q(suppressed=0) | Q(summarized=True)
    ).delete()
    return written
