"""Plan a rollout, store the plan, and confirm exactly that plan.

A plan is a Rollout in state `planned` with one row per selected server and its verdict.
The plan page carries a signed token bound to the plan and its fingerprint; a confirm
without a valid, unexpired token for exactly that plan is refused. Confirming re-judges every
server against the current inventory: if any verdict changed (the inventory moved, or another
rollout took a server) the plan is refused as stale and discarded, and the operator is offered
a fresh one. Confirming twice (double-click, replay) finds the rollout no longer `planned` and
changes nothing. A plan nobody confirms expires after PLAN_TTL_SECONDS (`expire_plans`).
"""

import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, OperationalError, connection, transaction
from django.http import HttpRequest
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from dashboard import compat
from dashboard.models import Image, Rollout, RolloutServer, RolloutWave, Server
from dashboard.roles import can_approve, second_person
from dashboard.rollouts import lifecycle
from dashboard.rollouts.facts import server_facts, servers_in_active_rollouts, verdicts
from dashboard.rollouts.policy import needs_second_approval
from dashboard.rollouts.queue import enqueue_start
from dashboard.wording import word_list

CHUNK_SIZE = 50  # batch-change-image accepts at most 50 servers a call


@dataclass(frozen=True)
class TargetOption:
    image: Image
    compatible: int  # selected servers it would change
    selected: int
    already: int = 0  # selected servers already on it (skipped, not incompatible)
    not_now: int = 0  # selected servers blocked whatever the image (busy, frozen, gone, …)

    @property
    def blocked(self) -> int:
        """Selected servers that cannot go to it."""
        return self.selected - self.compatible - self.already - self.not_now

    @property
    def label(self) -> str:
        counts = [_("%(n)d will change") % {"n": self.compatible}, *self._others()]
        return f"{self.image.name} · {self.image.get_image_type_display()} · {word_list(counts)}"

    @property
    def held_back(self) -> str:
        """The servers it would not change, in words ("3 already on it, 2 busy …")."""
        return word_list(self._others())

    def _others(self) -> list[str]:
        counts = []
        if self.already:
            counts.append(_("%(n)d already on it") % {"n": self.already})
        if self.not_now:
            counts.append(_("%(n)d busy or unavailable now") % {"n": self.not_now})
        if self.blocked:
            counts.append(_("%(n)d not compatible") % {"n": self.blocked})
        return counts


# What a plan with no one target image moves its servers to: (not a revert, a revert).
PER_SERVER_TARGET = (gettext_lazy("each group's image"), gettext_lazy("previous images"))


def target_label(rollout: Rollout) -> str:
    """What the rollout moves its servers to, in the reader's language: its image's name, or
    for a plan of one target per server, what those targets are."""
    if rollout.target_image_id:
        return rollout.target_image_name
    return str(PER_SERVER_TARGET[rollout.kind == Rollout.Kind.REVERT])


def not_now_only(verdict: compat.Verdict) -> bool:
    """Blocked only by what holds whatever the image (busy, frozen, gone, in a rollout)."""
    return verdict.action == compat.BLOCKED and all(
        r.code in compat.NOT_NOW for r in verdict.reasons
    )


def image_map(*project_ids: int) -> dict[str, Image]:
    """Images by id: one project's; or, given several, the ids every one of them has (the same
    public image of a region), as the first project's row; or, given none, every project's."""
    if not project_ids:
        return {i.id: i for i in Image.objects.all()}
    rows = list(Image.objects.filter(project_id__in=project_ids))
    if len(project_ids) == 1:
        return {i.id: i for i in rows}
    holders: dict[str, set[int]] = {}
    for image in rows:
        holders.setdefault(image.id, set()).add(image.project_id)
    first = project_ids[0]
    return {i.id: i for i in rows if i.project_id == first and holders[i.id] >= set(project_ids)}


