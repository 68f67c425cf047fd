"""How much of a wall time the in-process simulator spent working, so figures can be judged.

The simulator serves on a loopback port from threads of the benchmark's own process, so its
work is inside every wall time the benchmark measures. `install` wraps the simulator's WSGI
application (gateway checks, routing, the handler, the answer rendered and encoded) and its
latency and stall waits, and keeps two clocks, thread-safely:

- busy: wall time during which at least one request was being worked on, not counting the
  simulated latency (the union of the requests' working intervals, so four requests in
  flight at once count once). Calls still in flight when a reading is taken count up to then.
- cpu: the CPU time of the simulator's request threads in that work (`time.thread_time`).
- process_cpu: the CPU time of the whole benchmark process (dashboard and simulator), to
  compare `cpu` with: their ratio does not depend on how busy the machine is.

Writing the answer to the socket is left out: a large page fills the loopback buffers and
the write then waits for the dashboard to read, which is the dashboard's time. Busy time is
an upper bound of the simulator's share (a request thread waiting for the interpreter lock
while a dashboard thread runs still counts), CPU time a lower bound. Where the process is
busy computing (one interpreter lock, so one thread at a time), the simulator's part of the
wall time is close to its part of the process's CPU time.
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Reading:
    busy: float  # seconds with at least one request being worked on
    cpu: float  # CPU seconds of the request threads
    requests: int
    process_cpu: float = 0.0  # CPU seconds of the whole process

    def __sub__(self, other: "Reading") -> "Reading":
        return Reading(
            self.busy - other.busy,
            self.cpu - other.cpu,
            self.requests - other.requests,
            self.process_cpu - other.process_cpu,
        )


class SimulatorTime:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._working = 0
        self._since = 0.0
        self._busy = 0.0
        self._cpu = 0.0
        self._requests = 0
        self._local = threading.local()

    def reading(self) -> Reading:
        """The clocks now, including the working time of requests still in flight."""
        with self._lock:
            busy = self._busy
            if self._working:
                busy += time.perf_counter() - self._since
            return Reading(busy, self._cpu, self._requests, time.process_time())

    @contextmanager
    def request(self) -> Iterator[None]:
        """Around the handling of one request (on its own thread)."""
        local = self._local
        local.inside, local.cpu_start = True, time.thread_time()
        with self._lock:
            self._requests += 1
        self._begin()
        try:
            yield
        finally:
            self._end()
            local.inside = False
            cpu = time.thread_time() - local.cpu_start
            with self._lock:
                self._cpu += cpu

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Around a simulated latency or stall: the request is not being worked on."""
        if not getattr(self._local, "inside", False):
            yield  # not a request thread: nothing to pause
            return
        self._end()
        try:
            yield
        finally:
            self._begin()

    def _begin(self) -> None:
        with self._lock:
            if self._working == 0:
                self._since = time.perf_counter()
            self._working += 1

    def _end(self) -> None:
        with self._lock:
            self._working -= 1
            if self._working == 0:
                self._busy += time.perf_counter() - self._since


class _TimedEvent(threading.Event):
    """The simulator's `stopping` event, whose waits (latency, stalls) are not work."""

    def __init__(self, timer: SimulatorTime) -> None:
        super().__init__()
        self.timer = timer

    def wait(self, timeout: float | None = None) -> bool:
        with self.timer.waiting():
            return super().wait(timeout)


def install(running) -> SimulatorTime:
    """Time a started simulator (`dashboard.simulator.server.RunningServer`) before use."""
    timer = SimulatorTime()
    httpd = running.httpd
    app = httpd.get_app()
    if not hasattr(app, "stopping"):
        raise SystemExit("the simulator app has no `stopping` event: latency cannot be excluded")

    def timed_app(environ, start_response):
        with timer.request():
            return app(environ, start_response)  # the answer, encoded; written afterwards

    httpd.set_app(timed_app)
    event = _TimedEvent(timer)
    if running.stopping.is_set():
        event.set()
    app.stopping = running.stopping = event
    return timer
