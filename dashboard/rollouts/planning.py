"""Plan a rollout, store the plan, and confirm exactly that plan.

A plan is a Rollout in state `planned` with one row per selected server and its verdict.
Confirming re-judges every server against the current inventory: if any verdict changed
(the inventory moved, or another rollout took a server) the plan is refused as stale and
discarded, and the operator is offered a fresh one. Confirming twice (double-click,
replay) finds the rollout no longer `planned` and changes nothing.
"""

from collections import Counter
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from dashboard import compat
from dashboard.models import Image, Rollout, RolloutServer, Server, ServerGroup
from dashboard.rollouts.facts import servers_in_active_rollouts, verdicts

CHUNK_SIZE = 50  # batch-change-image accepts at most 50 servers a call


@dataclass(frozen=True)
class TargetOption:
    image: Image
    compatible: int
    selected: int

    @property
    def label(self) -> str:
        return (
            f"{self.image.name} · {self.image.get_image_type_display()} · "
            f"compatible with {self.compatible} of {self.selected} selected"
        )


def image_map() -> dict[str, Image]:
    return {i.id: i for i in Image.objects.all()}


def target_options(servers: list[Server], images: dict[str, Image]) -> list[TargetOption]:
    """Images compatible with at least one selected server, most compatible first."""
    busy = servers_in_active_rollouts(s.id for s in servers)
    options = []
    for image in images.values():
        if image.gone:
            continue
        judged = verdicts(servers, image, images, busy)
        compatible = sum(1 for v in judged.values() if v.ok)
        if compatible:
            options.append(TargetOption(image, compatible, len(servers)))
    return sorted(options, key=lambda o: (-o.compatible, o.image.name.lower()))


def default_target(servers: list[Server]) -> str:
    """The selected servers' group image (the most common one across their groups)."""
    counts = Counter(s.group.image_id for s in servers if s.group and s.group.image_id)
    return counts.most_common(1)[0][0] if counts else ""


def create_plan(
    *,
    created_by: str,
    servers: list[Server],
    target: Image,
    images: dict[str, Image],
    reason: str,
    update_access_agent: bool = False,
    use_maintenance: bool = False,
    retry_of: Rollout | None = None,
) -> Rollout:
    """Store a plan: the rollout and one row per server, in one transaction."""
    busy = servers_in_active_rollouts(s.id for s in servers)
    judged = verdicts(servers, target, images, busy)
    ordered = sorted(servers, key=lambda s: (s.group.name if s.group else "", s.name, s.id))
    with transaction.atomic():
        rollout = Rollout.objects.create(
            created_by=created_by,
            reason=reason,
            target_image_id=target.id,
            target_image_name=target.name,
            target_image_type=target.image_type,
            target_os_type=target.os_type,
            target_product_id=target.product_code,
            update_access_agent=update_access_agent,
            use_maintenance=use_maintenance,
            retry_of=retry_of,
        )
        RolloutServer.objects.bulk_create(
            _plan_rows(rollout, ordered, judged, images), batch_size=500
        )
    return rollout


def _plan_rows(rollout, servers, judged, images) -> list[RolloutServer]:
    rows, changing = [], 0
    for server in servers:
        verdict = judged[server.id]
        headline = verdict.reason
        chunk = 0
        if verdict.ok:
            chunk = changing // CHUNK_SIZE + 1
            changing += 1
        current = images.get(server.image_id)
        rows.append(
            RolloutServer(
                rollout=rollout,
                server_id=server.id,
                server_name=server.name,
                group_id=server.group_id or "",
                group_name=server.group.name if server.group else "",
                from_image_id=server.image_id,
                from_image_name=current.name if current else "",
                to_image_id=rollout.target_image_id,
                verdict=verdict.action,
                reason_code=headline.code if headline else "",
                reason_message="; ".join(r.message for r in verdict.reasons)[:500],
                warnings=[{"code": w.code, "message": w.message} for w in verdict.warnings],
                session_count=server.session_count,
                chunk=chunk,
            )
        )
    return rows


@dataclass(frozen=True)
class Confirmation:
    rollout: Rollout
    confirmed: bool  # this call confirmed it (False: replay, or stale)
    stale: list[str]  # why the plan is stale, one line per server; empty if it is not


