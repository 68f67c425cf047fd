"""Fault knobs and the per-request decision of which fault (if any) strikes.

Faults apply to cloud paths only, never to the /_sim/ control endpoints.
"""

import random
from dataclasses import asdict, dataclass, field, fields
from typing import Any

# Outcomes of `decide()`, in the order they are tried.
DROP_BEFORE = "drop_before"  # connection closed before the request is processed
THROTTLE = "throttle"  # 429 with Retry-After
ERROR = "error"  # 500 or 503
DROP_AFTER = "drop_after"  # processed, then the connection closed without a response


@dataclass
class Faults:
    latency_ms: int = 0
    throttle_rate: float = 0.0
    error_rate: float = 0.0
    drop_before_rate: float = 0.0
    drop_after_rate: float = 0.0
    stall_seconds: float = 0.0
    job_failure_rate: float = 0.0
    retry_after_seconds: int = 1
    rejections: dict[str, str] = field(default_factory=dict)  # server id → item error code

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply `changes` (knob name → value); raises ValueError for unknown or bad values."""
        known = {f.name: f.type for f in fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown fault knob: {name}")
            setattr(self, name, _coerce(name, value))


_RATES = {"throttle_rate", "error_rate", "drop_before_rate", "drop_after_rate", "job_failure_rate"}


def _coerce(name: str, value: Any) -> Any:
    if name == "rejections":
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
        ):
            raise ValueError("rejections must map server ids to error codes")
        return dict(value)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{name} must be a number")
    number = float(value)
    if name in _RATES and not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1")
    if number < 0:
        raise ValueError(f"{name} must not be negative")
    return int(number) if name in ("latency_ms", "retry_after_seconds") else number


def decide(faults: Faults, rng: random.Random) -> str | None:
    """Which fault strikes this request, or None. One draw per knob keeps runs reproducible."""
    draws = {
        DROP_BEFORE: faults.drop_before_rate,
        THROTTLE: faults.throttle_rate,
        ERROR: faults.error_rate,
        DROP_AFTER: faults.drop_after_rate,
    }
    for outcome, rate in draws.items():
        if rate > 0 and rng.random() < rate:
            return outcome
    return None
