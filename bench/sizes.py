"""`--sizes 1000,5000,20000,50000`: the benchmark once per fleet size, then how each figure grows.

Each size runs in its own process (`python -m bench --servers N --skip-sdk`: its own
database, simulator and memory), its lines printed as they come. Afterwards one `growth.`
line per figure puts the sizes side by side, value and bound, with the sizes in figure
names written as N (fleet), R (rollout) and G (groups), so the same figure lines up.
"""

import re
import subprocess
import sys
from collections import defaultdict

from bench import env

LINE = re.compile(r"^(?P<name>[^\s:]+): (?P<value>.*?) \(bound: (?P<bound>.*)\)$")


def rollout_size(servers: int) -> int:
    """The rollout measured on a fleet: a fifth of it, 1 to 5,000 servers."""
    return min(5000, max(1, servers // 5))


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"sizes must be whole numbers separated by commas, not {text!r}") from None
    if not sizes or any(size < 50 for size in sizes):
        raise ValueError("each size must be at least 50 servers")
    return sizes


def run(sizes: list[int], quick: bool) -> int:
    figures: dict[str, dict[int, tuple[str, str]]] = defaultdict(dict)
    failed = []
    for servers in sizes:
        print(f"# --- {servers} servers ---", flush=True)
        command = [sys.executable, "-m", "bench", "--servers", str(servers), "--skip-sdk"]
        command += ["--quick"] if quick else []
        with subprocess.Popen(command, cwd=env.ROOT, stdout=subprocess.PIPE, text=True) as child:
            assert child.stdout is not None
            for line in child.stdout:
                print(line, end="", flush=True)
                found = LINE.match(line.rstrip("\n"))
                if found and found["name"] != "machine":
                    name = generic(found["name"], servers)
                    value, bound = short(found["value"]), short(found["bound"], " (")
                    figures[name][servers] = (value, bound)
        if child.returncode:
            failed.append(servers)
    for name, by_size in figures.items():
        values = " | ".join(f"{n}: {by_size[n][0]}" for n in sizes if n in by_size)
        bounds = " | ".join(f"{n}: {by_size[n][1]}" for n in sizes if n in by_size)
        print(f"growth.{name}: {values} (bound: {bounds})", flush=True)
    if failed:
        print(f"# sizes that did not finish: {failed}", file=sys.stderr)
    return 1 if failed else 0


def generic(name: str, servers: int) -> str:
    """The figure's name with its sizes as N (fleet), R (rollout) and G (groups)."""
    name = name.replace(f".{servers}_servers", ".N_servers")
    name = re.sub(rf"\.{rollout_size(servers)}_(servers|active)\b", r".R_\1", name)
    return re.sub(r"\.\d+_groups\b", ".G_groups", name)


def short(text: str, *more: str) -> str:
    """A value or bound without its explanation: up to ` = `, ` {` or any of `more`."""
    cuts = "|".join(re.escape(cut) for cut in (" = ", " {", *more))
    return re.split(cuts, text, maxsplit=1)[0]