def confirm(rollout_id: int, confirmed_by: str) -> Confirmation:
    """Confirm a stored plan exactly as planned, or refuse it as stale."""
    with transaction.atomic():
        rollout = Rollout.objects.select_for_update().get(pk=rollout_id)
        if rollout.state != Rollout.State.PLANNED:
            return Confirmation(rollout, False, [])
        stale = _stale_reasons(rollout)
        if not stale:
            try:
                with transaction.atomic():
                    _hold_servers(rollout)
            except IntegrityError:
                # The partial unique index: another rollout took a server meanwhile.
                stale = ["Another rollout took one of these servers meanwhile."]
        if stale:
            rollout.state = Rollout.State.DISCARDED
            rollout.save(update_fields=["state", "updated_at"])
            return Confirmation(rollout, False, stale)
        rollout.state = _state_after_confirm(rollout)
        rollout.confirmed_by = confirmed_by
        rollout.confirmed_at = timezone.now()
        rollout.save(update_fields=["state", "confirmed_by", "confirmed_at", "updated_at"])
        if rollout.state == Rollout.State.QUEUED:
            transaction.on_commit(partial(enqueue_submit, rollout.pk))
    return Confirmation(rollout, True, [])


def _hold_servers(rollout: Rollout) -> None:
    rows = RolloutServer.objects.filter(rollout=rollout, state=RolloutServer.State.PLANNED)
    rows.filter(verdict=RolloutServer.Verdict.CHANGE).update(state=RolloutServer.State.PENDING)
    rows.exclude(verdict=RolloutServer.Verdict.CHANGE).update(state=RolloutServer.State.SKIPPED)


def _state_after_confirm(rollout: Rollout) -> str:
    from dashboard.roles import needs_second_approval

    groups = set(rollout.servers.values_list("group_id", "group_name").distinct())
    if needs_second_approval({g for pair in groups for g in pair if g}):
        return Rollout.State.AWAITING_APPROVAL
    return Rollout.State.QUEUED


def _stale_reasons(rollout: Rollout) -> list[str]:
    """Re-judge every planned server against the inventory as it is now."""
    rows = list(rollout.servers.all())
    servers = Server.objects.select_related("group").in_bulk([r.server_id for r in rows])
    images = image_map()
    target = images.get(rollout.target_image_id)
    present = [servers[r.server_id] for r in rows if r.server_id in servers]
    busy = servers_in_active_rollouts(servers, exclude_rollout=rollout.pk)
    now = verdicts(present, target, images, busy)
    reasons = []
    for row in rows:
        server = servers.get(row.server_id)
        verdict = now.get(row.server_id) or compat.Verdict(
            compat.BLOCKED, (compat.reason(compat.SERVER_GONE),)
        )
        if server is not None and server.image_id != row.from_image_id:
            reasons.append(f"{row.server_name}: its image changed since the plan was made.")
        elif verdict.action != row.verdict:
            why = verdict.reason.message if verdict.reason else "now compatible"
            reasons.append(
                f"{row.server_name}: was “{row.verdict}”, now “{verdict.action}” ({why})"
            )
    return reasons


def enqueue_submit(rollout_id: int) -> None:
    from dashboard import tasks

    tasks.submit_rollout.enqueue(rollout_id)


def approve(rollout_id: int, approved_by: str) -> bool:
    """Release a rollout that waits for a second person. True if this call approved it."""
    with transaction.atomic():
        updated = Rollout.objects.filter(
            pk=rollout_id, state=Rollout.State.AWAITING_APPROVAL
        ).update(state=Rollout.State.QUEUED, approved_by=approved_by, approved_at=timezone.now())
        if updated:
            transaction.on_commit(partial(enqueue_submit, rollout_id))
    return bool(updated)


def max_servers() -> int:
    return settings.ROLLOUT_MAX_SERVERS


def group_names(servers: list[Server]) -> list[str]:
    return sorted({s.group.name for s in servers if s.group})


def groups_of(servers: list[Server]) -> list[ServerGroup]:
    return list({s.group_id: s.group for s in servers if s.group}.values())
