"""The numbers on the rollout and plan pages and in the exports: counts per state, progress,
elapsed and remaining time, the honest outcome ("4 of 8 changed, 4 failed", "Cancelled after 3
of 8"), and the same counts per wave and per group.

Only servers whose change finished (succeeded or failed) count as done: skipped and cancelled
servers were never changed. Every function here is a fixed number of aggregate queries, so the
pages cost the same at 50 rows as at 5,000; the rows themselves are paged by the views.
"""

from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlencode

from django.db.models import Count, Max, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from dashboard.models import Image, Rollout, RolloutServer

DONE = ("succeeded", "failed")
# Rows that need someone: the change failed or its outcome is unknown (and blocked rows).
PROBLEM_STATES = ("failed", "unknown")
# Rows held by the rollout but not sent: pending (its wave, a resume or an approval has not
# come) or claimed and being re-read before the call. Only the others are in progress.
NOT_SENT = ("pending", "submitting")
IN_PROGRESS = ("sending", "waiting", "running")


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
    blocked: int = 0  # rows the plan blocked (skipped once the rollout runs)

    @property
    def problems(self) -> int:
        """Rows that need someone: failed, outcome unknown, or blocked by the plan."""
        return sum(self.counts.get(s, 0) for s in PROBLEM_STATES) + self.blocked

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
        blocked=Count("id", filter=Q(verdict=RolloutServer.Verdict.BLOCKED)),
        last_done=Max("finished_at", filter=Q(state__in=DONE)),
    )
    done = sum(counts.get(s, 0) for s in DONE)
    now = timezone.now()
    end = rollout.finished_at or now
    elapsed = end - rollout.started_at if rollout.started_at else None
    remaining = None
    last_done = flags["last_done"]
    if elapsed and done and last_done and rollout.state == Rollout.State.RUNNING:
        # The pace up to the last server done, less the time since: an estimate that shrinks
        # while nothing finishes, rather than one that grows with the clock. None once overdue.
        left = sum(counts.get(s, 0) for s in RolloutServer.ACTIVE_STATES)
        pace = max(last_done - rollout.started_at, timedelta(0)) / done
        estimate = pace * left - (now - last_done)
        remaining = estimate if estimate > timedelta(0) else None
    return Summary(
        counts=counts,
        total=sum(counts.values()),
        to_change=flags["to_change"],
        done=done,
        elapsed=elapsed,
        remaining=remaining,
        slow=flags["slow"],
        unverified=flags["unverified"],
        blocked=flags["blocked"],
        outcome=outcome(rollout.state, done, flags["to_change"], counts.get("failed", 0)),
    )


def outcome(state: str, done: int, to_change: int, failed: int) -> str:
    """One honest line for the rollout as it stands."""
    S = Rollout.State
    if state in (S.SUCCEEDED, S.FAILED):
        # Said in servers, not "completed", so it never reads against the state beside it.
        if failed:
            return _("%(changed)d of %(total)d changed, %(failed)d failed") % {
                "changed": done - failed,
                "total": to_change,
                "failed": failed,
            }
        if not done:
            return _("No server needed changing")
        return ngettext("%(n)d server changed", "All %(n)d servers changed", done) % {"n": done}
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


def problems_q() -> Q:
    """The rows the pages call problems (blocked rows are skipped once the rollout runs)."""
    return Q(state__in=PROBLEM_STATES) | Q(verdict=RolloutServer.Verdict.BLOCKED)


@dataclass
class Tally:
    """The rows of one wave or one group, counted by state (rollout) or verdict (plan)."""

    kind: str  # "wave" or "group": the page filter that lists these rows
    key: int | str
    counts: dict[str, int] = field(default_factory=dict)
    blocked: int = 0  # rows the plan blocked, whatever their state now

    @property
    def scope(self) -> str:
        """The query that lists these rows on the rollout page ("wave=2", "group=office")."""
        return urlencode({self.kind: self.key})

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> int:
        return sum(self.counts.get(s, 0) for s in DONE)

    @property
    def in_flight(self) -> int:
        """Rows sent whose job has not ended, or whose outcome is still unknown."""
        return sum(self.counts.get(s, 0) for s in (*IN_PROGRESS, "unknown"))

    @property
    def problems(self) -> int:
        return sum(self.counts.get(s, 0) for s in PROBLEM_STATES) + self.blocked

    def parts(self) -> list[tuple[str, str]]:
        """The tally in words, each with the row state that lists those rows ("" when they
        are in several states): "48 succeeded", "2 failed", "10 in progress", "5 not sent
        yet", "3 not changed". In progress means sent (or being sent) with its job running;
        a row waiting for its wave, a resume or an approval is not sent yet."""
        n = self.counts.get
        unsent = sum(n(s, 0) for s in NOT_SENT)
        busy = sum(n(s, 0) for s in IN_PROGRESS)
        left = self.total - self.done - busy - unsent - n("unknown", 0)
        found = [
            (n("succeeded", 0), _("%(n)d succeeded"), "succeeded"),
            (n("failed", 0), _("%(n)d failed"), "failed"),
            (n("unknown", 0), _("%(n)d outcome unknown"), "unknown"),
            (busy, _("%(n)d in progress"), ""),
            (unsent, _("%(n)d not sent yet"), "pending" if unsent == n("pending", 0) else ""),
            (left, _("%(n)d not changed"), ""),
        ]
        return [(words % {"n": count}, state) for count, words, state in found if count]


