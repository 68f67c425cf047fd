"""Upstream protection (dashboard/cloud/limits.py) against the simulator over real HTTP: the
retry floor and attempt cap, the shared per-class rate limiter, and the circuit breaker."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.utils import timezone

from dashboard import heartbeat
from dashboard.cloud import limits
from dashboard.cloud.client import CloudClient
from dashboard.cloud.config import from_settings
from dashboard.cloud.errors import CloudError, Outcome
from dashboard.models import CloudRateWindow, WorkerHeartbeat
from dashboard.upstream import DatabaseStore, prune_rate_windows

SERVERS = "/app-servers"


class Clock:
    """Wall and monotonic time that move only when something sleeps."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def time(self) -> float:
        return self.now


def _client(sim_settings, clock: Clock, guard: limits.Guard | None = None) -> CloudClient:
    return CloudClient(
        from_settings(), sleep=clock.sleep, monotonic=clock.time, random=lambda: 1.0, guard=guard
    )


# --- retries ----------------------------------------------------------------------------------


def test_retry_after_zero_still_waits_the_floor_and_attempts_are_capped(sim_settings):
    sim_settings.state.set_faults(throttle_rate=1.0, retry_after_seconds=0)
    clock = Clock()
    with pytest.raises(CloudError) as caught:
        _client(sim_settings, clock).list_servers()
    assert caught.value.status == 429
    assert len(sim_settings.requests("GET", SERVERS)) == limits.MAX_ATTEMPTS
    assert clock.sleeps == [limits.MIN_RETRY_DELAY] * (limits.MAX_ATTEMPTS - 1)


def test_retry_delay_policy():
    assert limits.retry_delay(0, 0.0, lambda: 0.0) == limits.MIN_RETRY_DELAY
    assert limits.retry_delay(0, 3.0, lambda: 0.0) == 3.0
    assert limits.retry_delay(0, limits.RETRY_AFTER_CAP + 1, lambda: 0.0) is None
    assert limits.retry_delay(limits.MAX_ATTEMPTS - 1, None, lambda: 1.0) is None
    assert limits.retry_delay(10, None, lambda: 1.0) is None


# --- rate limiter -----------------------------------------------------------------------------


class CountingStore:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def hit(self, key: str, ttl: float) -> int:
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key]


def test_the_limiter_holds_each_class_to_its_rate_per_second():
    clock = Clock()
    limiter = limits.RateLimiter(
        CountingStore(), {"read": 3, "operate": 1}, clock=clock.time, sleep=clock.sleep
    )
    sent_at = []
    for _ in range(7):
        limiter.acquire("ListServers")
        sent_at.append(int(clock.now))
    assert sent_at == [1_000_000] * 3 + [1_000_001] * 3 + [1_000_002]
    # Another class has its own budget.
    limiter.acquire("BatchChangeServerImage")
    limiter.acquire("BatchChangeServerImage")
    assert int(clock.now) == 1_000_003


def test_a_fractional_rate_spaces_calls_over_several_seconds():
    clock = Clock()
    limiter = limits.RateLimiter(
        CountingStore(), {"operate": 0.5}, clock=clock.time, sleep=clock.sleep
    )
    limiter.acquire("BatchChangeServerImage")
    limiter.acquire("BatchChangeServerImage")
    assert clock.now - 1_000_000 == pytest.approx(2.0)


def test_a_zero_rate_is_unpaced():
    clock = Clock()
    limiter = limits.RateLimiter(CountingStore(), {"read": 0}, clock=clock.time, sleep=clock.sleep)
    for _ in range(50):
        limiter.acquire("ListServers")
    assert clock.sleeps == []


def test_rates_come_from_settings_and_bad_ones_are_refused():
    assert limits.parse_rates("") == limits.DEFAULT_RATES
    assert limits.parse_rates("operate=1, read=4")["operate"] == 1.0
    for bad in ("operate", "nosuch=1", "read=-1", "read=fast", "read=nan"):
        with pytest.raises(ImproperlyConfigured):
            limits.parse_rates(bad)


@pytest.mark.django_db(transaction=True)
def test_workers_share_one_budget_through_the_database():
    """Two limiters (as in two workers), each with its own store and connection, in one frozen
    second with a budget of 4: of 8 calls exactly 4 go at once; the others must wait."""
    clock = Clock()
    outcomes: list[str] = []

    def worker() -> None:
        limiter = limits.RateLimiter(DatabaseStore(), {"read": 4}, clock=clock.time, sleep=_stop)
        try:
            for _ in range(4):
                try:
                    limiter.acquire("ListServers")
                    outcomes.append("sent")
                except _Waited:
                    outcomes.append("waits")
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["sent"] * 4 + ["waits"] * 4
    assert CloudRateWindow.objects.get(key=f"read:{int(clock.now)}").count == 8


