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