KINDS = {"wave": "wave", "group_name": "group"}


def by_wave(rollout: Rollout) -> dict[int, Tally]:
    """Wave number → its rows by state (wave 0: rows in no wave, skipped or blocked). One
    query."""
    return _tallies(rollout, "wave", "state")


def last_ended(rollout: Rollout, waves: list[int]) -> dict[int, object]:
    """Wave number → when the last of its rows finished, for `waves` (those stopped with
    nothing in flight: the time their jobs all ended, which no wave state records). One
    query, none without waves."""
    if not waves:
        return {}
    ended = (
        rollout.servers.filter(wave__in=waves, finished_at__isnull=False)
        .values_list("wave")
        .annotate(at=Max("finished_at"))
        .order_by()
    )
    return dict(ended)


def by_group(rollout: Rollout, column: str = "state") -> list[Tally]:
    """Each group's rows by state (or, `column="verdict"`, by verdict), by group name. One
    query."""
    return sorted(_tallies(rollout, "group_name", column).values(), key=lambda t: t.key)


def _tallies(rollout: Rollout, key: str, column: str) -> dict:
    """The rollout's rows counted in the database per `key` and `column` (and verdict, so
    that blocked rows are known once they are skipped)."""
    fields = [key, column] if column == "verdict" else [key, column, "verdict"]
    counted = rollout.servers.values_list(*fields).annotate(n=Count("id")).order_by()
    found: dict = {}
    for row in counted:
        tally = found.setdefault(row[0], Tally(KINDS[key], row[0]))
        tally.counts[row[1]] = tally.counts.get(row[1], 0) + row[-1]
        if row[-2] == RolloutServer.Verdict.BLOCKED:
            tally.blocked += row[-1]
    return found


def target_types(rollout: Rollout) -> list[str]:
    """The image types (private, marketplace, …) of the images a plan's changing servers go
    to, for a plan with no one target image (each group's image, a revert). One query."""
    targets = rollout.servers.filter(verdict=RolloutServer.Verdict.CHANGE).values("to_image_id")
    found = Image.objects.filter(project_id=rollout.project_id, id__in=targets)
    return sorted(set(found.values_list("image_type", flat=True)) - {""})


@dataclass(frozen=True)
class PlanFigures:
    """What a plan would do, whatever its size: verdicts, sessions, API calls, and per group
    the images its changing servers come from and go to."""

    counts: dict[str, int]  # verdict → rows
    sessions: int  # user sessions on the servers that change
    calls: int  # batch-change-image calls of at most 50 servers
    groups: list["GroupChange"]


@dataclass
class GroupChange:
    """What a plan does to one group: from which images to which, and how many servers."""

    name: str
    to_images: set[str]
    from_images: set[str]
    id: str = ""  # the group's id (the approval policy names groups by id or name)
    change: int = 0
    skip: int = 0
    blocked: int = 0


def plan_figures(rollout: Rollout) -> PlanFigures:
    """Two aggregate queries."""
    combos = (
        rollout.servers.values_list(
            "group_name", "verdict", "from_image_name", "from_image_id", "to_image_name",
            "to_image_id", "group_id",
        )
        .annotate(n=Count("id"))
        .order_by()
    )  # fmt: skip
    groups: dict[str, GroupChange] = {}
    counts = {v: 0 for v in RolloutServer.Verdict.values}
    for name, verdict, from_name, from_id, to_name, to_id, group_id, n in combos:
        group = groups.setdefault(name, GroupChange(name, set(), set(), group_id))
        setattr(group, verdict, getattr(group, verdict) + n)
        counts[verdict] = counts.get(verdict, 0) + n
        if verdict == RolloutServer.Verdict.CHANGE:
            group.to_images.add(to_name or to_id)
            group.from_images.add(from_name or from_id)
    change = Q(verdict=RolloutServer.Verdict.CHANGE)
    totals = rollout.servers.aggregate(
        sessions=Sum("session_count", filter=change, default=0),
        calls=Count("chunk", distinct=True, filter=Q(chunk__gt=0)),
    )
    return PlanFigures(
        counts=counts,
        sessions=totals["sessions"],
        calls=totals["calls"],
        groups=sorted(groups.values(), key=lambda g: g.name),
    )
