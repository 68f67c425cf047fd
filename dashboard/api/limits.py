"""Per-caller request limits: API_REQUESTS_PER_MINUTE for each token or person, then 429.

A fixed one-minute window per caller, counted in the database (upstream.DatabaseStore, the
counter table the cloud's pacing uses, pruned by the heartbeat), so the limit holds across
every web process and survives none of them. (The store counts only outside a transaction;
API requests never run inside one.)
"""

import math
import time
from typing import TYPE_CHECKING

from django.conf import settings

from dashboard.api.problems import Problem
from dashboard.upstream import DatabaseStore

if TYPE_CHECKING:
    from dashboard.api.auth import Caller

WINDOW_SECONDS = 60
_store = DatabaseStore()


def admit(caller: "Caller") -> "Caller":
    """Count one request for `caller`; raise a 429 problem once its minute is used up."""
    limit = settings.API_REQUESTS_PER_MINUTE
    if not limit:
        return caller
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    count = _store.hit(f"api:{caller.key}:{window}", WINDOW_SECONDS * 2)
    if count > limit:
        retry_after = max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))
        raise Problem(
            429,
            "rate_limited",
            f"At most {limit} requests a minute; try again in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )
    return caller
