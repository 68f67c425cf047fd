"""The benchmark's clock of the simulator's own work (bench.simtime)."""

import threading
import time
from contextlib import ExitStack

from bench import simtime
from tests.sim_fixtures import SimulatorFactory
from tests.sim_fixtures import signed_call as call


class FakeTime:
    """perf_counter and thread_time that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now

    def thread_time(self) -> float:
        return self.now

    def process_time(self) -> float:
        return 10 * self.now


class Actor:
    """A request thread whose steps ("request", "wait", "resume", "end") run on command."""

    def __init__(self, timer: simtime.SimulatorTime) -> None:
        self.timer = timer
        self.commands: list[str] = []
        self.go = threading.Semaphore(0)
        self.done = threading.Semaphore(0)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def do(self, command: str) -> None:
        self.commands.append(command)
        self.go.release()
        assert self.done.acquire(timeout=5)

    def _run(self) -> None:
        with ExitStack() as request:
            while True:
                self.go.acquire()
                command = self.commands[-1]
                if command == "request":
                    request.enter_context(self.timer.request())
                elif command == "wait":
                    waiting = ExitStack()
                    waiting.enter_context(self.timer.waiting())
                elif command == "resume":
                    waiting.close()
                elif command == "end":
                    request.close()
                    self.done.release()
                    return
                self.done.release()


def test_busy_time_is_the_union_of_working_intervals_without_waits(monkeypatch) -> None:
    fake = FakeTime()
    monkeypatch.setattr(simtime, "time", fake)
    timer = simtime.SimulatorTime()
    a, b = Actor(timer), Actor(timer)

    def at(moment: float, actor: Actor, command: str) -> None:
        fake.now = moment
        actor.do(command)

    at(0, a, "request")
    at(1, b, "request")
    at(2, a, "wait")  # a waits out its latency; b still works
    at(3, b, "end")
    fake.now = 4
    assert timer.reading().busy == 3  # [0, 3]; nothing works from 3 to 4
    at(5, a, "resume")
    fake.now = 5.5
    assert timer.reading().busy == 3.5  # a request in flight counts up to the reading
    at(6, a, "end")
    reading = timer.reading()
    assert reading.busy == 4  # [0, 3] and [5, 6]
    assert reading.requests == 2
    assert reading.cpu == 6 + 2  # each thread's clock from its start to its end
    assert reading.process_cpu == 60
    assert timer.reading() - simtime.Reading(1, 1, 1, 20) == simtime.Reading(3, 7, 1, 40)


def test_a_timed_simulator_counts_its_requests_and_leaves_out_their_latency(
    simulator_factory: SimulatorFactory,
) -> None:
    sim = simulator_factory(latency_ms=300)
    timer = simtime.install(sim.handle)
    start = time.perf_counter()
    response = call(sim, "GET", f"/v1/{sim.config.project_id}/app-servers", [("limit", "100")])
    wall = time.perf_counter() - start
    reading = timer.reading()
    assert response.status_code == 200
    assert reading.requests == 1
    assert 0 < reading.busy <= wall - 0.3  # the 300 ms latency is not the simulator's work