def _stop(seconds: float) -> None:
    raise _Waited(seconds)


class _Waited(Exception):
    pass


@pytest.mark.django_db(transaction=True)
def test_the_database_store_counts_and_expired_windows_are_pruned():
    store = DatabaseStore()
    assert [store.hit("read:1", ttl=3) for _ in range(3)] == [1, 2, 3]
    CloudRateWindow.objects.create(key="read:0", count=9, expires_at=timezone.now() - timedelta(1))
    assert prune_rate_windows() == 1
    assert CloudRateWindow.objects.filter(key="read:1").exists()


# --- circuit breaker --------------------------------------------------------------------------


def test_the_breaker_stops_sending_while_the_cloud_fails_and_probes_after_the_cooldown(
    sim_settings,
):
    clock = Clock()
    breaker = limits.CircuitBreaker(
        threshold=3,
        cooldown=30,
        monotonic=clock.time,
        now=lambda: datetime.fromtimestamp(clock.now, UTC),
    )
    client = _client(sim_settings, clock, limits.Guard(None, breaker))
    sim_settings.state.set_faults(error_rate=1.0)

    with pytest.raises(CloudError) as caught:
        client.list_servers()
    assert isinstance(caught.value, limits.CircuitOpen)
    assert caught.value.outcome == Outcome.NOT_SENT
    assert len(sim_settings.requests("GET", SERVERS)) == 3  # the third failure opened it
    contact = breaker.contact()
    assert contact.state == "open" and contact.unreachable_since is not None

    with pytest.raises(limits.CircuitOpen):
        client.list_servers()
    assert len(sim_settings.requests("GET", SERVERS)) == 3  # refused locally: nothing sent

    sim_settings.state.set_faults(error_rate=0.0)
    clock.now += 31  # the cool-down passes: one probe goes out, succeeds, and closes it
    assert client.list_servers()
    assert breaker.contact().state == "closed"
    assert breaker.contact().unreachable_since is None


def test_a_failed_probe_opens_the_breaker_again():
    clock = Clock()
    breaker = limits.CircuitBreaker(threshold=2, cooldown=10, monotonic=clock.time)
    failure = CloudError(503, message="down")
    breaker.record(failure)
    breaker.record(failure)
    with pytest.raises(limits.CircuitOpen):
        breaker.before_call("ListServers")
    clock.now += 11
    breaker.before_call("ListServers")  # the probe
    with pytest.raises(limits.CircuitOpen):
        breaker.before_call("ListServers")  # only one probe at a time
    breaker.record(failure)
    assert breaker.contact().state == "open"


def test_a_4xx_or_a_429_is_the_cloud_answering():
    breaker = limits.CircuitBreaker(threshold=1)
    breaker.record(CloudError(429, outcome=Outcome.THROTTLED))
    breaker.record(CloudError(404, outcome=Outcome.REJECTED))
    assert breaker.contact().state == "closed"
    breaker.record(CloudError(None, message="could not connect"))
    assert breaker.contact().state == "open"


@pytest.mark.django_db
def test_the_heartbeat_publishes_the_breaker_and_the_pages_say_since_when(
    monkeypatch, viewer_client
):
    since = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    contact = limits.Contact("open", None, since, "503: down", since, 5)
    monkeypatch.setattr(limits, "contact", lambda: contact)
    heartbeat.beat("w-1", timezone.now(), interval=5)

    row = WorkerHeartbeat.objects.get(worker_id="w-1")
    assert row.cloud_unreachable_since == since
    status = heartbeat.cloud()
    assert status.reachable is False and status.unreachable_since == since
    page = viewer_client.get("/").content.decode()
    assert "Cloud unreachable since" in page


@pytest.mark.django_db(transaction=True)
def test_the_database_store_never_locks_a_counter_inside_a_callers_transaction():
    store = DatabaseStore()
    with transaction.atomic():
        assert store.hit("read:7", ttl=3) == 1
        assert store.hit("read:7", ttl=3) == 1
    assert not CloudRateWindow.objects.filter(key="read:7").exists()
    assert store.hit("read:7", ttl=3) == 1
    assert store.hit("read:7", ttl=3) == 2
