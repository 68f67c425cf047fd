"""How requests prove who sends them: an AK/SK signature or a cached IAM token.

Both strategies are thread-safe and never show a secret in their repr.
"""

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from dashboard.cloud.signing import sign_request

USER_AGENT = "workspace-image-dashboard"
TOKEN_REFRESH_MARGIN = timedelta(minutes=5)


class Auth(Protocol):
    def headers(
        self, method: str, url: str, headers: dict[str, str], body: bytes
    ) -> dict[str, str]:
        """The headers to send, with credentials added."""
        ...

    def after_unauthorized(self, sent: Mapping[str, str]) -> bool:
        """Called on a 401; True when fresh credentials make one more attempt worthwhile."""
        ...

    @property
    def project_id(self) -> str: ...


class AkSkAuth:
    """Permanent or temporary access keys; every attempt is signed afresh (X-Sdk-Date)."""

    def __init__(self, ak: str, sk: str, project_id: str = "", security_token: str = "") -> None:
        if not ak or not sk:
            raise ValueError("AK/SK authentication needs both keys")
        self._ak = ak
        self._sk = sk
        self._project_id = project_id
        self._security_token = security_token

    @property
    def project_id(self) -> str:
        return self._project_id

    def use_project(self, project_id: str) -> None:
        """The project found by the client's IAM lookup; signed into every later request."""
        self._project_id = project_id

    def headers(
        self, method: str, url: str, headers: dict[str, str], body: bytes
    ) -> dict[str, str]:
        out = dict(headers)
        # Like the SDK: the project travels in a signed header, temporary keys add their token.
        if self._project_id:
            out["X-Project-Id"] = self._project_id
        if self._security_token:
            out["X-Security-Token"] = self._security_token
        return sign_request(method, url, out, body, self._ak, self._sk)

    def after_unauthorized(self, sent: Mapping[str, str]) -> bool:
        return False  # keys do not expire mid-run; a 401 is final

    def __repr__(self) -> str:
        temporary = ", temporary" if self._security_token else ""
        return f"AkSkAuth(ak={_mask(self._ak)}{temporary})"


@dataclass(frozen=True)
class IssuedToken:
    value: str = field(repr=False)
    expires_at: datetime
    project_id: str = ""


class TokenAuth:
    """An IAM token, issued on first use, reused until shortly before it expires.

    `issue` performs the IAM call; it runs under a lock so concurrent callers share one
    issuance instead of each asking IAM.
    """

    def __init__(
        self,
        issue: Callable[[], IssuedToken],
        *,
        project_id: str = "",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        margin: timedelta = TOKEN_REFRESH_MARGIN,
    ) -> None:
        self._issue = issue
        self._configured_project = project_id
        self._clock = clock
        self._margin = margin
        self._lock = threading.Lock()
        self._token: IssuedToken | None = None
        self._refresh_at: datetime | None = None
        self.issued = 0  # how many tokens were fetched; tests and metrics read it

    @property
    def project_id(self) -> str:
        if self._configured_project:
            return self._configured_project
        return self._current().project_id

    def token(self) -> str:
        return self._current().value

    def expires_at(self) -> datetime:
        """When the token in use expires (one is issued first if none is held)."""
        return self._current().expires_at

    def cached_token(self) -> str:
        """The token held now, without fetching one ("" when none)."""
        token = self._token
        return token.value if token is not None else ""

    def _current(self) -> IssuedToken:
        with self._lock:
            now = self._clock()
            if self._token is None or self._refresh_at is None or now >= self._refresh_at:
                self._token = self._issue()
                self.issued += 1
                # Refresh a margin before expiry, or halfway through a short-lived token.
                lifetime = self._token.expires_at - now
                self._refresh_at = max(now + lifetime / 2, self._token.expires_at - self._margin)
            return self._token

    def headers(
        self, method: str, url: str, headers: dict[str, str], body: bytes
    ) -> dict[str, str]:
        out = dict(headers)
        out["X-Auth-Token"] = self.token()
        if self.project_id:
            out["X-Project-Id"] = self.project_id
        return out

    def after_unauthorized(self, sent: Mapping[str, str]) -> bool:
        with self._lock:
            # Drop the token only if it is the one refused: another thread may have renewed it.
            if self._token is not None and self._token.value == sent.get("X-Auth-Token"):
                self._token = None
        return True

    def __repr__(self) -> str:
        state = "cached" if self._token is not None else "empty"
        return f"TokenAuth({state})"


def _mask(value: str) -> str:
    return value[:4] + "…" if len(value) > 8 else "…"
