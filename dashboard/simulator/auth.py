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


def authenticate(
    state: SimState,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
) -> Denied | None:
    """None when the request may pass the gateway, else why not (APIGW code and message)."""
    token = headers.get("x-auth-token")
    if token:
        if state.token_valid(token):
            return None
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
) -> Denied | None:
    config = state.config

    def secret_for(ak: str) -> str | None:
        return config.sk if ak == config.ak else None

    try:
        verify(method, path, query, headers, body, secret_for, datetime.now(UTC), MAX_SKEW_SECONDS)
    except SignatureError as error:
        if error.reason == "signature expired":
            return Denied(codes.GW_SIGNATURE_EXPIRED, "Incorrect app authentication information: "
                          "signature expired")  # fmt: skip
        return Denied(codes.GW_AUTH, f"Incorrect IAM authentication information: {error.reason}")
    if config.security_token and headers.get("x-security-token") != config.security_token:
        return Denied(codes.GW_AUTH, "Incorrect IAM authentication information: security token "
                      "invalid")  # fmt: skip
    return None