def by_project(servers: list[Server]) -> dict[int, list[Server]]:
    """The servers split by project, in order: a rollout never spans projects."""
    split: dict[int, list[Server]] = {}
    for server in servers:
        split.setdefault(server.project_id, []).append(server)
    return split


_LONG_AGO = datetime.min.replace(tzinfo=UTC)  # an image the cloud gave no creation time


def target_options(servers: list[Server], images: dict[str, Image]) -> list[TargetOption]:
    """Images compatible with at least one selected server: most compatible first, and among
    those that change as many, the newest first (a new image is what an update is for)."""
    busy = servers_in_active_rollouts(s.id for s in servers)
    options = [_option(servers, image, images, busy) for image in images.values() if not image.gone]
    offered = [option for option in options if option.compatible]
    return sorted(
        offered,
        key=lambda o: (
            -o.compatible,
            -(o.image.created_at or _LONG_AGO).timestamp(),
            o.image.name.lower(),
        ),
    )


def unavailable_now(servers: list[Server]) -> int:
    """Selected servers no image can be offered for now (busy, frozen, gone, in a rollout)."""
    busy = servers_in_active_rollouts(s.id for s in servers)
    return sum(
        1 for s in servers if compat.unavailable_now(server_facts(s), in_other_rollout=s.id in busy)
    )


def image_option(servers: list[Server], images: dict[str, Image], image_id: str):
    """The counts of one image for the selection, offered or not (None: no such image):
    why a group's own image is missing from the choices."""
    image = images.get(image_id)
    if image is None or image.gone:
        return None
    return _option(servers, image, images, servers_in_active_rollouts(s.id for s in servers))


def _option(
    servers: list[Server], image: Image, images: dict[str, Image], busy: set[str]
) -> TargetOption:
    judged = verdicts(servers, image, images, busy)
    compatible = sum(1 for v in judged.values() if v.ok)
    # Servers already on the image count apart: the group's own image is not "worst".
    already = sum(1 for v in judged.values() if v.action == compat.SKIP)
    not_now = sum(1 for v in judged.values() if v.reasons and not_now_only(v))
    return TargetOption(image, compatible, len(servers), already, not_now)


def selection_errors(raw_ids: list[str], servers: list[Server], max_servers: int) -> list[str]:
    """Problems with a selection of servers itself: empty, too many, duplicates, unknown."""
    errors = []
    if not raw_ids:
        errors.append(_("Select at least one server."))
    if len(raw_ids) > max_servers:
        errors.append(
            _("%(n)d servers selected; a rollout holds at most %(max)d.")
            % {"n": len(raw_ids), "max": max_servers}
        )
    duplicates = sorted(i for i, n in Counter(raw_ids).items() if n > 1)
    if duplicates:
        errors.append(_("Servers selected twice: %(ids)s.") % {"ids": word_list(duplicates[:5])})
    known = {s.id for s in servers}
    unknown = [i for i in raw_ids[:max_servers] if i not in known]
    if unknown and len(raw_ids) <= max_servers:
        names = _names(unknown[:5])
        errors.append(
            ngettext(
                "%(n)d selected server is unknown or gone: %(ids)s.",
                "%(n)d selected servers are unknown or gone: %(ids)s.",
                len(unknown),
            )
            % {"n": len(unknown), "ids": word_list(names.get(i, i) for i in unknown[:5])}
        )
    return errors


def _names(server_ids: list[str]) -> dict[str, str]:
    """The names the inventory knows for these ids (a gone server keeps its row and name)."""
    return dict(Server.objects.filter(id__in=server_ids).values_list("id", "name"))


def without_gone(
    raw_ids: list[str], names: dict[str, str] | None = None
) -> tuple[list[str], list[str]]:
    """(the ids of the servers still live, in order; what to call the others: the name the
    inventory or `names` knows, else the id). A server deleted in the cloud since it was
    picked is left out of a fresh plan instead of refusing the whole selection."""
    live = set(Server.objects.filter(id__in=raw_ids, gone=False).values_list("id", flat=True))
    gone = [i for i in dict.fromkeys(raw_ids) if i not in live]
    known = (names or {}) | _names(gone) if gone else {}
    return [i for i in raw_ids if i in live], [known.get(i) or i for i in gone]


