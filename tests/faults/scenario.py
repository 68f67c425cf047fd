"""One rollout under faults, and the invariants every fault scenario asserts.

The simulator runs in the test process with a manual clock: jobs move only when the test
advances it, so a worker can be killed at a known point (first wave sent, its jobs running,
a tick in flight). Workers are real processes on the test database.
"""

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import connection
from django_tasks_db.models import DBTaskResult

from dashboard import inventory
from dashboard.cloud.client import CloudClient
from dashboard.cloud.config import from_settings
from dashboard.models import Rollout, RolloutServer, Server
from dashboard.rollouts import planning
from tests.faults.procs import Child, start_worker, wait_for
from tests.sim_fixtures import cloud_settings

CHANGE_PATH = "/app-servers/actions/batch-change-image"
FINAL_WITHIN = 120  # seconds: every row final within this once the jobs may finish
WORKER_ENV = {
    "ROLLOUT_REFRESH_SECONDS": "0.3",
    "HUAWEICLOUD_CONNECT_TIMEOUT": "1",
    "HUAWEICLOUD_READ_TIMEOUT": "5",
    "WORKER_STALE_BEATS": "3",
    # Production pacing and breaker (the test settings turn both off for the test process).
    "CLOUD_RATE_LIMITS": "",
    "CLOUD_BREAKER_FAILURES": "5",
    "CLOUD_BREAKER_COOLDOWN": "2",
}


@dataclass
class Scenario:
    sim: Any
    tmp_path: Path
    rollout: Rollout
    changing: set[str]
    workers: list[Child] = field(default_factory=list)

    def start_worker(self, name: str) -> Child:
        child = start_worker(self.tmp_path, self.sim, name=name, **WORKER_ENV)
        self.workers.append(child)
        return child

    def stop_all(self) -> None:
        for child in self.workers:
            child.stop()

    def sent(self) -> list[str]:
        return [s for r in self.sim.requests("POST", CHANGE_PATH) for s in r["body"]["server_ids"]]

    def rows(self, *states: str) -> int:
        return self.rollout.servers.filter(verdict="change", state__in=states).count()

    def wait_first_wave_sent(self) -> int:
        """Until the canary's servers are all accepted (their jobs run until the clock moves)."""
        canary = self.rollout.servers.filter(verdict="change", wave=1).count()
        assert canary, "the plan has no first wave to wait for"
        wait_for(lambda: self.rows("waiting", "running") >= canary, 90, "the canary to be sent")
        return canary

    def tick_running_on(self, child: Child, *, not_in: frozenset = frozenset()) -> DBTaskResult:
        """Until a tick task (other than `not_in`) is RUNNING on `child`: the moment to strike."""

        def running():
            # The tick task (its module moves as the rollout domain is reorganised).
            for task in DBTaskResult.objects.filter(
                status="RUNNING", task_path__regex=r"\.(tick_rollout|refresh_rollout)$"
            ):
                mine = task.worker_ids and f"-{child.pid}-" in task.worker_ids[-1]
                if mine and task.id not in not_in:
                    return task
            return None

        return wait_for(running, 60, f"a tick running on worker {child.pid}", every=0.02)

    def finish(self) -> Rollout:
        """Let the jobs finish (advancing the simulator's clock) until the rollout is final."""

        def final():
            self.sim.advance(self.sim.config.job_seconds + 1)
            rollout = Rollout.objects.get(pk=self.rollout.pk)
            return rollout if rollout.state in Rollout.FINAL_STATES else None

        return wait_for(final, FINAL_WITHIN, "every row to be final", every=0.5)

    def assert_invariants(self) -> None:
        sent = Counter(self.sent())
        twice = sorted(s for s, n in sent.items() if n > 1)
        assert not twice, f"servers processed twice: {twice}"
        assert set(sent) == self.changing, "a server was never sent, or one not in the plan was"
        rows = self.rollout.servers.filter(verdict="change")
        assert rows.count() == len(self.changing), "a row was lost"
        states = Counter(rows.values_list("state", flat=True))
        assert set(states) <= set(RolloutServer.FINAL_STATES), f"rows not final: {states}"
        assert states["succeeded"] == len(self.changing), f"rows not all succeeded: {states}"
        alive = {str(child.pid) for child in self.workers if child.alive()}
        for ids in DBTaskResult.objects.filter(status="RUNNING").values_list(
            "worker_ids", flat=True
        ):
            assert ids and ids[-1].split("-")[-2] in alive, f"task left on a dead worker: {ids}"


def plan(sim: Any, tmp_path: Path, settings: Any, *, servers: int = 120) -> Scenario:
    """Sync the simulated fleet, then plan and confirm one group's drifted servers: a canary of
    4 and waves of half the rest, no soak."""
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, **cloud_settings(sim)}
    inventory.sync_now(client=CloudClient(from_settings()))
    drifted = list(Server.objects.filter(drift=True).select_related("group"))
    image = Counter(s.group.image_id for s in drifted).most_common(1)[0][0]
    chosen = [s for s in drifted if s.group.image_id == image]
    images = planning.image_map()
    rollout = planning.create_plan(
        created_by="otto",
        servers=chosen,
        target=images[image],
        images=images,
        reason="fault suite",
        safety=planning.Safety(canary="4", wave_size="50%"),
    )
    assert planning.confirm(rollout.pk, "otto").confirmed
    changing = set(rollout.servers.filter(verdict="change").values_list("server_id", flat=True))
    assert len(changing) >= 8, "the fleet needs enough drifted servers for several waves"
    connection.close()  # the workers take over; the test only reads from here on
    return Scenario(sim, tmp_path, rollout, changing)
