"""Maintenance mode around a change: on before a wave is sent (no new sessions), off once a
server's change succeeded and was verified."""

import logging

from dashboard import audit
from dashboard.cloud.errors import CloudError
from dashboard.models import Rollout, RolloutServer

log = logging.getLogger(__name__)


def enter_maintenance(rollout: Rollout, client, wave: int) -> None:
    """Drain the wave's servers: maintenance mode gives them no new sessions."""
    rows = rollout.servers.filter(
        wave=wave, state=RolloutServer.State.PENDING, maintenance_set=False
    )
    ids = list(rows.values_list("server_id", flat=True))
    if not ids:
        return
    client.batch_change_maintain(ids, True)
    rows.update(maintenance_set=True)
    audit.record_for_rollout(
        rollout,
        "api.batch_maint",
        servers=len(ids),
        maintain=True,
    )


def leave_maintenance(rollout: Rollout, client) -> None:
    """Clear maintenance mode on servers whose change succeeded and was verified."""
    done = rollout.servers.filter(
        state=RolloutServer.State.SUCCEEDED, verified=True, maintenance_set=True
    )
    ids = list(done.values_list("server_id", flat=True))
    if not ids:
        return
    try:
        client.batch_change_maintain(ids, False)
    except CloudError as exc:
        log.warning("rollout %s: could not clear maintenance: %s", rollout.pk, exc)
        return
    done.update(maintenance_set=False)
    audit.record_for_rollout(rollout, "api.batch_maint", servers=len(ids), maintain=False)
