"""The rollout lifecycle: which action moves a rollout (or one of its waves) from which states
to which state, and the one function that makes every such move.

`transition()` is the only writer of `Rollout.state` and `RolloutWave.state` (a test scans the
code for any other). In one transaction it

1. moves the state with a conditional UPDATE (nothing happens unless the row is in one of the
   action's source states, so a replayed or racing action changes nothing and returns False);
2. writes a `RolloutEvent` (who, action, from, to, when, reason, details): the timeline;
3. for a rollout, writes the audit event `rollout.<action>` and enqueues the notification the
   move calls for (delivered once the transaction commits);
4. moves the rollout's waves with it: pausing, halting, cancelling or finishing a rollout
   leaves no wave sending, running or soaking.

Views and templates ask `allows(rollout, action)` / `allowed(rollout)`; the rules live here
only.
"""

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from dashboard import audit, notify
from dashboard.models import Rollout, RolloutEvent, RolloutWave

R = Rollout.State
W = RolloutWave.State

WORKER = "worker"  # the actor of moves the engine makes on its own


@dataclass(frozen=True)
class Move:
    sources: frozenset[str]
    target: str
    notify: str = ""  # the notification event this move sends (notify.EVENTS), if any


def _move(sources: tuple[str, ...], target: str, notify_event: str = "") -> Move:
    return Move(frozenset(sources), target, notify_event)


STOPPABLE = (R.RUNNING, R.PAUSED, R.HALTED)

# action → the states it is allowed from → the state it leads to (→ the notification it sends)
ROLLOUT: dict[str, Move] = {
    "confirm": _move((R.PLANNED,), R.QUEUED),
    "request_approval": _move((R.PLANNED,), R.AWAITING_APPROVAL, "awaiting_approval"),
    "approve": _move((R.AWAITING_APPROVAL,), R.QUEUED),
    # The second person turns it down: nothing of it is ever sent.
    "reject": _move((R.AWAITING_APPROVAL,), R.CANCELLED, "cancelled"),
    "discard": _move((R.PLANNED,), R.DISCARDED),  # the operator's Cancel, or a stale plan
    "expire": _move((R.PLANNED,), R.DISCARDED),  # unconfirmed for PLAN_TTL_SECONDS
    "start": _move((R.QUEUED,), R.RUNNING, "started"),
    "pause": _move((R.RUNNING,), R.PAUSED),
    # The canary wave is done and sign-off was asked for: held until someone resumes it.
    "hold_for_signoff": _move((R.RUNNING,), R.PAUSED, "signoff_needed"),
    "resume": _move((R.PAUSED, R.HALTED), R.RUNNING),
    "halt": _move((R.RUNNING,), R.HALTED, "halted"),
    # Nothing in flight: cancelled at once. Jobs in flight: they finish first (cancelling).
    "cancel": _move((R.QUEUED, R.AWAITING_APPROVAL, *STOPPABLE), R.CANCELLED, "cancelled"),
    "cancel_in_flight": _move(STOPPABLE, R.CANCELLING),
    "complete": _move(STOPPABLE, R.SUCCEEDED, "completed"),
    "fail": _move(STOPPABLE, R.FAILED, "failed"),
    "finish_cancel": _move((R.CANCELLING,), R.CANCELLED, "cancelled"),
}

# A wave's own stages (waves.py), and the moves its rollout's transitions make it take.
WAVE: dict[str, Move] = {
    "drain": _move((W.PENDING,), W.DRAINING),
    "log_off": _move((W.DRAINING,), W.LOGGING_OFF),
    "send": _move((W.PENDING, W.DRAINING, W.LOGGING_OFF), W.SENDING),
    "sent": _move((W.SENDING,), W.RUNNING),
    "soak": _move((W.RUNNING,), W.SOAKING),
    "finish": _move((W.RUNNING, W.SOAKING, W.STOPPED), W.DONE),
    "stop": _move((W.DRAINING, W.LOGGING_OFF, W.SENDING, W.RUNNING, W.SOAKING), W.STOPPED),
    # A stopped wave starts over from its first stage: users are checked again before sending.
    "restart": _move((W.STOPPED,), W.PENDING),
    "cancel": _move(
        (W.PENDING, W.DRAINING, W.LOGGING_OFF, W.SENDING, W.RUNNING, W.STOPPED), W.CANCELLED
    ),
}

# What a rollout's move does to its waves, in order: (wave action, reason on the timeline).
# A soaking wave has finished its jobs, so it is done whatever happens next; a wave that had
# not finished sending is cancelled when its rollout ends.
_CASCADE: dict[str, tuple[str, ...]] = {
    "pause": ("stop",),
    "hold_for_signoff": ("stop",),
    "halt": ("stop",),
    "resume": ("restart",),
    "cancel": ("finish_soak", "cancel"),
    "reject": ("cancel",),
    "cancel_in_flight": ("finish_soak", "cancel"),
    "complete": ("finish", "cancel"),
    "fail": ("finish", "cancel"),
    "finish_cancel": ("finish", "cancel"),
}

