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

    @property
    def not_found(self) -> bool:
        """The cloud does not know the thing asked for: a 404, or any other refusal of the
        request itself (4xx) except authentication (401), permission (403) and throttling
        (429). ShowJobDetail documents no 404 and answers an unknown job with 400
        `WKS.00149901`."""
        status = self.status
        return status is not None and 400 <= status < 500 and status not in (401, 403, 429)

    def __str__(self) -> str:
        status = self.status if self.status is not None else "no response"
        code = f" {self.error_code}" if self.error_code else ""
        request = f" (request {self.request_id})" if self.request_id else ""
        return f"{status}{code}: {self.message}{request}"
