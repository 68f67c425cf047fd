"""The numbers on the rollout page: counts per state, progress, elapsed and remaining time."""

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count
from django.utils import timezone

from dashboard.models import Rollout, RolloutServer

DONE = ("succeeded", "failed", "skipped", "cancelled")


@dataclass(frozen=True)
class Summary:
    counts: dict[str, int]
    total: int
    to_change: int
    done: int
    elapsed: timedelta | None
    remaining: timedelta | None
    slow: int
    unverified: int

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 100

    def share(self, state: str) -> float:
        return round(100 * self.counts.get(state, 0) / self.total, 2) if self.total else 0.0


def summary(rollout: Rollout) -> Summary:
    """Two aggregate queries, whatever the size of the rollout."""
    counts = dict(
        rollout.servers.values_list("state").annotate(n=Count("id")).values_list("state", "n")
    )
    from django.db.models import Q

    flags = rollout.servers.aggregate(
        slow=Count("id", filter=Q(slow=True, state__in=RolloutServer.ACTIVE_STATES)),
        unverified=Count("id", filter=Q(state="succeeded", verified=False)),
        to_change=Count("id", filter=Q(verdict="change")),
    )
    total = sum(counts.values())
    done = sum(counts.get(s, 0) for s in DONE)
    end = rollout.finished_at or timezone.now()
    elapsed = end - rollout.started_at if rollout.started_at else None
    remaining = None
    finished_changes = counts.get("succeeded", 0) + counts.get("failed", 0)
    if elapsed and finished_changes and not rollout.is_final:
        left = sum(counts.get(s, 0) for s in RolloutServer.ACTIVE_STATES)
        remaining = elapsed / finished_changes * left
    return Summary(
        counts,
        total,
        flags["to_change"],
        done,
        elapsed,
        remaining,
        flags["slow"],
        flags["unverified"],
    )