def selected_servers(raw_ids: list[str], max_servers: int) -> list[Server]:
    """The live servers among the selected ids (at most one more than the maximum)."""
    return list(
        Server.objects.select_related("group").filter(id__in=raw_ids[: max_servers + 1], gone=False)
    )


def default_target(servers: list[Server]) -> str:
    """The selected servers' group image (the most common one across their groups)."""
    counts = Counter(s.group.image_id for s in servers if s.group and s.group.image_id)
    return counts.most_common(1)[0][0] if counts else ""


# The target choice "each server to its own group's image" (not an image id).
GROUP_IMAGES = "group"


def group_images(servers: list[Server]) -> set[str]:
    """The distinct group images of the selected servers' groups."""
    return {s.group.image_id for s in servers if s.group and s.group.image_id}


def group_targets(servers: list[Server], images: dict[str, Image]) -> dict[str, Image | None]:
    """Each server's own group's image (None when its group has none, or it is unknown)."""
    return {
        s.id: images.get(s.group.image_id) if s.group and s.group.image_id else None
        for s in servers
    }


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
    canary_signoff: bool = False  # hold once the canary wave is done, until resumed

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
            canary_signoff=rollout.canary_signoff,
        )

    @classmethod
    def for_retry(cls, rollout: Rollout) -> "Safety":
        """What a retry or a revert of `rollout`'s servers keeps of its care: waves, soak,
        error budget and how users are treated; the wave size and the budget as shares of the
        servers it changed (stored as counts, they would not scale down to a smaller retry).
        Not its canary (those servers were the canary's or past it), its sign-off or its
        start time."""
        total = (
            rollout.servers.filter(verdict=RolloutServer.Verdict.CHANGE)
            .exclude(state=RolloutServer.State.SKIPPED)
            .count()
        )
        return replace(
            cls.of(rollout),
            canary="",
            canary_session_policy="",
            canary_signoff=False,
            scheduled_at=None,
            wave_size=_share(rollout.wave_size or None, total),
            failure_budget=_share(rollout.failure_budget, total),
        )


