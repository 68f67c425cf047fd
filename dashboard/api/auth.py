"""Who is calling the API, and whether they may call it now.

Two ways in, tried in this order:

* a service token (`Authorization: Bearer dsh_…`), for pipelines. The request then looks to
  the rest of the dashboard exactly like a signed-in person's: `request.user` is a user named
  `token:<name>` (never saved), `request.sso_identity` carries that name and `request.roles`
  the token's role with the rights it implies. So `require_role`, `can_approve`, the lifecycle's
  actor and the audit need nothing of their own for tokens;
* the SSO session the browser already has (identity and roles set by the SSO middleware). A
  cookie travels without being asked for, so its state changes need the CSRF token, as pages do.

Each caller then takes one request from its per-minute allowance (limits.py), counted in the
database so every web process shares it.
"""

from django.contrib.auth import get_user_model
from django.http import HttpRequest
from ninja.security import HttpBearer
from ninja.security.base import AuthBase
from ninja.utils import check_csrf

from dashboard import audit
from dashboard.api import limits, tokens
from dashboard.api.problems import TITLES, Problem
from dashboard.models import ServiceToken
from dashboard.roles import IMPLIED
from dashboard.sso import CSRF_FAILED, Identity

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class Caller:
    """What the API knows of whoever is calling: `key` scopes idempotency keys and limits."""

    def __init__(self, name: str, key: str, token: ServiceToken | None = None) -> None:
        self.name = name
        self.key = key
        self.token = token


def _sign_in_as_token(request: HttpRequest, token: ServiceToken) -> None:
    request.user = get_user_model()(username=token.actor)
    request.sso_identity = Identity(username=token.actor, groups=(), source="token")
    request.sso_groups = ()
    request.roles = frozenset(IMPLIED[token.role])


class TokenAuth(HttpBearer):
    """Service tokens made on /tokens/."""

    def authenticate(self, request: HttpRequest, token: str) -> Caller:
        found = tokens.identify(token.strip())
        if isinstance(found, str):
            # Rationed per client address like every refusal, so a flood of guesses cannot
            # fill the append-only audit table.
            audit.refusal(request, "api.refused", code=found, target=request.path[:255])
            raise Problem(401, found, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        _sign_in_as_token(request, found)
        return limits.admit(Caller(found.actor, f"t{found.pk}", found))


class SessionAuth(AuthBase):
    """The SSO session of a person using the API from their browser."""

    openapi_type = "apiKey"
    openapi_in = "header"
    openapi_name = "X-CSRFToken"
    openapi_description = (
        "A signed-in SSO session (through the company proxy). POST, PUT and DELETE also need "
        "the CSRF token in X-CSRFToken, as the pages send it."
    )

    def __call__(self, request: HttpRequest) -> Caller | None:
        identity = getattr(request, "sso_identity", None)
        if identity is None or not getattr(request, "roles", None):
            return None
        if request.method not in SAFE_METHODS and check_csrf(request) is not None:
            audit.refusal(request, "csrf.refused", code=CSRF_FAILED, target=request.path[:255])
            raise Problem(403, "csrf.failed", TITLES["csrf.failed"])
        return limits.admit(Caller(identity.username, f"u{request.user.pk}"))


def caller(request: HttpRequest) -> Caller:
    """The authenticated caller of this API request (set by the API's auth)."""
    return request.auth  # type: ignore[attr-defined]
