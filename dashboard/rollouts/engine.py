"""The rollout engine: start a confirmed rollout, then tick it until every server is final.

A tick tracks the jobs in flight, checks the error budget, advances the current wave
(waves.py) and finishes the rollout once nothing is left to do. Every state change goes
through lifecycle.transition(). The engine enqueues nothing itself: queue.py runs it as a
task chain and decides what runs next from what it returns (`Step.retry_in`). The database
rows are the state, so any worker can run any tick.

A cloud failure in any step of a tick (re-reads, maintenance mode, sessions, logoff, send,
tracking) never ends the chain: the tick records since when the cloud has been failing on the
rollout (the page says so), and the next one comes later and later (backoff), up to a minute.
A paused or halted rollout with nothing in flight is looked at only every
ROLLOUT_IDLE_TICK_SECONDS.
"""

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from dashboard import inventory, projects
from dashboard.cloud.errors import CloudError
from dashboard.models import Rollout, RolloutServer
from dashboard.rollouts import lifecycle, refresh, waves
from dashboard.rollouts.reread import reread_servers

log = logging.getLogger(__name__)

RETRY_START = timedelta(minutes=1)  # how soon to look again when sessions are too many
MAX_BACKOFF = 60.0  # seconds between ticks at most while the cloud fails


@dataclass(frozen=True)
class Step:
    state: str  # the rollout's state afterwards
    retry_in: timedelta | None = None  # not started yet: look again after this long


def begin(rollout_id: int, client=None, *, sleep: Callable[[float], None] = time.sleep) -> Step:
    """queued → running when the schedule and the session threshold allow, then the first
    tick (so a rollout of one wave without user handling is sent at once)."""
    rollout = Rollout.objects.select_related("project").get(pk=rollout_id)
    client = client or _client(rollout)
    if client is None:
        return Step(rollout.state, timedelta(seconds=backoff(rollout)))
    if rollout.state == Rollout.State.QUEUED:
        try:
            wait = _start_blocker(rollout, client)
        except CloudError as exc:
            _note_cloud(rollout, exc)
            return Step(rollout.state, timedelta(seconds=backoff(rollout)))
        if wait is not None:
            return Step(rollout.state, wait)
        lifecycle.transition(rollout, "start", changes={"started_at": timezone.now()})
    rollout.refresh_from_db()
    if rollout.state != Rollout.State.RUNNING:
        return Step(rollout.state)
    return step(rollout_id, client, sleep=sleep)


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
    return step(rollout_id, client, token=token, sleep=sleep).state


def step(
    rollout_id: int,
    client=None,
    *,
    token: str = "",
    sleep: Callable[[float], None] = time.sleep,
) -> Step:
    """One tick, and how long until the next one should run (None: the usual interval)."""
    rollout = Rollout.objects.select_related("project").get(pk=rollout_id)
    if rollout.is_final or (token and rollout.refresh_token != token):
        return Step(rollout.state)  # finished, or this chain was replaced by a newer one
    client = client or _client(rollout)
    if client is None:
        return Step(rollout.state, timedelta(seconds=backoff(rollout)))
    trouble = refresh.track(rollout, client)
    rollout.refresh_from_db()
    if rollout.state == Rollout.State.RUNNING:
        if budget_crossed(rollout):
            halt(rollout)
        else:
            try:
                waves.advance(rollout, client, sleep=sleep)
            except CloudError as exc:
                log.warning("rollout %s: cloud failed, next tick backs off: %s", rollout.pk, exc)
                trouble = trouble or exc
    state = refresh.finish_if_done(rollout)
    _note_cloud(rollout, trouble)
    return Step(state, next_tick_in(rollout, trouble))


