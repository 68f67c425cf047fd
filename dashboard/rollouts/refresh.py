"""Track a running rollout's jobs until every server is final.

One refresh reads the active servers in the fewest calls the API allows (the server list
carries each server's last job, 100 a page) and calls ShowJobDetail only where that is not
enough: a failed job's error, a server whose last job is now another one, or a server that
vanished. The number of calls depends on the active jobs, never on who is watching: browsers
read the database only.
"""

import logging
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from dashboard import audit, heartbeat, inventory
from dashboard.cloud import inflight, records
from dashboard.cloud.errors import CloudError
from dashboard.models import Rollout, RolloutServer, WorkerHeartbeat
from dashboard.rollouts import lifecycle
from dashboard.rollouts.maintenance import leave_maintenance
from dashboard.rollouts.reread import reread_servers
from dashboard.rollouts.rowwrite import write_rows
from dashboard.rollouts.send import claimant

log = logging.getLogger(__name__)

S = RolloutServer.State
CHANGE_IMAGE = "CHANGE_SERVER_IMAGE"
# How long an `unknown` row may show no trace of its job before we call it not accepted: a
# multiple of the longest the cloud took to show an accepted job on its server, within bounds;
# the default until the rollout has seen one.
RECONCILE_GRACE = timedelta(minutes=2)
GRACE_FACTOR = 4
MIN_GRACE = timedelta(seconds=30)
MAX_GRACE = timedelta(minutes=10)
# Clock skew allowed between our submission time and the cloud's job_time.
SKEW = timedelta(minutes=2)
ORPHAN_MARGIN = timedelta(seconds=30)
TRACKED = (S.WAITING, S.RUNNING, S.UNKNOWN)

# What reconciliation decided for an `unknown` row (audited per tick, not per row).
ADOPTED, RESEND, NOT_ACCEPTED = "adopted", "resend", "not_accepted"


def track(rollout: Rollout, client) -> CloudError | None:
    """Bring the rollout's active rows up to date from the cloud (engine.tick calls this).

    Returns the cloud failure that kept some of it from happening (the rest still happened).
    """
    _orphaned_claims(rollout)
    if rollout.state == Rollout.State.CANCELLING:
        # Rows that came back to pending after the cancel (a dead worker's claims) are not sent.
        rollout.servers.filter(state=S.PENDING).update(
            state=S.CANCELLED, finished_at=timezone.now()
        )
    rows = list(rollout.servers.filter(state__in=TRACKED))
    trouble = None
    if rows:
        try:
            trouble = _track(rollout, rows, client)
        except CloudError as exc:
            log.warning("rollout %s refresh failed, will try again: %s", rollout.pk, exc)
            trouble = exc
    return leave_maintenance(rollout, client) or trouble


def _orphaned_claims(rollout: Rollout) -> None:
    """Rows a worker claimed and then left: its heartbeat says it is dead, or the rows are
    older than any live worker would keep them.

    - `submitting` rows were never sent (the mark comes just before the call): back to pending.
    - `sending` rows may have been sent: `unknown`, reconciled from the cloud, never resent.
      A live worker's call ends within the client's timeouts, so a row still `sending` after
      them belongs to a worker that died (or lost its database) mid-call.
    """
    cloud = settings.HUAWEICLOUD
    call = timedelta(seconds=cloud["CONNECT_TIMEOUT"] + cloud["READ_TIMEOUT"])
    reread = call + timedelta(seconds=cloud.get("RETRY_DEADLINE", 60.0))
    now = timezone.now()
    claimed = rollout.servers.filter(state__in=(S.SUBMITTING, S.SENDING))
    dead = _dead_claims(set(claimed.values_list("claim", flat=True)), now)
    orphan = Q(claim__in=dead) if dead else Q(pk__in=[])
    back = claimed.filter(
        orphan | Q(updated_at__lt=now - reread - ORPHAN_MARGIN), state=S.SUBMITTING
    )
    returned = list(back.values_list("server_id", flat=True))
    if returned:
        back.update(state=S.PENDING, claim="")
    stray = claimed.filter(orphan | Q(updated_at__lt=now - call - ORPHAN_MARGIN), state=S.SENDING)
    unknown = list(stray.values_list("server_id", flat=True))
    if unknown:
        stray.update(
            state=S.UNKNOWN,
            error_message=_("The worker stopped while sending; reconciling with the cloud."),
        )
    if returned or unknown:
        audit.record_for_rollout(
            rollout,
            "rows.orphaned",
            outcome=audit.ERROR,
            never_sent_back_to_pending=returned,
            maybe_sent_to_reconcile=unknown,
        )


