"""What every rollout fault scenario asserts, beyond the task layer's invariants (scenario.py):
each row final and explained, and every cloud write audited before it was sent."""

import time
from collections import Counter
from typing import Any

from dashboard.models import AuditEvent, Rollout, RolloutServer
from tests.faults.procs import Child, start_worker
from tests.faults.scenario import CHANGE_PATH, WORKER_ENV, Scenario

MAINT_PATH = "/app-servers/actions/batch-maint"
# Faster give-ups than production, so a stalled cloud costs seconds, not minutes.
ROLLOUT_ENV = {
    **WORKER_ENV,
    "HUAWEICLOUD_RETRY_DEADLINE": "6",
    "ROLLOUT_IDLE_TICK_SECONDS": "2",
}


def worker(scenario: Scenario, name: str, **env: str) -> Child:
    child = start_worker(scenario.tmp_path, scenario.sim, name=name, **{**ROLLOUT_ENV, **env})
    scenario.workers.append(child)
    return child


def rows(rollout: Rollout):
    return RolloutServer.objects.filter(rollout_id=rollout.pk, verdict="change")


def assert_no_server_twice(sim: Any) -> None:
    accepted = Counter(
        s
        for r in sim.requests("POST", CHANGE_PATH)
        if r.get("status") == 200
        for s in r["body"]["server_ids"]
    )
    twice = sorted(s for s, n in accepted.items() if n > 1)
    assert not twice, f"servers processed twice: {twice}"


def assert_every_row_explained(rollout: Rollout, planned: set[str]) -> Counter:
    """Every planned row is still there, final, and says why it ended as it did."""
    found = list(rows(rollout))
    assert {r.server_id for r in found} == planned, "a row was lost"
    states = Counter(r.state for r in found)
    assert set(states) <= set(RolloutServer.FINAL_STATES), f"rows not final: {states}"
    for row in found:
        assert row.finished_at is not None, f"{row.server_id} {row.state} has no end time"
        if row.state == "succeeded":
            assert row.verified is True, f"{row.server_id} succeeded unverified"
        if row.state == "failed":
            assert row.error_code and row.error_message, f"{row.server_id} failed unexplained"
    return states


def assert_cloud_writes_audited(sim: Any, rollout: Rollout) -> None:
    """Every image-change call the cloud saw (answered or not) was announced in the audit
    before it was sent, with exactly its servers."""
    intents = Counter(
        frozenset(e.details["server_ids"])
        for e in AuditEvent.objects.filter(rollout=rollout, action="api.batch_change_image.intent")
    )
    calls = Counter(frozenset(r["body"]["server_ids"]) for r in sim.requests("POST", CHANGE_PATH))
    missing = {tuple(sorted(k)): n for k, n in calls.items() if intents[k] < n}
    assert not missing, f"image-change calls without an audited intent: {missing}"
    outcomes = AuditEvent.objects.filter(rollout=rollout, action="api.batch_change_image")
    assert outcomes.count() >= 1


def print_figures(sim: Any, rollout: Rollout, since: float) -> None:
    """One line of figures per scenario (run with -s to see them): rows, calls, recovery."""
    posts = sim.requests("POST", CHANGE_PATH)
    audit = Counter(AuditEvent.objects.filter(rollout=rollout).values_list("action", flat=True))
    results = Counter(
        e.details.get("result")
        for e in AuditEvent.objects.filter(rollout=rollout, action="api.batch_change_image")
    )
    states = dict(Counter(rows(rollout).values_list("state", flat=True)))
    print(
        f"\nFIGURES rows={rows(rollout).count()} states={states} "
        f"change_calls={len(posts)} answered={sum(1 for p in posts if p.get('status') == 200)} "
        f"results={dict(results)} resends={audit['rows.resend']} orphaned={audit['rows.orphaned']} "
        f"deferred={audit['rows.send_deferred']} reconciled={audit['rows.reconciled']} "
        f"final_after={time.monotonic() - since:.1f}s"
    )