def _client(rollout: Rollout):
    """The rollout's project's client; None (said on the rollout's page, the chain waiting)
    when the project is no longer configured or its client cannot be built (no credentials,
    a region without the service), until the configuration is put right."""
    try:
        return projects.client_for(rollout.project)
    except (projects.NotConfigured, ImproperlyConfigured, ValueError) as exc:
        log.warning("rollout %s: no cloud client for its project: %s", rollout.pk, exc)
        _note_cloud(
            rollout, CloudError(None, error_code="PROJECT_NOT_CONFIGURED", message=str(exc))
        )
        return None


def _note_cloud(rollout: Rollout, trouble: CloudError | None) -> None:
    """Since when the cloud fails this rollout's ticks (kept from the first failure), or clear."""
    if trouble is None:
        if rollout.cloud_unreachable_since is not None:
            Rollout.objects.filter(pk=rollout.pk).update(
                cloud_unreachable_since=None, cloud_error=""
            )
            rollout.cloud_unreachable_since, rollout.cloud_error = None, ""
        return
    # This worker's breaker may know the run of failures began earlier (cloud/limits.py).
    contact = projects.cloud_contact(rollout.project)
    since = (
        rollout.cloud_unreachable_since
        or (contact.unreachable_since if contact is not None else None)
        or timezone.now()
    )
    error = str(trouble)[:255]
    Rollout.objects.filter(pk=rollout.pk).update(cloud_unreachable_since=since, cloud_error=error)
    rollout.cloud_unreachable_since, rollout.cloud_error = since, error


def backoff(rollout: Rollout) -> float:
    """Seconds to the next tick while the cloud fails: about as long as it has been failing
    (so the waits double), from the usual interval up to a minute."""
    usual = settings.ROLLOUT_REFRESH_SECONDS
    if rollout.cloud_unreachable_since is None:
        return usual
    failing = (timezone.now() - rollout.cloud_unreachable_since).total_seconds()
    return min(MAX_BACKOFF, max(usual, 1.0, failing))


def next_tick_in(rollout: Rollout, trouble: CloudError | None = None) -> timedelta | None:
    """None for the usual interval; longer while the cloud fails, or while a paused or halted
    rollout has no job in flight (it only waits for a person)."""
    if trouble is not None:
        return timedelta(seconds=backoff(rollout))
    if rollout.state in (Rollout.State.PAUSED, Rollout.State.HALTED) and not in_flight(rollout):
        return timedelta(seconds=settings.ROLLOUT_IDLE_TICK_SECONDS)
    return None


def in_flight(rollout: Rollout) -> bool:
    """Whether a stopped rollout still has something to track (jobs, calls, reconciliation)."""
    return rollout.servers.filter(
        state__in=[s for s in RolloutServer.ACTIVE_STATES if s != RolloutServer.State.PENDING]
    ).exists()


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
    reason = _budget_crossed(used, rollout.failure_budget)
    if lifecycle.transition(
        rollout, "halt", reason=reason, changes={"halted_reason": reason}, failures=used
    ):
        # The failed servers' jobs have ended: a retry planned next reads them as they are now,
        # not as busy from the last sync.
        inventory.request_sync("rollout", project=rollout.project)


def _budget_crossed(used: int, budget: int | None) -> str:
    return ngettext(
        "%(n)d failure crossed the error budget (%(budget)s).",
        "%(n)d failures crossed the error budget (%(budget)s).",
        used,
    ) % {"n": used, "budget": budget_text(budget)}


def halted_reason(rollout: Rollout, stored: str | None = None) -> str:
    """Why the rollout halted (`stored`: a halt's reason kept elsewhere, on its timeline) in
    the reader's language: a reason is kept as worded in the language of the process that
    halted it; one the error budget gave is worded again."""
    stored = rollout.halted_reason if stored is None else stored
    first_number = re.search(r"\d+", stored)  # the failures come first in every wording
    if first_number is None:
        return stored
    used = int(first_number.group())
    for language, _name in settings.LANGUAGES:
        with translation.override(language):
            worded = _budget_crossed(used, rollout.failure_budget)
        if worded == stored:
            return _budget_crossed(used, rollout.failure_budget)  # in the reader's language
    return stored