def _dead_claims(claims: set[str], now) -> list[str]:
    """The claims whose process has heartbeat rows, all of them dead (a process without a
    heartbeat, such as a test or a bare `db_worker`, is judged by time alone)."""
    dead = []
    for claim in claims:
        prefix = claimant(claim)
        beats = list(WorkerHeartbeat.objects.filter(worker_id__startswith=prefix)) if prefix else []
        if beats and all(heartbeat.is_dead(beat, now) for beat in beats):
            dead.append(claim)
    return dead


def reconcile_grace(rollout: Rollout) -> timedelta:
    """How long an ambiguous answer waits for its job to show before it counts as refused."""
    if rollout.job_visible_seconds is None:
        return RECONCILE_GRACE
    grace = timedelta(seconds=GRACE_FACTOR * rollout.job_visible_seconds)
    return min(MAX_GRACE, max(MIN_GRACE, grace))


def _track(rollout: Rollout, rows: list[RolloutServer], client) -> CloudError | None:
    """Write only the rows whose state moved, so the live page sends only those, in one
    statement whatever their number (rowwrite.write_rows). One row's failed job lookup does
    not stop the others."""
    now = timezone.now()
    fresh = reread_servers(client, rows)
    jobs = _Jobs(client)
    jobs.read_ahead([_job_to_read(row, fresh.get(row.server_id)) for row in rows])
    grace = reconcile_grace(rollout)
    may_resend = rollout.state != Rollout.State.CANCELLING
    trouble: CloudError | None = None
    moved: list[tuple[RolloutServer, dict]] = []
    decided: dict[str, list[str]] = defaultdict(list)
    unchanged, visible = [], []
    for row in rows:
        server = fresh.get(row.server_id)
        shown = server is not None and bool(row.job_id) and server.job_id == row.job_id
        if shown and row.last_checked_at is None and row.submitted_at:
            # First look at an accepted job, and the server already shows it.
            visible.append((now - row.submitted_at).total_seconds())
        try:
            update, verdict = _judge(row, server, jobs, now, grace, may_resend)
        except CloudError as exc:
            log.warning("rollout %s server %s: job lookup failed: %s", rollout.pk, row.pk, exc)
            trouble = trouble or exc
            continue
        if verdict:
            decided[verdict].append(row.server_id)
        if any(getattr(row, field) != value for field, value in update.items()):
            moved.append((row, update | {"last_checked_at": now}))
        else:
            unchanged.append(row.pk)
    write_rows(moved)
    # One statement for the rest; updated_at stays put, so pollers are not sent them again.
    RolloutServer.objects.filter(pk__in=unchanged).update(
        last_checked_at=now, updated_at=F("updated_at")
    )
    if visible:
        rollout.job_visible_seconds = max([*visible, rollout.job_visible_seconds or 0.0])
    Rollout.objects.filter(pk=rollout.pk).update(
        last_checked_at=now, job_visible_seconds=rollout.job_visible_seconds
    )
    _audit_reconciled(rollout, decided)
    return trouble


def _audit_reconciled(rollout: Rollout, decided: dict[str, list[str]]) -> None:
    if decided.get(ADOPTED):
        audit.record_for_rollout(rollout, "rows.reconciled", adopted=decided[ADOPTED])
    if decided.get(RESEND):
        audit.record_for_rollout(
            rollout,
            "rows.resend",
            server_ids=decided[RESEND],
            reason="no change job after the grace: the cloud did not accept them",
        )
    if decided.get(NOT_ACCEPTED):
        audit.record_for_rollout(
            rollout,
            "rows.not_accepted",
            outcome=audit.ERROR,
            server_ids=decided[NOT_ACCEPTED],
            attempts=settings.ROLLOUT_SEND_ATTEMPTS,
        )


