"""The numbers on the rollout page and in the exports: counts per state, progress, elapsed and
remaining time, and the honest outcome ("Completed with 4 failed", "Cancelled after 3 of 8").

Only servers whose change finished (succeeded or failed) count as done: skipped and cancelled
servers were never changed.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from dashboard.models import Rollout, RolloutServer

DONE = ("succeeded", "failed")


@dataclass(frozen=True)
class Summary:
    counts: dict[str, int]
    total: int  # every row of the rollout, whatever its verdict
    to_change: int  # servers the rollout means to change (skipped when sent: not counted)
    done: int  # changes finished: succeeded or failed
    elapsed: timedelta | None
    remaining: timedelta | None  # only while running
    slow: int
    unverified: int
    outcome: str

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.to_change) if self.to_change else 100

    def share(self, state: str) -> float:
        if not self.to_change:
            return 0.0
        return round(100 * self.counts.get(state, 0) / self.to_change, 2)


def summary(rollout: Rollout) -> Summary:
    """Two aggregate queries, whatever the size of the rollout."""
    counts = dict(
        rollout.servers.values_list("state").annotate(n=Count("id")).values_list("state", "n")
    )
    flags = rollout.servers.aggregate(
        slow=Count("id", filter=Q(slow=True, state__in=RolloutServer.ACTIVE_STATES)),
        unverified=Count("id", filter=Q(state="succeeded", verified=False)),
        to_change=Count("id", filter=Q(verdict="change") & ~Q(state="skipped")),
    )
    done = sum(counts.get(s, 0) for s in DONE)
    end = rollout.finished_at or timezone.now()
    elapsed = end - rollout.started_at if rollout.started_at else None
    remaining = None
    if elapsed and done and rollout.state == Rollout.State.RUNNING:
        left = sum(counts.get(s, 0) for s in RolloutServer.ACTIVE_STATES)
        remaining = elapsed / done * left
    return Summary(
        counts=counts,
        total=sum(counts.values()),
        to_change=flags["to_change"],
        done=done,
        elapsed=elapsed,
        remaining=remaining,
        slow=flags["slow"],
        unverified=flags["unverified"],
        outcome=outcome(rollout.state, done, flags["to_change"], counts.get("failed", 0)),
    )


def outcome(state: str, done: int, to_change: int, failed: int) -> str:
    """One honest line for the rollout as it stands."""
    S = Rollout.State
    if state in (S.SUCCEEDED, S.FAILED):
        if not failed:
            return _("Completed")
        return ngettext("Completed with %(n)d failed", "Completed with %(n)d failed", failed) % {
            "n": failed
        }
    if state == S.CANCELLED:
        return _("Cancelled after %(done)d of %(total)d") % {"done": done, "total": to_change}
    if state == S.HALTED:
        return _("Halted")
    if state == S.DISCARDED:
        return _("Discarded")
    return ngettext(
        "%(done)d of %(total)d server done",
        "%(done)d of %(total)d servers done",
        to_change,
    ) % {"done": done, "total": to_change}
