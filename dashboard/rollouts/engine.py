"""The rollout engine: start a confirmed rollout, then tick it until every server is final.

A tick tracks the jobs in flight, checks the error budget, and advances the current wave
(waves.py). Ticks run as a self-re-enqueuing task chain (see submit.enqueue_refresh); the
database rows are the state, so any worker can run any tick.
"""

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial

from django.db import transaction
from django.utils import timezone

from dashboard import audit
from dashboard.models import Rollout, RolloutServer
from dashboard.rollouts import refresh, waves
from dashboard.rollouts.submit import enqueue_refresh, reread_servers

log = logging.getLogger(__name__)

RETRY_START = timedelta(minutes=1)  # how soon to look again when sessions are too many


def start(rollout_id: int, client=None, *, sleep: Callable[[float], None] = time.sleep) -> str:
    """queued → running when the schedule allows, then the first tick."""
    from dashboard.cloud.client import get_client

    client = client or get_client()
    rollout = Rollout.objects.get(pk=rollout_id)
    if rollout.state == Rollout.State.QUEUED:
        wait = _start_blocker(rollout, client)
        if wait is not None:
            _enqueue_start(rollout_id, wait)
            return rollout.state
        with transaction.atomic():
            started = Rollout.objects.filter(pk=rollout_id, state=Rollout.State.QUEUED).update(
                state=Rollout.State.RUNNING, started_at=timezone.now()
            )
            if started:
                refresh.notify("started", rollout_id)
    if not Rollout.objects.filter(pk=rollout_id, state=Rollout.State.RUNNING).exists():
        return Rollout.objects.get(pk=rollout_id).state
    return tick(rollout_id, client, sleep=sleep)


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


def _enqueue_start(rollout_id: int, wait: timedelta) -> None:
    from dashboard import tasks

    run_after = timezone.now() + wait
    transaction.on_commit(
        partial(tasks.submit_rollout.using(run_after=run_after).enqueue, rollout_id)
    )


def tick(
    rollout_id: int,
    client=None,
    *,
    token: str = "",
    reschedule: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """One step of a running rollout. Returns its state afterwards."""
    from dashboard.cloud.client import get_client

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
    state = refresh.finish_if_done(rollout)
    if state not in Rollout.FINAL_STATES and reschedule:
        enqueue_refresh(rollout_id, token=token)
    return state


def failures(rollout: Rollout) -> int:
    return rollout.servers.filter(state=RolloutServer.State.FAILED).count()


def budget_crossed(rollout: Rollout) -> bool:
    if rollout.failure_budget is None:
        return False
    return failures(rollout) - rollout.budget_base > rollout.failure_budget


def halt(rollout: Rollout) -> None:
    """Stop the remaining waves at once; jobs already running finish and are tracked."""
    used = failures(rollout) - rollout.budget_base
    reason = f"{used} failures crossed the error budget of {rollout.failure_budget}."
    with transaction.atomic():
        halted = Rollout.objects.filter(pk=rollout.pk, state=Rollout.State.RUNNING).update(
            state=Rollout.State.HALTED, halted_reason=reason
        )
        if halted:
            audit.record_for_rollout(
                rollout,
                "rollout.halt",
                reason=reason,
            )
            refresh.notify("halted", rollout.pk)