def _judge(
    row: RolloutServer, server: records.Server | None, jobs, now, grace, may_resend: bool
) -> tuple:
    """(the columns to write, what reconciliation decided or "")."""
    if row.state == S.UNKNOWN:
        return _reconcile(row, server, jobs, now, grace, may_resend)
    return _tracked(row, server, jobs, now), ""


def _tracked(row: RolloutServer, server: records.Server | None, jobs, now) -> dict:
    if server is not None and server.job_id == row.job_id:
        return _from_status(row, server.job_status, server, jobs, now)
    # The server is gone, or its last job is another one: ask the job itself.
    job = _show_job(jobs, row.job_id)
    if job is None:
        return (
            _failed(
                "JOB_VANISHED",
                _("The job vanished upstream and the server no longer shows it."),
                now,
            )
            if server is None
            else _by_image(row, server, now)
        )
    # A job shared by a batch: this server's own sub-job tells its state.
    own = job.sub_job_for(row.server_id)
    status = own.status if own is not None and own.status else job.status
    return _from_status(row, status, server, jobs, now, job=job)


def _reconcile(
    row: RolloutServer, server: records.Server | None, jobs, now, grace, may_resend: bool
) -> tuple:
    """Decide an `unknown` row from the server's last-job fields, never by resending blindly.

    A job found is adopted and judged exactly as tracking judges it (codes, messages, times,
    verification). No job after the grace proves the cloud did not accept the server: it is
    sent again on its own, up to ROLLOUT_SEND_ATTEMPTS calls, then failed NOT_ACCEPTED.
    """
    if _adoptable(row, server):
        row.job_id = server.job_id
        update = {"job_id": server.job_id, "error_code": "", "error_message": ""}
        update |= _from_status(row, server.job_status, server, jobs, now) or {"state": S.WAITING}
        return update, ADOPTED
    if row.submitted_at and now - row.submitted_at < grace:
        return {}, ""
    if not may_resend:  # a cancelled rollout sends nothing more: the server was not changed
        return {
            "state": S.CANCELLED,
            "finished_at": now,
            "error_code": "NOT_ACCEPTED",
            "error_message": _(
                "The cloud showed no job for this server; the rollout was cancelled, so it was "
                "not sent again."
            ),
        }, NOT_ACCEPTED
    if row.send_attempts < settings.ROLLOUT_SEND_ATTEMPTS:
        return {
            "state": S.PENDING,
            "claim": "",
            "error_code": "NOT_ACCEPTED",
            "error_message": _(
                "The cloud showed no job for this server after call %(n)d; sending it again."
            )
            % {"n": row.send_attempts},
        }, RESEND
    return _failed(
        "NOT_ACCEPTED",
        _(
            "The cloud shows no job for this server after %(n)d calls with ambiguous or no "
            "answers; it was not changed. Retry it."
        )
        % {"n": row.send_attempts},
        now,
    ), NOT_ACCEPTED


def _adoptable(row: RolloutServer, server: records.Server | None) -> bool:
    """Whether the server's last job is an image change sent no earlier than the row was."""
    return (
        server is not None
        and server.job_type == CHANGE_IMAGE
        and bool(server.job_id)
        and server.job_time is not None
        and (row.submitted_at is None or server.job_time >= row.submitted_at - SKEW)
    )


def _job_to_read(row: RolloutServer, server: records.Server | None) -> str:
    """The job _judge will ask ShowJobDetail about for this row, or "": a failed job (for its
    error), or a job the server no longer shows. Read ahead by _Jobs, several at once."""
    if row.state == S.UNKNOWN:
        adopted_failed = _adoptable(row, server) and server.job_status == "FAILED"
        return server.job_id if adopted_failed else ""
    if server is not None and server.job_id == row.job_id:
        return row.job_id if server.job_status == "FAILED" else ""
    return row.job_id


