"""Plan a rollout, store the plan, and confirm exactly that plan.

A plan is a Rollout in state `planned` with one row per selected server and its verdict.
Confirming re-judges every server against the current inventory: if any verdict changed
(the inventory moved, or another rollout took a server) the plan is refused as stale and
discarded, and the operator is offered a fresh one. Confirming twice (double-click,
replay) finds the rollout no longer `planned` and changes nothing.
"""

import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from dashboard import compat
from dashboard.models import Image, Rollout, RolloutServer, RolloutWave, Server
from dashboard.rollouts.facts import servers_in_active_rollouts, verdicts

if TYPE_CHECKING:
    from dashboard.forms import RolloutForm

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


@dataclass(frozen=True)
class Safety:
    """How carefully a rollout proceeds. Amounts are a count ("5") or a share ("10%")."""

    canary: str = ""
    wave_size: str = ""
    soak_seconds: int = 0
    failure_budget: str = ""
    session_policy: str = Rollout.SessionPolicy.NONE
    canary_session_policy: str = ""  # "": as the other waves
    session_wait_seconds: int = 900
    logoff_delay_seconds: int = 300
    logoff_message: str = ""
    scheduled_at: datetime | None = None
    start_below_sessions: int | None = None

    @classmethod
    def of(cls, rollout: Rollout) -> "Safety":
        """The safety settings of an existing rollout, for a fresh plan of the same change."""
        return cls(
            canary=str(rollout.canary_size or ""),
            wave_size=str(rollout.wave_size or ""),
            soak_seconds=rollout.soak_seconds,
            failure_budget="" if rollout.failure_budget is None else str(rollout.failure_budget),
            session_policy=rollout.session_policy,
            canary_session_policy=_canary_policy(rollout),
            session_wait_seconds=rollout.session_wait_seconds,
            logoff_delay_seconds=rollout.logoff_delay_seconds,
            logoff_message=rollout.logoff_message,
            scheduled_at=rollout.scheduled_at,
            start_below_sessions=rollout.start_below_sessions,
        )


def resolve_amount(spec: str, total: int) -> int | None:
    """ "10%" of 40 → 4 (at least 1), "7" → 7, "" → None. Raises ValueError when malformed."""
    spec = (spec or "").strip()
    if not spec:
        return None
    if spec.endswith("%"):
        share = float(spec[:-1])
        if not 0 <= share <= 100:
            raise ValueError("a percentage must be between 0 and 100")
        return max(1, math.ceil(total * share / 100)) if share and total else 0
    count = int(spec)
    if count < 0:
        raise ValueError("a count must not be negative")
    return count


def create_plan(
    *,
    created_by: str,
    servers: list[Server],
    target: Image | None,
    images: dict[str, Image],
    reason: str,
    update_access_agent: bool = False,
    use_maintenance: bool = False,
    retry_of: Rollout | None = None,
    safety: Safety | None = None,
    targets: dict[str, Image] | None = None,
    kind: str = "change",
) -> Rollout:
    """Store a plan: the rollout and one row per server, in one transaction.

    `target` is the image for every server; a revert passes `targets` (server id → image)
    instead, and its API calls are then grouped per image.
    """
    safety = safety or Safety()
    busy = servers_in_active_rollouts(s.id for s in servers)
    targets = targets or {s.id: target for s in servers}
    judged = (
        {s.id: verdicts([s], targets.get(s.id), images, busy)[s.id] for s in servers}
        if kind == "revert"
        else verdicts(servers, target, images, busy)
    )
    ordered = sorted(servers, key=lambda s: (s.group.name if s.group else "", s.name, s.id))
    changing = sum(1 for v in judged.values() if v.ok)
    shown = target or next(iter(targets.values()), None)
    with transaction.atomic():
        rollout = Rollout.objects.create(
            created_by=created_by,
            reason=reason,
            kind=kind,
            target_image_id=target.id if target else "",
            target_image_name=target.name if target else "previous images",
            target_image_type=shown.image_type if shown else "",
            target_os_type=shown.os_type if shown else "",
            target_product_id=target.product_code if target else "",
            update_access_agent=update_access_agent,
            use_maintenance=use_maintenance,
            retry_of=retry_of,
            canary_size=resolve_amount(safety.canary, changing) or 0,
            wave_size=resolve_amount(safety.wave_size, changing) or 0,
            soak_seconds=safety.soak_seconds,
            failure_budget=resolve_amount(safety.failure_budget, changing),
            session_policy=safety.session_policy,
            session_wait_seconds=safety.session_wait_seconds,
            logoff_delay_seconds=safety.logoff_delay_seconds,
            logoff_message=safety.logoff_message,
            scheduled_at=safety.scheduled_at,
            start_below_sessions=safety.start_below_sessions,
        )
        rows = _plan_rows(rollout, ordered, judged, images, targets)
        waves = assign_waves(
            rollout, [r for r in rows if r.verdict == "change"], safety.canary_session_policy
        )
        RolloutServer.objects.bulk_create(rows, batch_size=500)
        RolloutWave.objects.bulk_create(waves)
    return rollout


