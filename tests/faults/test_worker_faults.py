"""Workers killed, database connections cut and the cloud down in the middle of a rollout.

Each scenario asserts: no server processed twice (the simulator's request log), no row lost,
every row final within a bound, no task left RUNNING. Workers are real processes; the
simulator's clock is manual, so jobs finish only when the test lets them.
"""

import signal

import pytest
from django.db import connection
from django_tasks_db.models import DBTaskResult

from dashboard.models import WorkerHeartbeat
from tests.faults.procs import wait_for
from tests.faults.scenario import plan

pytestmark = [
    pytest.mark.faults,
    pytest.mark.postgres_only,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def scenario(simulator_factory, tmp_path, settings):
    sim = simulator_factory(servers=120, job_seconds=60, latency_ms=150)
    run = plan(sim, tmp_path, settings)
    yield run
    run.stop_all()


def test_a_worker_killed_mid_rollout_is_recovered_by_another(scenario):
    first = scenario.start_worker("w1")
    scenario.wait_first_wave_sent()
    task = scenario.tick_running_on(first)
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=10)

    second = scenario.start_worker("w2")
    wait_for(
        lambda: len(DBTaskResult.objects.get(id=task.id).worker_ids) >= 2,
        30,
        "the dead worker's tick to be put back and claimed again",
    )
    rollout = scenario.finish()
    assert rollout.state == "succeeded"
    scenario.assert_invariants()
    recovered = DBTaskResult.objects.get(id=task.id)
    assert f"-{second.pid}-" in recovered.worker_ids[-1]
    assert "put back to run again" in second.output()


def test_both_workers_killed_and_a_fresh_one_finishes(scenario):
    one, two = scenario.start_worker("w1"), scenario.start_worker("w2")
    scenario.wait_first_wave_sent()
    scenario.tick_running_on(one if one.alive() else two)
    for child in (one, two):
        child.process.send_signal(signal.SIGKILL)
        child.process.wait(timeout=10)

    scenario.start_worker("w3")
    rollout = scenario.finish()
    assert rollout.state == "succeeded"
    scenario.assert_invariants()


def _terminate_worker_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_database_connections_cut_while_two_workers_run_a_rollout(scenario):
    workers = [scenario.start_worker("w1"), scenario.start_worker("w2")]
    scenario.wait_first_wave_sent()
    struck: set = set()
    for _ in range(3):  # cut every worker connection, three times, each with a new tick in flight
        task = scenario.tick_running_on(workers[0], not_in=frozenset(struck))
        struck.add(task.id)
        assert _terminate_worker_connections() >= 1
    rollout = scenario.finish()
    assert rollout.state == "succeeded"
    scenario.assert_invariants()
    for child in workers:
        assert child.alive(), child.output()
    assert any("put back to run again" in child.output() for child in workers)


def test_a_cloud_outage_opens_the_breaker_the_pages_say_so_and_the_rollout_resumes(
    scenario, client
):
    worker = scenario.start_worker("w1")
    scenario.wait_first_wave_sent()
    scenario.sim.state.set_faults(error_rate=1.0)
    row = wait_for(
        lambda: WorkerHeartbeat.objects.filter(cloud_unreachable_since__isnull=False).first(),
        60,
        "the worker's breaker to open and its heartbeat to say so",
    )
    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.json()["cloud_reachable"] is False
    assert health.json()["cloud_unreachable_since"] is not None
    assert "cloud circuit open" in worker.output()

    # While open, the worker sends (almost) nothing: one probe per cool-down at most.
    before = len(scenario.sim.requests())
    wait_for(
        lambda: WorkerHeartbeat.objects.filter(pk=row.pk, beat_at__gt=row.beat_at).exists(),
        10,
        "another heartbeat",
    )
    assert len(scenario.sim.requests()) - before <= 10

    scenario.sim.state.set_faults(error_rate=0.0)
    rollout = scenario.finish()
    assert rollout.state == "succeeded"
    scenario.assert_invariants()
    wait_for(
        lambda: client.get("/healthz").json()["cloud_reachable"] is True,
        30,
        "the pages to see the cloud back",
    )