def _share(count: int | None, total: int) -> str:
    """A count of `total` as the share it is ("10%" for 20 of 200); "" for none."""
    if count is None:
        return ""
    if not total:
        return str(count)
    return f"{min(100.0, 100 * count / total):.6g}%"


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
    targets: dict[str, Image | None] | None = None,
    kind: str = Rollout.Kind.PLAN,
    preset: str = "",
    plan_set: str = "",
) -> Rollout:
    """Store a plan: the rollout and one row per server, in one transaction.

    `target` is the image for every server; a plan per group, or a revert, passes `targets`
    (server id → image) instead, and its API calls are then grouped per image. The servers
    belong to one project (`by_project` splits a selection that spans several); the plan
    belongs to it.
    """
    owners = {s.project_id for s in servers}
    if len(owners) > 1:
        raise ValueError("a rollout never spans projects: split the servers with by_project()")
    owner = {"project_id": owners.pop()} if owners else {}
    if retry_of is not None:
        if owner and owner["project_id"] != retry_of.project_id:
            raise ValueError("a follow-up stays in its rollout's project")
        owner = {"project_id": retry_of.project_id}
    safety = safety or Safety()
    busy = servers_in_active_rollouts(s.id for s in servers)
    per_server = targets is not None
    targets = targets if per_server else {s.id: target for s in servers}
    judged = (
        _judge(servers, targets, images, busy)
        if per_server
        else (verdicts(servers, target, images, busy))
    )
    ordered = sorted(servers, key=lambda s: (s.group.name if s.group else "", s.name, s.id))
    changing = sum(1 for v in judged.values() if v.ok)
    shown = target or next((t for t in targets.values() if t is not None), None)
    if target:
        label = target.name
    else:  # stored in English (exports, the API); pages show target_label()
        with translation.override("en"):
            label = str(PER_SERVER_TARGET[kind == Rollout.Kind.REVERT])
    with transaction.atomic():
        rollout = Rollout.objects.create(
            **owner,
            plan_set=plan_set,
            created_by=created_by,
            reason=reason,
            kind=kind,
            preset=preset[:32],
            canary_signoff=safety.canary_signoff,
            target_image_id=target.id if target else "",
            target_image_name=label,
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
        rollout.plan_fingerprint = fingerprint(rollout, rows)
        rollout.save(update_fields=["plan_fingerprint", "updated_at"])
    return rollout


def _judge(servers, targets, images, busy) -> dict[str, compat.Verdict]:
    """One verdict per server for its own target, judged per target image."""
    by_target: dict[str, list[Server]] = {}
    for server in servers:
        target = targets.get(server.id)
        by_target.setdefault(target.id if target else "", []).append(server)
    judged = {}
    for members in by_target.values():
        judged |= verdicts(members, targets.get(members[0].id), images, busy)
    return judged


def fingerprint(rollout: Rollout, rows: list[RolloutServer]) -> str:
    """What the operator is shown: every row's change, its wave and call, and the options.

    The confirm token is bound to it, so a confirm can only start the plan that was shown.
    """
    facts = {
        "rollout": rollout.pk,
        "target": rollout.target_image_id,
        "options": [rollout.update_access_agent, rollout.use_maintenance, rollout.kind],
        "safety": [
            rollout.canary_size,
            rollout.wave_size,
            rollout.soak_seconds,
            rollout.failure_budget,
            rollout.session_policy,
            rollout.scheduled_at.isoformat() if rollout.scheduled_at else None,
            rollout.start_below_sessions,
            rollout.canary_signoff,
        ],
        "rows": sorted(
            (r.server_id, r.from_image_id, r.to_image_id, r.verdict, r.wave, r.chunk) for r in rows
        ),
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def _plan_rows(rollout, servers, judged, images, targets) -> list[RolloutServer]:
    rows = []
    for server in servers:
        verdict = judged[server.id]
        headline = verdict.reason
        current = images.get(server.image_id)
        target = targets.get(server.id)
        # Sessions are disconnected, and drift made, only on servers that change.
        warnings = [{"code": w.code, "message": w.message} for w in verdict.warnings]
        if verdict.action != compat.CHANGE:
            warnings = []
        elif drift := _drift_warning(server, target, images):
            warnings.append(drift)
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
                to_image_name=target.name if target else "",
                verdict=verdict.action,
                reason_code=headline.code if headline else "",
                reason_message="; ".join(r.message for r in verdict.reasons)[:500],
                warnings=warnings,
                session_count=server.session_count,
            )
        )
    return rows


def _drift_warning(server: Server, target: Image | None, images: dict[str, Image]):
    """A warning when the change puts the server on another image than its group's."""
    group = server.group
    if target is None or group is None or not group.image_id or target.id == group.image_id:
        return None
    name = getattr(images.get(group.image_id), "name", "") or group.image_name or group.image_id
    return {
        "code": "drift",
        "message": _("Not its group's image (%(image)s): the server will drift from %(group)s.")
        % {"image": name, "group": group.name},
    }


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
    confirmed: bool  # this call confirmed it (False: replay, refused, or stale)
    stale: list[str]  # why the plan is stale, one line per server; empty if it is not
    refused: str = ""  # a stable reason code when the confirm itself was refused