def _plan_rows(rollout, servers, judged, images, targets) -> list[RolloutServer]:
    rows = []
    for server in servers:
        verdict = judged[server.id]
        headline = verdict.reason
        current = images.get(server.image_id)
        target = targets.get(server.id)
        rows.append(
            RolloutServer(
                rollout=rollout,
                server_id=server.id,
                server_name=server.name,
                group_id=server.group_id or "",
                group_name=server.group.name if server.group else "",
                from_image_id=server.image_id,
                from_image_name=current.name if current else "",
                to_image_id=target.id if target else "",
                verdict=verdict.action,
                reason_code=headline.code if headline else "",
                reason_message="; ".join(r.message for r in verdict.reasons)[:500],
                warnings=[{"code": w.code, "message": w.message} for w in verdict.warnings],
                session_count=server.session_count,
            )
        )
    return rows


def assign_waves(
    rollout: Rollout, changing: list[RolloutServer], canary_policy: str = ""
) -> list[RolloutWave]:
    """Number the waves (canary first) and the ≤50-server API calls inside each wave.

    A call carries one target image, so a revert's calls are grouped per image. Each wave
    treats its users by the rollout's policy, except a canary given a policy of its own.
    """
    sizes = []
    left = len(changing)
    if rollout.canary_size and left:
        sizes.append(min(rollout.canary_size, left))
        left -= sizes[-1]
    while left > 0:
        sizes.append(min(rollout.wave_size or left, left))
        left -= sizes[-1]
    waves, chunk, start = [], 0, 0
    for number, size in enumerate(sizes, start=1):
        members = changing[start : start + size]
        start += size
        by_image: dict[str, list[RolloutServer]] = {}
        for row in members:
            row.wave = number
            by_image.setdefault(row.to_image_id, []).append(row)
        for group in by_image.values():
            for offset in range(0, len(group), CHUNK_SIZE):
                chunk += 1
                for row in group[offset : offset + CHUNK_SIZE]:
                    row.chunk = chunk
        policy = rollout.session_policy
        if number == 1 and rollout.canary_size and canary_policy:
            policy = canary_policy
        waves.append(RolloutWave(rollout=rollout, number=number, size=size, session_policy=policy))
    return waves


def _canary_policy(rollout: Rollout) -> str:
    if not rollout.canary_size:
        return ""
    first = rollout.waves.filter(number=1).values_list("session_policy", flat=True).first()
    return "" if first in (None, rollout.session_policy) else first


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
    busy = servers_in_active_rollouts(servers, exclude_rollout=rollout.pk)
    now = {
        r.server_id: verdicts([servers[r.server_id]], images.get(r.to_image_id), images, busy)[
            r.server_id
        ]
        for r in rows
        if r.server_id in servers
    }
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


def plan_again(
    source: Rollout,
    server_ids: list[str],
    *,
    created_by: str,
    reason: str,
    retry_of: Rollout | None,
    safety: Safety | None = None,
) -> tuple[Rollout | None, "RolloutForm"]:
    """A fresh plan of `server_ids` with `source`'s image and options, through the same form
    an operator fills in (so the same selection checks apply). Returns (plan, form): the plan
    is None, and the form carries the reasons, when the selection is refused."""
    from dashboard.forms import RolloutForm

    form = RolloutForm(
        {
            "server": server_ids,
            "target_image": source.target_image_id,
            "reason": reason,
            "update_access_agent": source.update_access_agent,
            "use_maintenance": source.use_maintenance,
        },
        server_ids=server_ids,
        max_servers=settings.ROLLOUT_MAX_SERVERS,
    )
    if not form.is_valid():
        return None, form
    plan = create_plan(
        created_by=created_by,
        servers=form.servers,
        target=form.target(),
        images=form.images,
        reason=form.cleaned_data["reason"],
        update_access_agent=source.update_access_agent,
        use_maintenance=source.use_maintenance,
        retry_of=retry_of,
        safety=safety,
    )
    return plan, form


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
