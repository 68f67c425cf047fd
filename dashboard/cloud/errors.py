"""The one error type for everything that can go wrong talking to the cloud."""

from dataclasses import dataclass


class Outcome:
    """What a failed write means for the caller."""

    REJECTED = "rejected"  # 4xx: the cloud refused it; nothing happened
    THROTTLED = "throttled"  # 429: not accepted; safe to send again later
    UNKNOWN = "unknown"  # 5xx, timeout, reset after sending: it may or may not have happened
    NOT_SENT = "not_sent"  # failed before any byte left (DNS, connect refused)


@dataclass
class CloudError(Exception):
    status: int | None  # HTTP status, None when no response came back
    error_code: str = ""
    message: str = ""
    request_id: str = ""
    retryable: bool = False
    outcome: str = Outcome.UNKNOWN
    retry_after: float | None = None  # seconds, from Retry-After when the cloud sent it

    def __str__(self) -> str:
        status = self.status if self.status is not None else "no response"
        code = f" {self.error_code}" if self.error_code else ""
        request = f" (request {self.request_id})" if self.request_id else ""
        return f"{status}{code}: {self.message}{request}"