CONFIRM_SALT = "dashboard.rollouts.planning.confirm"
# Stable reason codes of a refused confirm (audited, and shown to the operator).
CONFIRM_UNSIGNED = "confirm_token_missing"
CONFIRM_DAMAGED = "confirm_token_invalid"
CONFIRM_TOO_OLD = "confirm_token_expired"
CONFIRM_OTHER_PLAN = "confirm_token_other_plan"
PLAN_EXPIRED = "plan_expired"
NOTHING_TO_CHANGE = "plan.nothing_to_change"
REFUSALS = {
    NOTHING_TO_CHANGE: gettext_lazy(
        "Nothing in this plan would change; there is nothing to confirm."
    ),
    CONFIRM_UNSIGNED: gettext_lazy(
        "This confirm did not come from the plan page; open the plan and confirm it there."
    ),
    CONFIRM_DAMAGED: gettext_lazy(
        "This confirm carries a damaged token; open the plan and confirm it there."
    ),
    CONFIRM_TOO_OLD: gettext_lazy(
        "The plan page was open too long; open the plan again to confirm it."
    ),
    CONFIRM_OTHER_PLAN: gettext_lazy(
        "This confirm was made for another plan than the one stored; open the "
        "plan again to see what would run."
    ),
    PLAN_EXPIRED: gettext_lazy("This plan expired unconfirmed; make a fresh plan."),
}


def confirm_token(rollout: Rollout) -> str:
    """The token the plan page carries: bound to this plan and its fingerprint, timestamped."""
    return signing.dumps({"plan": rollout.pk, "fp": rollout.plan_fingerprint}, salt=CONFIRM_SALT)


def token_refusal(rollout: Rollout, token: str) -> str:
    """Why `token` does not confirm exactly this plan (a reason code), or "" when it does."""
    if not token:
        return CONFIRM_UNSIGNED
    try:
        data = signing.loads(token, salt=CONFIRM_SALT, max_age=settings.PLAN_TTL_SECONDS)
    except signing.SignatureExpired:
        return CONFIRM_TOO_OLD
    except signing.BadSignature:
        return CONFIRM_DAMAGED
    if not isinstance(data, dict):
        return CONFIRM_DAMAGED
    if data.get("plan") != rollout.pk or data.get("fp") != rollout.plan_fingerprint:
        return CONFIRM_OTHER_PLAN
    return ""


def plan_expires_at(rollout: Rollout) -> datetime:
    return rollout.created_at + timedelta(seconds=settings.PLAN_TTL_SECONDS)


def confirm(
    rollout_id: int,
    confirmed_by: str,
    *,
    token: str | None = None,
    request: HttpRequest | None = None,
) -> Confirmation:
    """Confirm a stored plan exactly as planned, or refuse it (nothing to change, token,
    expiry, stale). The plan page and the API both render this answer.

    `token` is checked when given (the view always gives it); worker-side callers that hold
    the plan itself pass None. A rollout no longer `planned` (a replay) is answered
    unconfirmed, with no refusal and nothing stale.
    """
    with transaction.atomic():
        rollout = Rollout.objects.select_for_update().get(pk=rollout_id)
        if rollout.state != Rollout.State.PLANNED:
            return Confirmation(rollout, False, [])
        if not rollout.servers.filter(verdict=RolloutServer.Verdict.CHANGE).exists():
            return Confirmation(rollout, False, [], NOTHING_TO_CHANGE)
        refused = token_refusal(rollout, token) if token is not None else ""
        if not refused and timezone.now() >= plan_expires_at(rollout):
            lifecycle.transition(rollout, "expire", by=confirmed_by, request=request)
            refused = PLAN_EXPIRED
        if refused:
            return Confirmation(rollout, False, [], refused)
        _one_confirm_at_a_time()
        stale = _stale_reasons(rollout)
        if not stale:
            try:
                with transaction.atomic():
                    _hold_servers(rollout)
            except (IntegrityError, OperationalError) as exc:
                if isinstance(exc, OperationalError) and not _lost_a_race(exc):
                    raise
                # The partial unique index: another rollout took a server meanwhile.
                stale = [_("Another rollout took one of these servers meanwhile.")]
        if stale:
            lifecycle.transition(
                rollout,
                "discard",
                by=confirmed_by,
                request=request,
                reason=_("The plan was stale."),
                stale=stale[:20],
            )
            return Confirmation(rollout, False, stale)
        action = _action_after_confirm(rollout)
        lifecycle.transition(
            rollout,
            action,
            by=confirmed_by,
            request=request,
            changes={"confirmed_by": confirmed_by, "confirmed_at": timezone.now()},
            planned_by=rollout.created_by,
            confirmed_by=confirmed_by,
        )
        if rollout.state == Rollout.State.QUEUED:
            transaction.on_commit(partial(enqueue_start, rollout.pk))
    return Confirmation(rollout, True, [])


