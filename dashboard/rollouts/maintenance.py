"""Maintenance mode around a change: on before a wave is sent (no new sessions), off once a
server's change succeeded and was verified.

Each call is audited before it is sent (`api.batch_maint.intent`) and after
(`api.batch_maint`, with its outcome), so a crash between the two shows.
"""

import logging
import uuid

from dashboard import audit
from dashboard.cloud.errors import CloudError
from dashboard.models import Rollout, RolloutServer

log = logging.getLogger(__name__)


def enter_maintenance(rollout: Rollout, client, wave: int) -> None:
    """Drain the wave's servers: maintenance mode gives them no new sessions.

    Raises CloudError when the cloud failed; the rows stay unmarked and the next tick tries
    again (setting maintenance mode twice is harmless).
    """
    rows = rollout.servers.filter(
        wave=wave, state=RolloutServer.State.PENDING, maintenance_set=False
    )
    ids = list(rows.values_list("server_id", flat=True))
    if not ids:
        return
    _call(rollout, client, ids, True, wave=wave)
    rows.update(maintenance_set=True)


def leave_maintenance(rollout: Rollout, client) -> CloudError | None:
    """Clear maintenance mode on servers whose change succeeded and was verified. Returns the
    cloud failure, if any (the next tick tries again)."""
    done = rollout.servers.filter(
        state=RolloutServer.State.SUCCEEDED, verified=True, maintenance_set=True
    )
    ids = list(done.values_list("server_id", flat=True))
    if not ids:
        return None
    try:
        _call(rollout, client, ids, False)
    except CloudError as exc:
        log.warning("rollout %s: could not clear maintenance: %s", rollout.pk, exc)
        return exc
    done.update(maintenance_set=False)
    return None


def _call(rollout: Rollout, client, ids: list[str], maintain: bool, **details) -> None:
    call = uuid.uuid4().hex[:12]
    audit.record_for_rollout(
        rollout, "api.batch_maint.intent", call=call, maintain=maintain, server_ids=ids, **details
    )
    try:
        client.batch_change_maintain(ids, maintain)
    except CloudError as exc:
        audit.record_for_rollout(
            rollout,
            "api.batch_maint",
            outcome=audit.ERROR,
            call=call,
            maintain=maintain,
            servers=len(ids),
            status=exc.status,
            error_code=exc.error_code,
            request_id=exc.request_id,
        )
        raise
    audit.record_for_rollout(
        rollout, "api.batch_maint", call=call, maintain=maintain, servers=len(ids), **details
    )
