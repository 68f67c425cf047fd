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
    # What the documents leave open, set the hard way (see docs/simulator.md).
    omit_retry_after: bool = False  # a 429 without Retry-After
    shared_batch_job: bool = False  # one job per batch-change-image call, a sub-job per server
    unknown_job_as_400: bool = False  # ShowJobDetail of an unknown job: 400 WKS.00149901
    iam_projects: int = 1  # projects IAM lists under the region's name (0 or 2+ to refuse)
    denied_apis: list[str] = field(default_factory=list)  # API names the key may not call: 403
    unpublished_apis: list[str] = field(default_factory=list)  # API names answered 404 APIGW

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


_FLAGS = {"omit_retry_after", "shared_batch_job", "unknown_job_as_400"}
_NAME_LISTS = {"denied_apis", "unpublished_apis"}
_INTEGERS = {"latency_ms", "retry_after_seconds", "iam_projects"}


def _coerce(name: str, value: Any) -> Any:
    if name in _FLAGS:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false")
        return value
    if name in _NAME_LISTS:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ValueError(f'{name} must be a list of API names, e.g. ["ListServers"]')
        return list(value)
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
    return int(number) if name in _INTEGERS else number


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