# Actions that plan a new rollout from this one; they do not move this rollout.
FOLLOW_UPS: dict[str, frozenset[str]] = {
    "retry": frozenset({R.PAUSED, R.HALTED, R.SUCCEEDED, R.FAILED, R.CANCELLED}),
    "revert": frozenset({R.PAUSED, R.HALTED, R.SUCCEEDED, R.FAILED, R.CANCELLED}),
}


class UnknownAction(ValueError):
    pass


def allows(rollout: Rollout, action: str) -> bool:
    """Whether `action` may be taken on the rollout in its current state."""
    if action in FOLLOW_UPS:
        return rollout.state in FOLLOW_UPS[action]
    if action not in ROLLOUT:
        raise UnknownAction(f"unknown rollout action {action!r}")
    return rollout.state in ROLLOUT[action].sources


def allowed(rollout: Rollout) -> frozenset[str]:
    """Every action the rollout allows now (templates test `"pause" in allowed`)."""
    return frozenset(a for a in (*ROLLOUT, *FOLLOW_UPS) if allows(rollout, a))


def transition(
    subject: Rollout | RolloutWave,
    action: str,
    *,
    by: str = WORKER,
    request: HttpRequest | None = None,
    reason: str = "",
    changes: dict[str, Any] | None = None,
    rollout: Rollout | None = None,
    **details: Any,
) -> bool:
    """Move `subject` (a rollout or a wave) by `action`. Returns True if this call moved it.

    `by` names who acted (the worker by default); with `request`, the audit event carries the
    person's identity and address. `changes` are other columns written in the same UPDATE
    (e.g. `started_at`). `rollout` saves a query when moving a wave. Raises UnknownAction
    for an action not in the table.
    """
    is_wave = isinstance(subject, RolloutWave)
    table = WAVE if is_wave else ROLLOUT
    if action not in table:
        raise UnknownAction(f"unknown {'wave' if is_wave else 'rollout'} action {action!r}")
    move = table[action]
    model = type(subject)
    now = timezone.now()
    values = dict(changes or {})
    if move.target in (*Rollout.FINAL_STATES, *RolloutWave.FINAL_STATES) and not (
        "finished_at" in values or subject.finished_at
    ):
        values["finished_at"] = now
    with transaction.atomic():
        current = (
            model.objects.select_for_update()
            .filter(pk=subject.pk)
            .values_list("state", flat=True)
            .first()
        )
        if current not in move.sources:
            return False
        if not model.objects.filter(pk=subject.pk, state=current).update(
            state=move.target, **values
        ):
            return False
        subject.state = move.target
        for name, value in values.items():
            setattr(subject, name, value)
        owner = rollout if is_wave and rollout is not None else subject
        RolloutEvent.objects.create(
            rollout_id=subject.rollout_id if is_wave else subject.pk,
            wave=subject.number if is_wave else None,
            action=action,
            from_state=current,
            to_state=move.target,
            actor=(_actor(request) or by)[:150],
            at=now,
            reason=reason[:500],
            details=details,
        )
        if not is_wave:
            _audit(owner, action, request, by, current, move.target, reason, details)
            _move_waves(subject, action, by=by, reason=reason or f"rollout {action}")
            if move.notify:
                notify.notify(move.notify, subject.pk)
    return True


def _actor(request: HttpRequest | None) -> str:
    user = getattr(request, "user", None)
    return user.get_username() if user is not None and user.is_authenticated else ""


def _audit(rollout, action, request, by, from_state, to_state, reason, details) -> None:
    facts = {"from_state": from_state, "to_state": to_state, **details}
    if reason:
        facts["reason"] = reason
    if request is not None:
        audit.record(
            request, f"rollout.{action}", rollout=rollout, target=f"rollout #{rollout.pk}", **facts
        )
    elif by != WORKER:
        audit.record(
            None,
            f"rollout.{action}",
            actor=by,
            rollout=rollout,
            target=f"rollout #{rollout.pk}",
            **facts,
        )
    else:
        audit.record_for_rollout(rollout, f"rollout.{action}", **facts)


def _move_waves(rollout: Rollout, action: str, *, by: str, reason: str) -> None:
    for wave_action in _CASCADE.get(action, ()):
        name = "finish" if wave_action == "finish_soak" else wave_action
        sources = (W.SOAKING,) if wave_action == "finish_soak" else WAVE[name].sources
        for wave in rollout.waves.filter(state__in=sources):
            transition(wave, name, by=by, reason=reason, rollout=rollout)
