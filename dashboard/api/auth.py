"""Who is calling the API, and whether they may call it now.

Two ways in, tried in this order:

* a service token (`Authorization: Bearer dsh_…`), for pipelines. The request then looks to
  the rest of the dashboard exactly like a signed-in person's: `request.user` is a user named
  `token:<name>` (never saved), `request.sso_identity` carries that name and `request.roles`
  the token's role with the rights it implies. So `require_role`, `can_approve`, the lifecycle's
  actor and the audit need nothing of their own for tokens. A token scoped to one project
  (`ServiceToken.project`) holds its role in that project only (`request.project_roles`) and
  sees nothing else: `visible()` is the one filter every read and action goes through, so
  another project's rollout is a 404, as if it did not exist;
* the SSO session the browser already has (identity and roles set by the SSO middleware). A
  cookie travels without being asked for, so its state changes need the CSRF token, as pages do.

Each caller then takes one request from its per-minute allowance (limits.py), counted in the
database so every web process shares it, and must hold the operation's role (`by(role)`),
checked before the request's body is read: someone who may not act learns nothing of how to
ask. A body must be JSON, and may not carry a NUL character (PostgreSQL refuses NUL in text).
"""

import json
import re

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import RequestDataTooBig
from django.db.models import QuerySet
from django.http import HttpRequest
from ninja.security import HttpBearer
from ninja.security.base import AuthBase
from ninja.utils import check_csrf

from dashboard import audit
from dashboard.api import limits, tokens
from dashboard.api.problems import TITLES, Problem
from dashboard.models import Project, ServiceToken
from dashboard.roles import IMPLIED, ROLES, holds_anywhere, refuse
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
    if token.project is None:
        request.roles = frozenset(IMPLIED[token.role])
        request.project_roles = {}
    else:
        # The role in its project and nowhere else; nothing global.
        request.roles = frozenset()
        request.project_roles = {token.project.name: frozenset(IMPLIED[token.role])}


class TokenAuth(HttpBearer):
    """Service tokens made on /tokens/."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def authenticate(self, request: HttpRequest, token: str) -> Caller:
        found = tokens.identify(token.strip(), request)
        if isinstance(found, str):
            # Rationed per client address like every refusal, so a flood of guesses cannot
            # fill the append-only audit table.
            audit.refusal(request, "api.refused", code=found, target=request.path[:255])
            raise Problem(401, found, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        _sign_in_as_token(request, found)
        return _admit(request, Caller(found.actor, f"t{found.pk}", found), self.role)


class SessionAuth(AuthBase):
    """The SSO session of a person using the API from their browser."""

    openapi_type = "apiKey"
    openapi_in = "header"
    openapi_name = "X-CSRFToken"
    openapi_description = (
        "A signed-in SSO session (through the company proxy). POST, PUT and DELETE also need "
        "the CSRF token in X-CSRFToken, as the pages send it."
    )

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def __call__(self, request: HttpRequest) -> Caller | None:
        identity = getattr(request, "sso_identity", None)
        if identity is None or not getattr(request, "roles", None):
            return None
        if request.method not in SAFE_METHODS and check_csrf(request) is not None:
            audit.refusal(request, "csrf.refused", code=CSRF_FAILED, target=request.path[:255])
            raise Problem(403, "csrf.failed", TITLES["csrf.failed"])
        return _admit(request, Caller(identity.username, f"u{request.user.pk}"), self.role)


def by(role: str) -> list:
    """The auth of an operation that needs `role`: a token or a session holding it."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    return [TokenAuth(role), SessionAuth(role)]


def _admit(request: HttpRequest, caller: Caller, role: str) -> Caller:
    """Count the request, and let in a caller holding `role` globally or in some project; an
    operation on one project's rollout then checks that project (roles.require_in)."""
    limits.admit(caller)
    if not holds_anywhere(request, role):
        refuse(request, "access.denied", role=role, method=request.method, via="api")
    _screen_body(request)
    return caller


_ESCAPED_NUL = re.compile(rb"\\u0000", re.IGNORECASE)
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def _screen_body(request: HttpRequest) -> None:
    """Only JSON bodies, and no NUL in them (nor in any string they hold)."""
    if request.method in SAFE_METHODS:
        return
    content_type = request.content_type or ""
    if request.META.get("CONTENT_LENGTH", "0") not in ("", "0") and content_type != (
        "application/json"
    ):
        raise Problem(415, "request.unsupported_media_type", "Send the body as application/json.")
    try:
        body = request.body
    except RequestDataTooBig:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raise Problem(413, "request.too_large", f"The body is larger than {limit} bytes.") from None
    if b"\0" in body or _ESCAPED_NUL.search(body):
        raise Problem(400, "request.malformed", "The body contains a NUL character.")
    if _ESCAPED_SURROGATE.search(body) and _lone_surrogate(body):
        raise Problem(400, "request.malformed", "The body contains a lone UTF-16 surrogate.")


def _lone_surrogate(body: bytes) -> bool:
    """A \\uD800 to \\uDFFF escape not in a pair: JSON allows it, but no database stores it."""
    try:
        json.dumps(json.loads(body), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    except (ValueError, RecursionError):  # not JSON (or too deep): the parser answers that
        return False
    return False


def caller(request: HttpRequest) -> Caller:
    """The authenticated caller of this API request (set by the API's auth)."""
    return request.auth  # type: ignore[attr-defined]


def scope(request: HttpRequest) -> Project | None:
    """The one project the caller is limited to (a scoped token), or None: every project."""
    token = getattr(getattr(request, "auth", None), "token", None)
    return token.project if token is not None else None


def visible(request: HttpRequest, rows: QuerySet) -> QuerySet:
    """The rows (of a model with a `project`) the caller may see: a token scoped to a project
    sees only that project's; everyone else sees every project (as on the pages)."""
    project = scope(request)
    return rows if project is None else rows.filter(project=project)
