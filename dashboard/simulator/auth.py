"""The API gateway's authentication: an IAM token, or an AK/SK signature.

Signature dates are checked against real time (the caller signs with its own clock), not the
simulator's possibly manual clock, which only drives job progress.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from dashboard.cloud.signing import SignatureError, verify
from dashboard.simulator import codes
from dashboard.simulator.state import SimState

MAX_SKEW_SECONDS = 900


@dataclass(frozen=True)
class Denied:
    code: str
    message: str


@dataclass(frozen=True)
class Caller:
    """Who passed the gateway. `projects`: those its key or token may use (a token is scoped
    to one). `sees`: those IAM lists to it (a token's user sees every project)."""

    projects: tuple[str, ...]
    sees: tuple[str, ...]


def authenticate(
    state: SimState,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
) -> Caller | Denied:
    """The caller when the request may pass the gateway, else why not (APIGW code, message)."""
    token = headers.get("x-auth-token")
    if token:
        scoped = state.cloud.token_project(token)
        if scoped is not None:
            return Caller((scoped.config.project_id,), tuple(state.cloud.projects))
        return Denied(codes.GW_AUTH, "Incorrect IAM authentication information: token expires "
                      "or decrypt token fail")  # fmt: skip
    if not headers.get("authorization"):
        return Denied(codes.GW_AUTH, "Incorrect IAM authentication information: x-auth-token "
                      "not found")  # fmt: skip
    return _check_signature(state, method, path, query, headers, body)


def _check_signature(
    state: SimState,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
) -> Caller | Denied:
    keys = state.cloud.keys
    used: list[str] = []

    def secret_for(ak: str) -> str | None:
        used.append(ak)
        key = keys.get(ak)
        return key.sk if key else None

    try:
        verify(method, path, query, headers, body, secret_for, datetime.now(UTC), MAX_SKEW_SECONDS)
    except SignatureError as error:
        if error.reason == "signature expired":
            return Denied(codes.GW_SIGNATURE_EXPIRED, "Incorrect app authentication information: "
                          "signature expired")  # fmt: skip
        return Denied(codes.GW_AUTH, f"Incorrect IAM authentication information: {error.reason}")
    key = keys[used[-1]]
    if key.security_token and headers.get("x-security-token") != key.security_token:
        return Denied(codes.GW_AUTH, "Incorrect IAM authentication information: security token "
                      "invalid")  # fmt: skip
    return Caller(key.projects, key.projects)
