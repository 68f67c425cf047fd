"""Upstream protection: how long a retry waits, how fast we send, and when we stop sending.

- `retry_delay` / `MAX_ATTEMPTS`: a retried read waits at least `MIN_RETRY_DELAY`, even when
  the cloud answers `Retry-After: 0`, and gives up after `MAX_ATTEMPTS` attempts.
- `RateLimiter`: calls per second per API class (the gateway's throttling classes), counted in a
  `Store` that every worker shares. The cloud publishes no numbers, so the defaults are modest
  and `CLOUD_RATE_LIMITS` overrides them.
- `CircuitBreaker`: after `threshold` consecutive failures (no answer, or 5xx) it stops sending
  for `cooldown` seconds, then lets one probe through (half-open); the probe's answer closes or
  re-opens it. It also remembers the last contact, which the worker publishes on its heartbeat.

This module is at the cloud layer: it knows no models. The database store is plugged in from
above (`dashboard/upstream.py`, installed at start-up by dashboard/apps.py in every process);
without one, Django's configured cache is the store.
"""

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured

from dashboard.cloud.errors import CloudError, Outcome

log = logging.getLogger("dashboard.cloud")

MIN_RETRY_DELAY = 0.5  # seconds, even after `Retry-After: 0`
MAX_ATTEMPTS = 8  # the first try and seven retries (about 50 s of backoff at most)
BACKOFF_BASE = 0.5
BACKOFF_CAP = 20.0
RETRY_AFTER_CAP = 60.0  # a larger Retry-After is treated as "give up now"

# API name (as the client counts it) → the gateway's throttling class.
API_CLASS = {
    "BatchChangeServerImage": "operate",
    "ChangeServerImage": "operate",
    "BatchChangeServerMaintainMode": "operate",
    "LogoffUserSession": "operate",
    "ShowJobDetail": "job",
    "ShowJob": "job",
    "ListSubJobs": "job",
    "ListImages": "ims",
    "KeystoneCreateUserTokenByPassword": "iam",
    "KeystoneListProjects": "iam",
}
DEFAULT_CLASS = "read"  # ListServers, ShowServer, server groups, sessions, Workspace images
# Calls per second per class, shared by every worker. No limits are published; these stay
# well under what API gateways commonly allow a project.
DEFAULT_RATES = {"read": 10.0, "operate": 2.0, "job": 10.0, "ims": 10.0, "iam": 2.0}


def retry_delay(
    attempt: int, retry_after: float | None, random: Callable[[], float]
) -> float | None:
    """Seconds before retry number `attempt + 1`; None when no retry should follow."""
    if attempt + 1 >= MAX_ATTEMPTS:
        return None
    if retry_after is not None:
        if retry_after > RETRY_AFTER_CAP:
            return None
        # `Retry-After: 0` from a struggling gateway must not turn into a burst of retries.
        return max(MIN_RETRY_DELAY, retry_after)
    # Full jitter: uniformly random up to the capped exponential step.
    return random() * min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)


def api_class(api: str) -> str:
    return API_CLASS.get(api, DEFAULT_CLASS)


def parse_rates(text: str) -> dict[str, float]:
    """`"read=10,operate=2"` → the defaults with those classes replaced; 0 means unlimited."""
    rates = dict(DEFAULT_RATES)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in DEFAULT_RATES:
            raise ImproperlyConfigured(
                f"CLOUD_RATE_LIMITS: {part!r} is not <class>=<calls per second>; "
                f"classes: {', '.join(DEFAULT_RATES)}"
            )
        try:
            rate = float(value)
        except ValueError:
            rate = -1.0
        if not rate >= 0:  # also refuses NaN
            raise ImproperlyConfigured(f"CLOUD_RATE_LIMITS: {name} needs a number ≥ 0")
        rates[name] = rate
    return rates


class Store(Protocol):
    """Shared counters. `hit` adds one to `key` (created with `ttl` seconds to live) and
    returns the new count, atomically across every process that shares the store."""

    def hit(self, key: str, ttl: float) -> int: ...