def discard(rollout_id: int, *, by: str, request: HttpRequest | None = None) -> bool:
    """The operator's Cancel on the plan page: the plan is discarded. True if this call did."""
    rollout = Rollout.objects.get(pk=rollout_id)
    return lifecycle.transition(
        rollout, "discard", by=by, request=request, reason=_("Cancelled on the plan page.")
    )


def expire_plans(now: datetime | None = None) -> int:
    """Worker duty: discard plans left unconfirmed for PLAN_TTL_SECONDS. Returns how many."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.PLAN_TTL_SECONDS)
    expired = 0
    for rollout in Rollout.objects.filter(state=Rollout.State.PLANNED, created_at__lt=cutoff):
        reason = _("Not confirmed within %(s)d seconds.") % {"s": settings.PLAN_TTL_SECONDS}
        expired += lifecycle.transition(rollout, "expire", reason=reason)
    return expired


CONFIRM_LOCK = 0x524F4C4C  # PostgreSQL advisory lock: one confirm holds servers at a time


def _one_confirm_at_a_time() -> None:
    """Confirms run one after the other on PostgreSQL (until their transaction ends).

    Two confirms over the same servers would otherwise add their rows to the one-active-rollout
    index in opposite orders and deadlock (a 500). Now the second waits, then finds the
    servers taken and is refused as a stale plan (409, audited). SQLite already serialises
    writers.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CONFIRM_LOCK])


def _lost_a_race(exc: OperationalError) -> bool:
    """A deadlock or serialization failure: another transaction took the servers first."""
    return getattr(exc.__cause__, "sqlstate", "") in ("40P01", "40001")


def _hold_servers(rollout: Rollout) -> None:
    rows = RolloutServer.objects.filter(rollout=rollout, state=RolloutServer.State.PLANNED)
    rows.filter(verdict=RolloutServer.Verdict.CHANGE).update(state=RolloutServer.State.PENDING)
    rows.exclude(verdict=RolloutServer.Verdict.CHANGE).update(state=RolloutServer.State.SKIPPED)


def _action_after_confirm(rollout: Rollout) -> str:
    return "request_approval" if approval_needed(rollout) is not None else "confirm"


def approval_needed(rollout: Rollout) -> list[str] | None:
    """The names of the plan's protected groups when confirming it waits for a second
    person's approval, else None. One query."""
    return protected_groups(rollout.servers.values_list("group_id", "group_name").distinct())


def protected_groups(groups: Iterable[tuple[str, str]]) -> list[str] | None:
    """Of a plan's groups, (id, name) pairs, the names PROTECTED_SERVER_GROUPS protects when
    the plan needs a second person's approval (`*` protects even servers of no group), else
    None."""
    groups = set(groups)
    if not needs_second_approval({g for pair in groups for g in pair if g}):
        return None
    return sorted({name for gid, name in groups if name and needs_second_approval([gid, name])})


def cannot_approve(rollout: Rollout) -> list[str]:
    """Who may not approve the rollout (roles.second_person): who planned and who confirmed."""
    return list(dict.fromkeys(p for p in (rollout.created_by, rollout.confirmed_by) if p))


