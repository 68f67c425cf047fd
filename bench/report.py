"""One printed line per figure: `name: value (bound: value)`."""

import math
import statistics
import sys
from collections.abc import Callable


class Report:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def figure(self, name: str, value: object, bound: object = "none") -> None:
        line = f"{name}: {value} (bound: {bound})"
        self.lines.append(line)
        print(line, flush=True)

    def split(self, name: str, wall: float, sim, floor: str) -> None:
        """Beside the wall time `name`: the in-process simulator's part of it (`sim`, a
        bench.simtime.Reading) and the rest, the dashboard's own time, against `floor`."""
        busy, cpu = (sim.busy / wall, sim.cpu / wall) if wall > 0 else (0.0, 0.0)
        of_process = sim.cpu / sim.process_cpu if sim.process_cpu > 0 else 0.0
        self.figure(
            f"{name}.simulator",
            f"{busy:.1%} busy ({seconds(sim.busy)}), {cpu:.1%} cpu ({seconds(sim.cpu)}) "
            f"of {seconds(wall)}; {of_process:.1%} of the process's cpu "
            f"({seconds(sim.process_cpu)}); {sim.requests} requests",
            "10% (busy time, latency waits left out, is an upper bound of the simulator's "
            "part of the wall time; cpu a lower bound; a real cloud adds neither)",
        )
        self.figure(
            f"{name}.dashboard",
            seconds(wall - sim.busy),
            f"{floor} (the wall time minus the simulator's busy time, against the latency floor)",
        )

    def note(self, text: str) -> None:
        print(f"# {text}", file=sys.stderr, flush=True)


def seconds(value: float) -> str:
    return f"{value:.3f} s"


def ms(value: float) -> str:
    return f"{value * 1000:.1f} ms"


def mib(value: int) -> str:
    return f"{value / 2**20:.1f} MiB"


def pages(n: int, size: int = 100) -> int:
    return math.ceil(n / size)


def median_of(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))
