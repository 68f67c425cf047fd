"""The rollout engine: start a confirmed rollout, then tick it until every server is final.

A tick tracks the jobs in flight, checks the error budget, advances the current wave
(waves.py) and finishes the rollout once nothing is left to do. Every state change goes
through lifecycle.transition(). The engine enqueues nothing itself: queue.py runs it as a
task chain and decides what runs next from what it returns. The database rows are the
state, so any worker can run any tick.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from dashboard.cloud.client import get_client
from dashboard.models import Rollout, RolloutServer
from dashboard.rollouts import lifecycle, refresh, waves
from dashboard.rollouts.reread import reread_servers

log = logging.getLogger(__name__)

RETRY_START = timedelta(minutes=1)  # how soon to look again when sessions are too many


@dataclass(frozen=True)
class Step:
    state: str  # the rollout's state afterwards
    retry_in: timedelta | None = None  # not started yet: look again after this long


def begin(rollout_id: int, client=None, *, sleep: Callable[[float], None] = time.sleep) -> Step:
    """queued → running when the schedule and the session threshold allow, then the first
    tick (so a rollout of one wave without user handling is sent at once)."""
    client = client or get_client()
    rollout = Rollout.objects.get(pk=rollout_id)
    if rollout.state == Rollout.State.QUEUED:
        wait = _start_blocker(rollout, client)
        if wait is not None:
            return Step(rollout.state, wait)
        lifecycle.transition(rollout, "start", changes={"started_at": timezone.now()})
    rollout.refresh_from_db()
    if rollout.state != Rollout.State.RUNNING:
        return Step(rollout.state)
    return Step(tick(rollout_id, client, sleep=sleep))


def start(rollout_id: int, client=None, *, sleep: Callable[[float], None] = time.sleep) -> str:
    """`begin`, answering only the state afterwards."""
    return begin(rollout_id, client, sleep=sleep).state


def _start_blocker(rollout: Rollout, client) -> timedelta | None:
    """How long to wait before starting: the schedule, or too many active sessions."""
    now = timezone.now()
    if rollout.scheduled_at and rollout.scheduled_at > now:
        return rollout.scheduled_at - now
    if rollout.start_below_sessions is not None:
        rows = list(rollout.servers.filter(state=RolloutServer.State.PENDING))
        sessions = sum(s.session_count for s in reread_servers(client, rows).values())
        if sessions >= rollout.start_below_sessions:
            log.info("rollout %s waits: %s sessions active", rollout.pk, sessions)
            return RETRY_START
    return None


def tick(
    rollout_id: int,
    client=None,
    *,
    token: str = "",
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """One step of a started rollout. Returns its state afterwards."""
    client = client or get_client()
    rollout = Rollout.objects.get(pk=rollout_id)
    if rollout.is_final or (token and rollout.refresh_token != token):
        return rollout.state  # finished, or this chain was replaced by a newer one
    refresh.track(rollout, client)
    rollout.refresh_from_db()
    if rollout.state == Rollout.State.RUNNING:
        if budget_crossed(rollout):
            halt(rollout)
        else:
            waves.advance(rollout, client, sleep=sleep)
    return refresh.finish_if_done(rollout)


def failures(rollout: Rollout) -> int:
    return rollout.servers.filter(state=RolloutServer.State.FAILED).count()


def budget_crossed(rollout: Rollout) -> bool:
    if rollout.failure_budget is None:
        return False
    return failures(rollout) - rollout.budget_base > rollout.failure_budget


def budget_text(budget: int | None) -> str:
    """ "no failure allowed", "1 failure allowed", "3 failures allowed" or "no budget"."""
    if budget is None:
        return _("no error budget")
    if budget == 0:
        return _("no failure allowed")
    return ngettext("%(n)d failure allowed", "%(n)d failures allowed", budget) % {"n": budget}


def halt(rollout: Rollout) -> None:
    """Stop the remaining waves at once; jobs already running finish and are tracked."""
    used = failures(rollout) - rollout.budget_base
    reason = ngettext(
        "%(n)d failure crossed the error budget (%(budget)s).",
        "%(n)d failures crossed the error budget (%(budget)s).",
        used,
    ) % {"n": used, "budget": budget_text(rollout.failure_budget)}
    lifecycle.transition(
        rollout, "halt", reason=reason, changes={"halted_reason": reason}, failures=used
    )
