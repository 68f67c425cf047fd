"""Track a running rollout's jobs until every server is final.

One refresh reads the active servers in the fewest calls the API allows (the server list
carries each server's last job, 100 a page) and calls ShowJobDetail only where that is not
enough: a failed job's error, a server whose last job is now another one, or a server that
vanished. The number of calls depends on the active jobs, never on who is watching: browsers
read the database only.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from dashboard import inventory
from dashboard.cloud import records
from dashboard.cloud.errors import CloudError
from dashboard.models import Rollout, RolloutServer
from dashboard.rollouts import lifecycle
from dashboard.rollouts.maintenance import leave_maintenance
from dashboard.rollouts.reread import reread_servers

log = logging.getLogger(__name__)

CHANGE_IMAGE = "CHANGE_SERVER_IMAGE"
# How long an `unknown` row may show no trace of its job before we call it not accepted.
RECONCILE_GRACE = timedelta(minutes=2)
# Clock skew allowed between our submission time and the cloud's job_time.
SKEW = timedelta(minutes=2)
ORPHAN_MARGIN = timedelta(seconds=30)
TRACKED = (RolloutServer.State.WAITING, RolloutServer.State.RUNNING, RolloutServer.State.UNKNOWN)


def track(rollout: Rollout, client) -> None:
    """Bring the rollout's active rows up to date from the cloud (engine.tick calls this)."""
    _orphaned_claims_to_unknown(rollout)
    rows = list(rollout.servers.filter(state__in=TRACKED))
    if rows:
        try:
            _track(rows, client)
        except CloudError as exc:
            log.warning("rollout %s refresh failed, will try again: %s", rollout.pk, exc)
    leave_maintenance(rollout, client)


def _orphaned_claims_to_unknown(rollout: Rollout) -> None:
    """Rows claimed by a worker that died mid-call: it may have sent them, so reconcile."""
    timeout = settings.HUAWEICLOUD["CONNECT_TIMEOUT"] + settings.HUAWEICLOUD["READ_TIMEOUT"]
    cutoff = timezone.now() - timedelta(seconds=timeout) - ORPHAN_MARGIN
    for row in rollout.servers.filter(state=RolloutServer.State.SUBMITTING, updated_at__lt=cutoff):
        RolloutServer.objects.filter(pk=row.pk, state=RolloutServer.State.SUBMITTING).update(
            state=RolloutServer.State.UNKNOWN,
            submitted_at=row.submitted_at or row.updated_at,
            error_message="The worker stopped while sending; reconciling.",
        )


def _track(rows: list[RolloutServer], client) -> None:
    """Write only the rows whose state moved, so the live page sends only those."""
    now = timezone.now()
    fresh = reread_servers(client, rows)
    unchanged = []
    for row in rows:
        update = _judge(row, fresh.get(row.server_id), client, now)
        if any(getattr(row, field) != value for field, value in update.items()):
            update["last_checked_at"] = now
            RolloutServer.objects.filter(pk=row.pk, state=row.state).update(**update)
        else:
            unchanged.append(row.pk)
    # One statement for the rest; updated_at stays put, so pollers are not sent them again.
    RolloutServer.objects.filter(pk__in=unchanged).update(
        last_checked_at=now, updated_at=F("updated_at")
    )
    if rows:
        Rollout.objects.filter(pk=rows[0].rollout_id).update(last_checked_at=now)


def _judge(row: RolloutServer, server: records.Server | None, client, now) -> dict:
    if row.state == RolloutServer.State.UNKNOWN:
        return _reconcile(row, server, now)
    if server is not None and server.job_id == row.job_id:
        return _from_status(row, server.job_status, server, client, now)
    # The server is gone, or its last job is another one: ask the job itself.
    job = _show_job(client, row.job_id)
    if job is None:
        return (
            _failed(
                "JOB_VANISHED", "The job vanished upstream and the server no longer shows it.", now
            )
            if server is None
            else _by_image(row, server, now)
        )
    return _from_status(row, job.status, server, client, now, job=job)


def _reconcile(row: RolloutServer, server: records.Server | None, now) -> dict:
    """Decide an `unknown` row from the server's last-job fields, never by resending."""
    if (
        server is not None
        and server.job_type == CHANGE_IMAGE
        and server.job_time
        and (row.submitted_at is None or server.job_time >= row.submitted_at - SKEW)
    ):
        return {
            "state": _STATE[server.job_status],
            "job_id": server.job_id,
            "error_code": "",
            "error_message": "",
        }
    if row.submitted_at and now - row.submitted_at < RECONCILE_GRACE:
        return {}
    return _failed(
        "NOT_ACCEPTED",
        "The cloud shows no job for this server after an "
        "ambiguous answer; it was not changed. Retry it.",
        now,
    )


_STATE = {
    "WAITING": RolloutServer.State.WAITING,
    "RUNNING": RolloutServer.State.RUNNING,
    "SUCCESS": RolloutServer.State.SUCCEEDED,
    "FAILED": RolloutServer.State.FAILED,
}


def _from_status(row, status: str, server, client, now, job: records.Job | None = None) -> dict:
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
        job = job or _show_job(client, row.job_id)
        code, message = _job_error(job, row.server_id)
        update |= {"finished_at": now, "error_code": code, "error_message": message}
    return update


def _by_image(row: RolloutServer, server: records.Server, now) -> dict:
    if server.image_id == row.to_image_id:
        return {"state": RolloutServer.State.SUCCEEDED, "finished_at": now, "verified": True}
    return _failed(
        "JOB_VANISHED", "The job vanished upstream and the server still runs its old image.", now
    )


def _failed(code: str, message: str, now) -> dict:
    return {
        "state": RolloutServer.State.FAILED,
        "error_code": code,
        "error_message": message,
        "finished_at": now,
    }


def _show_job(client, job_id: str) -> records.Job | None:
    if not job_id:
        return None
    try:
        return client.show_job(job_id)
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
    return "JOB_FAILED", "The image change job failed."


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
        inventory.request_sync("rollout")
    rollout.refresh_from_db()
    return rollout.state
