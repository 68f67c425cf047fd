"""Jobs whose state is computed from the clock, so every view agrees at every moment."""

from dataclasses import dataclass
from datetime import datetime, timedelta

WAITING, RUNNING, SUCCESS, FAILED = "WAITING", "RUNNING", "SUCCESS", "FAILED"
ACTIVE = frozenset({WAITING, RUNNING})
CHANGE_SERVER_IMAGE = "CHANGE_SERVER_IMAGE"
WAITING_SHARE = 0.1  # the first tenth of a job's time is spent queued
ONE_MICROSECOND = timedelta(microseconds=1)

# ShowJob (v1) speaks integers: 0 failed, 1 success, 2 processing, 3 initialising.
V1_STATUS = {FAILED: 0, SUCCESS: 1, RUNNING: 2, WAITING: 3}


@dataclass
class Job:
    id: str
    sub_id: str
    job_type: str
    server_id: str
    server_name: str
    created: datetime
    duration: float  # seconds from acceptance to the final state
    fails: bool = False
    target_image_id: str = ""
    error_code: str = ""
    error_message: str = ""
    settled: bool = False  # its effect on the server has been applied

    def status(self, now: datetime) -> str:
        elapsed = (now - self.created).total_seconds()
        if elapsed >= self.duration:
            return FAILED if self.fails else SUCCESS
        return WAITING if elapsed < self.duration * WAITING_SHARE else RUNNING

    def settles_at(self) -> datetime | None:
        """The earliest moment `status` may be final, or None for a job that never ends.

        One microsecond early, because `timedelta` rounds the duration to microseconds while
        `status` compares seconds as floats: callers confirm with `status` before settling.
        """
        if self.duration != self.duration:  # NaN: `elapsed >= duration` is never true
            return None
        try:
            return self.created + timedelta(seconds=self.duration) - ONE_MICROSECOND
        except OverflowError:
            if self.duration > 0:
                return None  # beyond any date the clock can show
            return datetime.min.replace(tzinfo=self.created.tzinfo)

    def begin_time(self, now: datetime) -> datetime | None:
        start = self.created + timedelta(seconds=self.duration * WAITING_SHARE)
        return start if now >= start else None

    def end_time(self, now: datetime) -> datetime | None:
        end = self.created + timedelta(seconds=self.duration)
        return end if now >= end else None

    def sub_error(self, now: datetime) -> tuple[str, str]:
        """(error_code, error_message) of the sub-job: set only once it has failed."""
        if self.status(now) == FAILED:
            return self.error_code, self.error_message
        return "", ""


class JobIds:
    """18-digit numeric ids, as the cloud's job examples (e.g. 575768277444198400)."""

    def __init__(self, start: int) -> None:
        self.next = start

    def take(self) -> str:
        self.next += 1
        return str(self.next)
