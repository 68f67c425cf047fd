"""One wave at a time: drain, wait for users, warn and log them off, send, track, soak.

Each call to `advance()` moves the current wave through as many stages as it can right now,
so the default rollout (one wave, no user handling) is sent on its first tick. A stage answers
the lifecycle action that moves the wave on (None: it stays), and lifecycle.transition()
makes the move.
"""

import logging
import uuid
from collections.abc import Callable
from datetime import timedelta

from django.utils import timezone
from django.utils.translation import gettext, ngettext

from dashboard import audit
from dashboard.cloud.errors import CloudError
from dashboard.models import Rollout, RolloutServer, RolloutWave
from dashboard.rollouts import lifecycle, signoff
from dashboard.rollouts.maintenance import enter_maintenance
from dashboard.rollouts.reread import reread_servers
from dashboard.rollouts.send import send_wave

log = logging.getLogger(__name__)

W = RolloutWave.State
Policy = Rollout.SessionPolicy
MAX_STEPS = 12


def current_wave(rollout: Rollout) -> RolloutWave | None:
    return rollout.waves.exclude(state__in=RolloutWave.FINAL_STATES).order_by("number").first()


def advance(rollout: Rollout, client, *, sleep: Callable[[float], None]) -> None:
    for _ in range(MAX_STEPS):
        wave = current_wave(rollout)
        if wave is None:
            return
        before = wave.state
        _step(rollout, wave, client, sleep)
        if wave.state == before:
            return  # waiting for time, users or jobs
        if rollout.state != Rollout.State.RUNNING:
            return  # held for sign-off after the canary


def _step(rollout: Rollout, wave: RolloutWave, client, sleep) -> None:
    stage = _STAGES.get(wave.state)
    if stage is None:
        return  # stopped: it moves again when its rollout resumes
    action, changes = stage(rollout, wave, client, sleep, timezone.now())
    if action:
        lifecycle.transition(wave, action, changes=changes, rollout=rollout)
        signoff.hold_after_canary(rollout, wave)
    elif "sessions_left" in changes:  # a fact only: the state stays
        wave.sessions_left = changes["sessions_left"]
        RolloutWave.objects.filter(pk=wave.pk).update(sessions_left=wave.sessions_left)


def _pending(rollout: Rollout, wave: RolloutWave):
    return rollout.servers.filter(wave=wave.number, state=RolloutServer.State.PENDING)


def _start(rollout, wave, client, sleep, now):
    if rollout.start_below_sessions is not None and wave.number > 1:
        # "Only while active sessions are below N" holds for every wave, not just the first.
        rows = list(rollout.servers.filter(state=RolloutServer.State.PENDING))
        active = sum(s.session_count for s in reread_servers(client, rows).values())
        if active >= rollout.start_below_sessions:
            return None, {"sessions_left": active} if active != wave.sessions_left else {}
    if rollout.use_maintenance:
        enter_maintenance(rollout, client, wave.number)
    # A wave started again after a pause or halt keeps the time it first started.
    changes = {"started_at": wave.started_at or now}
    if wave.session_policy == Policy.NONE:
        return "send", changes
    deadline = now + timedelta(seconds=rollout.session_wait_seconds)
    return "drain", changes | {"sessions_deadline": deadline}


def _drain(rollout, wave, client, sleep, now):
    """Wait for users to leave, up to the deadline; then log them off, or go ahead."""
    rows = list(_pending(rollout, wave))
    servers = reread_servers(client, rows)
    left = sum(s.session_count for s in servers.values())
    if left == 0:
        return "send", {"sessions_left": 0}
    if now < wave.sessions_deadline:
        return None, {"sessions_left": left} if left != wave.sessions_left else {}
    if wave.session_policy == Policy.WAIT:
        return "send", {"sessions_left": left}  # "wait only": the deadline has passed
    _log_off(rollout, wave, client, list(servers))
    logoff_at = now + timedelta(seconds=rollout.logoff_delay_seconds)
    return "log_off", {"sessions_left": left, "logoff_at": logoff_at}


def _log_off(rollout: Rollout, wave: RolloutWave, client, server_ids: list[str]) -> None:
    """Warn the remaining users with the message; the cloud logs them off after the delay.

    Audited before the call and after. A cloud failure is raised: the wave stays draining and
    the next tick tries again, rather than sending to servers whose users were never warned.
    """
    call = uuid.uuid4().hex[:12]
    sessions = client.list_sessions(server_ids)
    ids = [s.id for s in sessions]
    if not ids:
        return
    audit.record_for_rollout(
        rollout, "api.logoff_sessions.intent", call=call, wave=wave.number, sessions=ids
    )
    try:
        client.logoff_sessions(
            ids,
            delay_seconds=rollout.logoff_delay_seconds,
            message=rollout.logoff_message or _default_message(rollout),
            title=gettext("Maintenance"),
        )
    except CloudError as exc:
        log.warning("rollout %s wave %s: logoff failed: %s", rollout.pk, wave.number, exc)
        audit.record_for_rollout(
            rollout,
            "api.logoff_sessions",
            outcome=audit.ERROR,
            call=call,
            wave=wave.number,
            sessions=len(ids),
            status=exc.status,
            error_code=exc.error_code,
            request_id=exc.request_id,
        )
        raise
    audit.record_for_rollout(
        rollout, "api.logoff_sessions", call=call, wave=wave.number, sessions=len(ids)
    )


def _default_message(rollout: Rollout) -> str:
    minutes = max(1, rollout.logoff_delay_seconds // 60)
    return ngettext(
        "This server is being updated. Please save your work: you will be signed out in %(n)d min.",
        "This server is being updated. Please save your work: you will be signed out in %(n)d min.",
        minutes,
    ) % {"n": minutes}


def _logging_off(rollout, wave, client, sleep, now):
    return ("send", {}) if now >= wave.logoff_at else (None, {})


def _send(rollout, wave, client, sleep, now):
    send_wave(rollout.pk, wave.number, client, sleep=sleep)
    if _pending(rollout, wave).exists():
        return None, {}  # paused, cancelled or throttled part-way: the next tick goes on
    # Sent before a pause, found with nothing left to send after it: the first time stands.
    return "sent", {"sent_at": wave.sent_at or timezone.now()}


def _running(rollout, wave, client, sleep, now):
    if _pending(rollout, wave).exists():
        # Servers the cloud proved it did not accept are sent again, on their own.
        send_wave(rollout.pk, wave.number, client, sleep=sleep)
    active = rollout.servers.filter(wave=wave.number, state__in=RolloutServer.ACTIVE_STATES)
    if active.exists():
        return None, {}
    later = rollout.waves.filter(number__gt=wave.number).exists()
    if rollout.soak_seconds and later:
        return "soak", {"finished_at": now}
    return "finish", {"finished_at": now}


def _soak(rollout, wave, client, sleep, now):
    if now >= wave.finished_at + timedelta(seconds=rollout.soak_seconds):
        return "finish", {}
    return None, {}


_STAGES = {
    W.PENDING: _start,
    W.DRAINING: _drain,
    W.LOGGING_OFF: _logging_off,
    W.SENDING: _send,
    W.RUNNING: _running,
    W.SOAKING: _soak,
}