class CacheStore:
    """Counters in a Django cache: shared when the cache is (database, Redis, Memcached)."""

    def __init__(self, alias: str = "default") -> None:
        self.alias = alias

    def hit(self, key: str, ttl: float) -> int:
        cache = caches[self.alias]
        key = f"cloud-rate:{key}"
        cache.add(key, 0, timeout=max(1, round(ttl)))
        try:
            return cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=max(1, round(ttl)))
            return 1


class RateLimiter:
    """At most `rates[class]` calls per wall-clock second per class, across every sharer."""

    def __init__(
        self,
        store: Store,
        rates: Mapping[str, float],
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.rates = dict(rates)
        self._clock = clock
        self._sleep = sleep

    def acquire(self, api: str) -> float:
        """Wait for a slot for `api`. Returns the seconds waited."""
        name = api_class(api)
        rate = self.rates.get(name, 0)
        if rate <= 0:
            return 0.0
        # A fractional rate (0.5/s) is one call per window of 1/rate seconds.
        window = max(1.0, 1.0 / rate)
        allowed = max(1, int(rate * window))
        waited = 0.0
        while True:
            now = self._clock()
            slot = int(now // window)
            try:
                count = self.store.hit(f"{name}:{slot}", ttl=window * 2 + 1)
            except Exception:
                # Pacing is a courtesy; the cloud's own 429s remain the backstop.
                log.warning("cloud rate limiter store failed; sending unpaced", exc_info=True)
                return waited
            if count <= allowed:
                return waited
            pause = (slot + 1) * window - now
            self._sleep(pause)
            waited += pause


@dataclass(frozen=True)
class Contact:
    """What this process last heard from the cloud, and the breaker's state."""

    state: str  # closed, open, half-open
    ok_at: datetime | None
    failed_at: datetime | None
    error: str
    unreachable_since: datetime | None  # first failure of the current run of failures
    consecutive_failures: int


class CircuitOpen(CloudError):
    """Refused locally: the breaker is open, nothing was sent."""


class CircuitBreaker:
    """Per process; thread-safe. Failures are answers that prove the cloud unwell."""

    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"

    def __init__(
        self,
        threshold: int = 5,
        cooldown: float = 30.0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.threshold = max(1, threshold)
        self.cooldown = cooldown
        self._monotonic = monotonic
        self._now = now
        self._lock = threading.Lock()
        self._state = self.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self._ok_at: datetime | None = None
        self._failed_at: datetime | None = None
        self._error = ""
        self._since: datetime | None = None

    def before_call(self, api: str) -> None:
        """Raise CircuitOpen instead of sending while the cloud is failing."""
        with self._lock:
            if self._state == self.CLOSED:
                return
            remaining = self._opened_at + self.cooldown - self._monotonic()
            if self._state == self.OPEN and remaining <= 0:
                self._state = self.HALF_OPEN
                self._probing = False
            if self._state == self.HALF_OPEN and not self._probing:
                self._probing = True  # this call is the probe
                return
            since = self._since.isoformat(timespec="seconds") if self._since else "recently"
            raise CircuitOpen(
                None,
                error_code="CIRCUIT_OPEN",
                message=f"cloud unreachable since {since}; {api} not sent",
                retryable=False,  # the caller waits `retry_after`; retrying now is pointless
                outcome=Outcome.NOT_SENT,
                retry_after=max(1.0, remaining),
            )

    def record(self, error: CloudError | None) -> None:
        """The answer of a call that was sent: None for success."""
        if isinstance(error, CircuitOpen):
            return
        with self._lock:
            self._probing = False
            if error is None or not _is_failure(error):
                self._ok_at = self._now()
                self._state = self.CLOSED
                self._failures = 0
                self._since = None
                return
            self._failed_at = self._now()
            self._error = str(error)[:255]
            self._failures += 1
            if self._since is None:
                self._since = self._failed_at
            if self._state == self.HALF_OPEN or self._failures >= self.threshold:
                if self._state != self.OPEN:
                    log.warning(
                        "cloud circuit open after %d failures; pausing %.0fs: %s",
                        self._failures,
                        self.cooldown,
                        error,
                    )
                self._state = self.OPEN
                self._opened_at = self._monotonic()

    def contact(self) -> Contact:
        with self._lock:
            return Contact(
                state=self._state,
                ok_at=self._ok_at,
                failed_at=self._failed_at,
                error=self._error,
                unreachable_since=self._since if self._state != self.CLOSED else None,
                consecutive_failures=self._failures,
            )


def _is_failure(error: CloudError) -> bool:
    """No answer at all, or a 5xx. A 4xx or a 429 is the cloud answering."""
    return error.status is None or error.status >= 500


class Guard:
    """What the client consults around every attempt: pace, then breaker; then the answer."""

    def __init__(self, limiter: RateLimiter | None, breaker: CircuitBreaker | None) -> None:
        self.limiter = limiter
        self.breaker = breaker

    def before(self, api: str) -> None:
        if self.breaker is not None:
            self.breaker.before_call(api)
        if self.limiter is not None:
            self.limiter.acquire(api)

    def after(self, error: CloudError | None) -> None:
        if self.breaker is not None:
            self.breaker.record(error)


NO_GUARD = Guard(None, None)

_lock = threading.Lock()
_store: Store | None = None
# One guard per project: a project whose cloud is failing opens its own breaker, not the
# others', and pacing counts each project's calls apart (the cloud throttles per project).
_guards: dict[str, Guard] = {}


class _Prefixed:
    """A store whose keys carry the project, so projects are paced apart."""

    def __init__(self, store: Store, prefix: str) -> None:
        self.store = store
        self.prefix = prefix

    def hit(self, key: str, ttl: float) -> int:
        return self.store.hit(f"{self.prefix}:{key}", ttl)


def use_store(store: Store | None) -> None:
    """Install the store every process shares (apps.py installs the database's)."""
    global _store
    with _lock:
        _store = store
        _guards.clear()


def process_guard(project: str = "") -> Guard:
    """This process's guard for `project`: its breaker, and a limiter over the installed store."""
    with _lock:
        guard = _guards.get(project)
        if guard is None:
            rates = parse_rates(getattr(settings, "CLOUD_RATE_LIMITS", ""))
            store = _store or CacheStore()
            guard = _guards[project] = Guard(
                RateLimiter(_Prefixed(store, project) if project else store, rates),
                CircuitBreaker(
                    threshold=getattr(settings, "CLOUD_BREAKER_FAILURES", 5),
                    cooldown=getattr(settings, "CLOUD_BREAKER_COOLDOWN", 30.0),
                ),
            )
        return guard


def contact(project: str | None = None) -> Contact | None:
    """This process's last cloud contact (for one project, or across all), None before any.

    Across projects: the newest answer and failure, and unreachable since the earliest open
    breaker, so a heartbeat reports a project that is down even while others answer.
    """
    with _lock:
        guards = [_guards[project]] if project in _guards else []
        if project is None:
            guards = list(_guards.values())
    contacts = [g.breaker.contact() for g in guards if g.breaker]
    if not contacts:
        return None
    if len(contacts) == 1:
        return contacts[0]
    failing = [c for c in contacts if c.unreachable_since]
    worst = min(failing, key=lambda c: c.unreachable_since) if failing else None
    failed = [c for c in contacts if c.failed_at]
    last_failed = max(failed, key=lambda c: c.failed_at) if failed else None
    return Contact(
        state=worst.state if worst else "closed",
        ok_at=max((c.ok_at for c in contacts if c.ok_at), default=None),
        failed_at=last_failed.failed_at if last_failed else None,
        error=(worst or last_failed).error if (worst or last_failed) else "",
        unreachable_since=worst.unreachable_since if worst else None,
        consecutive_failures=max(c.consecutive_failures for c in contacts),
    )