class _Jobs:
    """ShowJobDetail for one tick: the jobs it will need read ahead with ROLLOUT_CALLS_IN_FLIGHT
    calls out at once (a wave failing together needs one per server), each job read once;
    one not read ahead is read when asked. Answers as the jobs does, errors included."""

    def __init__(self, jobs) -> None:
        self.jobs = jobs
        self.answers: dict[str, records.Job | CloudError] = {}

    def read_ahead(self, job_ids: list[str]) -> None:
        wanted = [i for i in dict.fromkeys(job_ids) if i and i not in self.answers]
        in_flight = settings.ROLLOUT_CALLS_IN_FLIGHT
        if in_flight < 2 or len(wanted) < 2:
            return
        with inflight.Calls(in_flight, "jobs") as calls:
            futures = {job_id: calls.submit(self._read, job_id) for job_id in wanted}
        self.answers.update({job_id: future.result() for job_id, future in futures.items()})

    def show_job(self, job_id: str) -> records.Job:
        if job_id not in self.answers:
            self.answers[job_id] = self._read(job_id)
        answer = self.answers[job_id]
        if isinstance(answer, CloudError):
            raise answer
        return answer

    def _read(self, job_id: str) -> records.Job | CloudError:
        try:
            return self.jobs.show_job(job_id)
        except CloudError as exc:
            return exc


_STATE = {
    "WAITING": RolloutServer.State.WAITING,
    "RUNNING": RolloutServer.State.RUNNING,
    "SUCCESS": RolloutServer.State.SUCCEEDED,
    "FAILED": RolloutServer.State.FAILED,
}


def _from_status(row, status: str, server, jobs, now, job: records.Job | None = None) -> dict:
    state = _STATE.get(status)
    if state is None:
        return {}
    update: dict = {"state": state}
    if state == RolloutServer.State.RUNNING and row.started_at is None:
        update["started_at"] = now
    if state in (RolloutServer.State.WAITING, RolloutServer.State.RUNNING):
        started = row.submitted_at or now
        update["slow"] = (now - started).total_seconds() > settings.ROLLOUT_JOB_SLOW_SECONDS
    if state == RolloutServer.State.SUCCEEDED:
        update |= {
            "finished_at": now,
            "verified": server is not None and server.image_id == row.to_image_id,
        }
    if state == RolloutServer.State.FAILED:
        job = job or _show_job(jobs, row.job_id)
        code, message = _job_error(job, row.server_id)
        update |= {"finished_at": now, "error_code": code, "error_message": message}
    return update


def _by_image(row: RolloutServer, server: records.Server, now) -> dict:
    if server.image_id == row.to_image_id:
        return {"state": S.SUCCEEDED, "finished_at": now, "verified": True}
    return _failed(
        "JOB_VANISHED", _("The job vanished upstream and the server still runs its old image."), now
    )


def _failed(code: str, message: str, now) -> dict:
    return {
        "state": RolloutServer.State.FAILED,
        "error_code": code,
        "error_message": message,
        "finished_at": now,
    }


def _show_job(jobs, job_id: str) -> records.Job | None:
    if not job_id:
        return None
    try:
        return jobs.show_job(job_id)
    except CloudError as exc:
        if exc.not_found:  # 404, or 400 WKS.00149901 as ShowJobDetail documents
            return None
        raise


def _job_error(job: records.Job | None, server_id: str = "") -> tuple[str, str]:
    # A job shared by a batch has a sub-job per server: only this server's own error counts.
    own = job.sub_job_for(server_id) if job is not None and server_id else None
    for sub in (own,) if own is not None else job.sub_jobs if job else ():
        if sub.error_code or sub.error_message:
            return sub.error_code[:64], sub.error_message[:1000]
    return "JOB_FAILED", _("The image change job failed.")


def finish_if_done(rollout: Rollout) -> str:
    """Close the rollout once no server is pending or in flight. Returns its state."""
    rollout.refresh_from_db()
    if rollout.servers.filter(state__in=RolloutServer.ACTIVE_STATES).exists():
        return rollout.state
    if rollout.state == Rollout.State.CANCELLING:
        action = "finish_cancel"
    elif rollout.servers.filter(state=RolloutServer.State.FAILED).exists():
        action = "fail"
    else:
        action = "complete"
    if lifecycle.transition(rollout, action):
        inventory.request_sync("rollout", project=rollout.project)
    rollout.refresh_from_db()
    return rollout.state