def _stale_reasons(rollout: Rollout) -> list[str]:
    """Re-judge every planned server against the inventory as it is now."""
    rows = list(rollout.servers.all())
    servers = Server.objects.select_related("group").in_bulk([r.server_id for r in rows])
    images = image_map(rollout.project_id)
    busy = servers_in_active_rollouts(servers, exclude_rollout=rollout.pk)
    now = {
        r.server_id: verdicts([servers[r.server_id]], images.get(r.to_image_id), images, busy)[
            r.server_id
        ]
        for r in rows
        if r.server_id in servers
    }
    words = dict(RolloutServer.Verdict.choices)
    reasons = []
    for row in rows:
        server = servers.get(row.server_id)
        verdict = now.get(row.server_id) or compat.Verdict(
            compat.BLOCKED, (compat.reason(compat.SERVER_GONE),)
        )
        if server is not None and server.image_id != row.from_image_id:
            reasons.append(
                _("%(server)s: its image changed since the plan was made.")
                % {"server": row.server_name}
            )
        elif verdict.action != row.verdict:
            why = verdict.reason.message if verdict.reason else _("now compatible")
            reasons.append(
                _("%(server)s: was “%(before)s”, now “%(now)s” (%(why)s)")
                % {
                    "server": row.server_name,
                    "before": words.get(row.verdict, row.verdict),
                    "now": words.get(verdict.action, verdict.action),
                    "why": why,
                }
            )
    return reasons


def plan_again(
    source: Rollout,
    server_ids: list[str],
    *,
    created_by: str,
    reason: str,
    retry_of: Rollout | None,
    kind: str = Rollout.Kind.PLAN,
    safety: Safety | None = None,
    reuse: bool = True,
) -> tuple[Rollout | None, list[str]]:
    """A fresh plan of `server_ids` with `source`'s image and options, under the same
    selection checks an operator's choice goes through. Returns (plan, errors): the plan is
    None, and the errors say why, when the selection is refused.

    A follow-up (`retry_of` given) asked for again while one of the same kind and servers is
    still open is answered with that open plan (`reuse`), not a second one beside it.
    """
    max_servers = settings.ROLLOUT_MAX_SERVERS
    raw_ids = [i.strip() for i in server_ids if i.strip()]
    # Only the source's project: another project's server counts as unknown here.
    servers = [
        s for s in selected_servers(raw_ids, max_servers) if s.project_id == source.project_id
    ]
    errors = selection_errors(raw_ids, servers, max_servers)
    if errors:
        return None, errors
    with _one_follow_up_at_a_time(retry_of if reuse else None):
        if reuse and retry_of is not None:
            wanted = {s.id for s in servers}
            for open_plan in open_follow_ups(retry_of, kind):
                if set(open_plan.servers.values_list("server_id", flat=True)) == wanted:
                    return open_plan, []
        return _plan_again(source, servers, created_by, reason, retry_of, kind, safety)


@contextmanager
def _one_follow_up_at_a_time(source: Rollout | None) -> Iterator[None]:
    """Follow-ups of `source` planned one at a time (its row locked; on SQLite the write
    transaction itself), so two retries asked at once find, or make, the same open plan."""
    if source is None:
        yield
        return
    with transaction.atomic():
        list(Rollout.objects.select_for_update().filter(pk=source.pk).values_list("pk"))
        yield


def _plan_again(
    source: Rollout,
    servers: list[Server],
    created_by: str,
    reason: str,
    retry_of: Rollout | None,
    kind: str,
    safety: Safety | None,
) -> tuple[Rollout | None, list[str]]:
    held = unavailable_now(servers)
    if held == len(servers):  # nothing could go whatever the image: say why, not "incompatible"
        return None, [held_back_message(servers)]
    images = image_map(source.project_id)
    target = images.get(source.target_image_id)
    targets = None
    if not source.target_image_id:
        # Planned per server (each group's image, or a revert): the same target per server.
        wanted = dict(source.servers.values_list("server_id", "to_image_id"))
        targets = {s.id: images.get(wanted.get(s.id, "")) for s in servers}
        if not any(v.ok for v in _judge(servers, targets, images, set()).values()):
            return None, [_("None of these servers can go to its image any more.")]
    elif target is None or target.id not in {o.image.id for o in target_options(servers, images)}:
        message = _("The image %(image)s is no longer compatible with any of these servers.")
        return None, [message % {"image": source.target_image_name or source.target_image_id}]
    plan = create_plan(
        created_by=created_by,
        servers=servers,
        target=target if targets is None else None,
        targets=targets,
        preset=source.preset,
        images=images,
        reason=reason[:500],
        update_access_agent=source.update_access_agent,
        use_maintenance=source.use_maintenance,
        retry_of=retry_of,
        safety=safety,
        kind=kind,
    )
    return plan, []


