"""Request and response values for the simulator's handlers, and query-parameter checks."""

import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

from dashboard.simulator import codes
from dashboard.simulator.auth import Caller
from dashboard.simulator.state import SimState


class ApiError(Exception):
    """Raised by a handler to answer with `status` and `body` (already in the API's format)."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


@dataclass
class Request:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    state: SimState  # the project the request is answered from
    request_id: str
    args: dict[str, str] = field(default_factory=dict)
    now: datetime | None = None
    caller: Caller | None = None  # None on the routes that need no authentication

    def param(self, name: str) -> str | None:
        for key, value in self.query:
            if key == name:
                return value
        return None

    def params(self, name: str) -> list[str]:
        return [value for key, value in self.query if key == name]

    def json(self, bad: Callable[[str], ApiError]) -> Any:
        """The body as JSON; raises `bad(...)` when it is absent or malformed."""
        if not self.body:
            raise bad("The request body is empty.")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise bad("The request body is not valid JSON.") from None


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def wks_bad(message: str) -> ApiError:
    return ApiError(400, codes.wks(codes.BAD_REQUEST, message))


def ims_bad(message: str) -> ApiError:
    return ApiError(400, codes.ims(codes.IMS_BAD_REQUEST, message))


def int_param(
    req: Request,
    name: str,
    default: int,
    low: int,
    high: int,
    bad: Callable[[str], ApiError] = wks_bad,
) -> int:
    raw = req.param(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad(f"Invalid parameter {name}: must be an integer.") from None
    if not low <= value <= high:
        raise bad(f"Invalid parameter {name}: must be between {low} and {high}.")
    return value


def str_param(
    req: Request,
    name: str,
    max_length: int,
    choices: tuple[str, ...] = (),
    bad: Callable[[str], ApiError] = wks_bad,
    *,
    min_length: int = 0,
    empty_is_absent: bool = False,
) -> str | None:
    """A query parameter as the definitions bound it; None when absent (or, where the
    definition's pattern allows an empty value, `empty_is_absent`, when empty)."""
    value = req.param(name)
    if value is None or (empty_is_absent and value == ""):
        return None
    if len(value) < min_length:
        raise bad(f"Invalid parameter {name}: at least {min_length} characters.")
    if len(value) > max_length:
        raise bad(f"Invalid parameter {name}: longer than {max_length} characters.")
    if choices and value not in choices:
        raise bad(f"Invalid parameter {name}: must be one of {', '.join(choices)}.")
    return value


def page(items: Collection[Any], offset: int, limit: int) -> list[Any]:
    if isinstance(items, Sequence):
        return list(items[offset : offset + limit])
    return list(islice(items, offset, offset + limit))
