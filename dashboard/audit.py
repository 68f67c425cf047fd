"""The audit trail: who did what, from where, and how it ended.

Call `record()` for every action and every refusal. Events are append-only: the model refuses
save-after-create and delete, and database triggers (migration 0002) refuse UPDATE and DELETE
even from raw SQL or `QuerySet.update()/.delete()`.
"""

import logging
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest

from dashboard.logscrub import REDACTED, is_secret_name, scrub
from dashboard.models import AuditEvent, Rollout

log = logging.getLogger("dashboard.audit")

OK, REFUSED, ERROR = "ok", "refused", "error"
OUTCOMES = (OK, REFUSED, ERROR)

_MAX_DETAIL_CHARS = 2000


def _clean(value: Any, depth: int = 0) -> Any:
    """Details as JSON-safe values, secrets scrubbed and long strings cut."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth < 4 and isinstance(value, dict):
        return {
            str(key)[:100]: REDACTED if is_secret_name(str(key)) else _clean(item, depth + 1)
            for key, item in list(value.items())[:50]
        }
    if depth < 4 and isinstance(value, list | tuple | set | frozenset):
        return [_clean(item, depth + 1) for item in list(value)[:200]]
    return scrub(str(value))[:_MAX_DETAIL_CHARS]


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
    **details: Any,
) -> AuditEvent:
    """Append one audit event and return it.

    `action` is a dotted verb such as "rollout.confirm"; `outcome` is "ok", "refused" or
    "error"; `target` names what was acted on; `rollout` links the event to a rollout (object
    or id); `details` are any JSON-able facts (scrubbed of secrets). Actor, groups and client
    address come from the request's SSO identity unless `actor` is given (for work done by a
    worker on someone's behalf, pass `actor=rollout.created_by` and no request).

    Runs in the caller's transaction: an event about an action rolled back is rolled back
    with it. Raises ValueError for an unknown outcome.
    """
    from dashboard.sso import client_address

    if outcome not in OUTCOMES:
        raise ValueError(f"unknown audit outcome {outcome!r}")
    request_actor, groups = _actor_of(request_or_none)
    event = AuditEvent.objects.create(
        actor=(actor if actor is not None else request_actor)[:150],
        groups=[group[:200] for group in groups[:100]],
        client_ip=client_address(request_or_none) if request_or_none is not None else None,
        action=action[:64],
        outcome=outcome,
        target=str(target)[:255],
        rollout_id=rollout.pk if isinstance(rollout, Rollout) else rollout,
        details=_clean(details),
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