def follows_up(source: Rollout, servers: list[Server]) -> bool:
    """Whether a plan of `servers` may follow `source` up (retry or revert): the source's
    state allows a follow-up (as the retry and revert actions require), and each server is
    one of its servers, in its project."""
    if not lifecycle.allows(source, "retry"):
        return False
    if any(server.project_id != source.project_id for server in servers):
        return False
    own = set(source.servers.values_list("server_id", flat=True))
    return all(server.id in own for server in servers)


def rollouts_holding(servers: list[Server]) -> list[int]:
    """The rollouts that hold any of `servers` in a row not finished, oldest first."""
    rows = RolloutServer.objects.filter(
        server_id__in=[s.id for s in servers], state__in=RolloutServer.ACTIVE_STATES
    )
    return sorted(set(rows.values_list("rollout_id", flat=True)))


def held_back_message(servers: list[Server]) -> str:
    """Why none of `servers` can be planned now, naming the rollouts that hold them: said
    alike by the plan form and a retry."""
    n = len(servers)
    holding = rollouts_holding(servers)
    text = ngettext(
        "The server is busy or unavailable now (a job running, frozen, gone or in another "
        "rollout).",
        "All %(n)d servers are busy or unavailable now (a job running, frozen, gone or in "
        "another rollout).",
        n,
    ) % {"n": n}
    if holding:
        rollouts = word_list(f"#{pk}" for pk in holding)
        text += " " + _("Rollouts holding them: %(rollouts)s.") % {"rollouts": rollouts}
    return f"{text} {_('Try again once that has ended.')}"


def open_follow_ups(source: Rollout, kind: str | None = None) -> list[Rollout]:
    """The follow-up plans of `source` (of `kind`, if given) still open: planned, neither
    confirmed nor discarded, and not yet expired. Newest first."""
    cutoff = timezone.now() - timedelta(seconds=settings.PLAN_TTL_SECONDS)
    plans = source.derived.filter(state=Rollout.State.PLANNED, created_at__gte=cutoff)
    if kind is not None:
        plans = plans.filter(kind=kind)
    return list(plans.order_by("-pk"))


SAME_PERSON = "approval.same_person"  # the code of a refused approval by its own author


@dataclass(frozen=True)
class Approval:
    approved: bool  # this call approved it (False: refused, or a state that does not wait)
    refused: str = ""  # SAME_PERSON when the four-eyes rule refused it


def approve(rollout_id: int, approved_by: str, *, request: HttpRequest | None = None) -> Approval:
    """Release a rollout that waits for a second person, never its own author.

    With a request, the approver is the request's identity (an approver or admin, see
    roles.can_approve); without one, `approved_by` must be a second person all the same
    (roles.second_person: neither who planned nor who confirmed it).
    """
    rollout = Rollout.objects.get(pk=rollout_id)
    if request is not None:
        allowed = can_approve(request, rollout)
    else:
        allowed = second_person(approved_by, rollout)
    if not allowed:
        return Approval(False, SAME_PERSON)
    with transaction.atomic():
        approved = lifecycle.transition(
            rollout,
            "approve",
            by=approved_by,
            request=request,
            changes={"approved_by": approved_by, "approved_at": timezone.now()},
            planned_by=rollout.created_by,
            confirmed_by=rollout.confirmed_by,
        )
        if approved:
            transaction.on_commit(partial(enqueue_start, rollout_id))
    return Approval(approved)
