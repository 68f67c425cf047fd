"""Who is making this request.

The company's authenticating proxy (oauth2-proxy, Cloudflare Access, Pomerium, IAP, …) decides
who someone is; this module decides whether to believe it. Two modes:

* Header mode (default): the proxy sends the user, e-mail and groups in plain headers
  (SSO_USER_HEADER, SSO_EMAIL_HEADER, SSO_GROUPS_HEADER). They are believed only when the TCP
  peer (REMOTE_ADDR) is inside TRUSTED_PROXY_CIDRS. Anyone else sending them is refused.
* Signed-assertion mode (SSO_JWT_HEADER set): the proxy sends a JWT that is verified against
  the proxy's JWKS, issuer and audience. Plain identity headers are then refused outright.

In local development (DEBUG on, loopback client, no identity headers) the demo identity from
DASHBOARD_DEV_USER stands in for the proxy; DASHBOARD_DEV_SECOND_USER is a second one the
browser can switch to (a cookie), so one person can try an approval by a second person.

An identity header that arrives more than once is refused: the proxy must overwrite them, and a
proxy that appends would let a client add a user or a group of its own. Servers merge repeats
into one comma-joined value (gunicorn, Django's runserver), so a comma in a user name, an
e-mail or a token is a repeat; groups legitimately hold commas, so a repeated groups header is
seen only through the marker dashboard.gunicorn_conf adds.

Every refusal carries a stable reason code (`Refusal.code`, e.g. `sso.untrusted_peer`), audited
and shown on the 403 page.

The result is `request.user` (a Django user, created on first sight only for people holding a
role), `request.sso_identity`, `request.sso_groups`, `request.roles` (the global roles) and
`request.project_roles` (the roles a project's own groups grant in that project; holding one
lets a person in as a viewer, see dashboard/roles.py) — recomputed from the headers on every
request, so removing someone from a group takes effect on their next click. The roles are also
remembered (`roles.remember_seen`, a query only when they changed), and the service tokens the
person made stop acting with a role they no longer hold, from that same click.
"""

import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import jwt
from django.conf import settings
from django.contrib.auth import get_user_model, login, logout
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.defaults import permission_denied

from dashboard import audit
from dashboard.gunicorn_conf import REPEATED_HEADERS
from dashboard.netaddr import is_loopback, is_trusted_proxy
from dashboard.roles import for_groups, remember_seen

security_log = logging.getLogger("django.security.sso")

# Asymmetric algorithms only: a shared-secret (HS*) or unsigned ("none") token is never valid.
JWT_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]
_JWKS_URL_CACHE_SECONDS = 300
_JWKS_FETCH_TIMEOUT = 5


@dataclass(frozen=True)
class Identity:
    """The person the proxy vouches for. `source` is "header", "jwt" or "dev"."""

    username: str
    email: str = ""
    groups: tuple[str, ...] = ()
    source: str = "header"


@dataclass(frozen=True)
class Refusal:
    """An identity was claimed but must not be believed. `code` is the stable reason code;
    `claimed` is for the audit only (the client chose it: it never keys anything)."""

    code: str
    reason: str
    claimed: str = ""
    details: dict = field(default_factory=dict)


UNTRUSTED_PEER = "sso.untrusted_peer"
DUPLICATE_HEADER = "sso.duplicate_header"
PLAIN_HEADER_IN_JWT_MODE = "sso.plain_header"
INVALID_ASSERTION = "sso.invalid_assertion"
NO_USER_CLAIM = "sso.no_user_claim"
BAD_USER_CLAIM = "sso.bad_user_claim"
BAD_GROUPS_CLAIM = "sso.bad_groups_claim"
MALFORMED_USER = "sso.malformed_user"
NO_ROLE = "sso.no_role"
ACCOUNT_DISABLED = "sso.account_disabled"
NO_IDENTITY = "sso.no_identity"
CSRF_FAILED = "csrf.failed"


# --- Headers --------------------------------------------------------------------------------


def meta_key(header: str) -> str:
    """X-Forwarded-User -> HTTP_X_FORWARDED_USER, the name Django's request.META uses."""
    return "HTTP_" + header.strip().upper().replace("-", "_")


def _identity_header_keys() -> list[str]:
    names = [settings.SSO_USER_HEADER, settings.SSO_EMAIL_HEADER, settings.SSO_GROUPS_HEADER]
    return [meta_key(name) for name in names if name]


def _claims_identity(request: HttpRequest) -> bool:
    return any(request.META.get(key) for key in _identity_header_keys())


def _header(request: HttpRequest, name: str) -> str:
    return request.META.get(meta_key(name), "").strip() if name else ""


def _repeated_header(request: HttpRequest, names: Iterable[str]) -> str:
    """The first of these headers that arrived more than once, or "" when none did."""
    marked = {
        name.strip().upper() for name in request.META.get(meta_key(REPEATED_HEADERS), "").split(",")
    }
    for name in names:
        if not name:
            continue
        if name.strip().upper() in marked:
            return name
        # Single-valued headers: a comma is two values merged by the server.
        if name != settings.SSO_GROUPS_HEADER and "," in request.META.get(meta_key(name), ""):
            return name
    return ""


def _split_groups(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """oauth2-proxy joins groups with commas; JWT claims carry a list (or one string)."""
    if not value:
        return ()
    items = value.split(",") if isinstance(value, str) else [str(item) for item in value]
    return tuple(dict.fromkeys(item.strip() for item in items if item.strip()))


def _identity_from_headers(request: HttpRequest) -> Identity | Refusal | None:
    peer = request.META.get("REMOTE_ADDR", "")
    claimed = _header(request, settings.SSO_USER_HEADER)
    if not is_trusted_proxy(peer):
        return Refusal(UNTRUSTED_PEER, "identity header from an untrusted address", claimed)
    names = (settings.SSO_USER_HEADER, settings.SSO_EMAIL_HEADER, settings.SSO_GROUPS_HEADER)
    if repeated := _repeated_header(request, names):
        return Refusal(DUPLICATE_HEADER, f"{repeated} arrived more than once", claimed)
    if not claimed:
        return None  # the proxy sent no user: anonymous
    return Identity(
        username=claimed,
        email=_header(request, settings.SSO_EMAIL_HEADER),
        groups=_split_groups(_header(request, settings.SSO_GROUPS_HEADER)),
        source="header",
    )


# --- Signed assertions (JWT) ----------------------------------------------------------------

_jwks_lock = threading.Lock()
_jwks_file_cache: dict[tuple[str, float], jwt.PyJWKSet] = {}
_jwks_clients: dict[str, jwt.PyJWKClient] = {}


def _jwks_from_file(path: str) -> jwt.PyJWKSet:
    mtime = Path(path).stat().st_mtime
    with _jwks_lock:
        cached = _jwks_file_cache.get((path, mtime))
        if cached is None:
            cached = jwt.PyJWKSet.from_dict(json.loads(Path(path).read_text()))
            _jwks_file_cache.clear()
            _jwks_file_cache[(path, mtime)] = cached
        return cached


def _signing_key(token: str) -> jwt.PyJWK:
    """The JWKS key the token names by `kid` (or the only key when it names none)."""
    kid = jwt.get_unverified_header(token).get("kid")
    if settings.SSO_JWT_JWKS_FILE:
        keys = _jwks_from_file(settings.SSO_JWT_JWKS_FILE).keys
        matching = [key for key in keys if kid is None or key.key_id == kid]
        if len(matching) != 1:
            raise jwt.InvalidTokenError("no unique JWKS key for this token")
        return matching[0]
    if settings.SSO_JWT_JWKS_URL:
        with _jwks_lock:
            client = _jwks_clients.get(settings.SSO_JWT_JWKS_URL)
            if client is None:
                # PyJWKClient caches the key set and refetches it when an unknown kid shows up
                # (key rotation), so the proxy's JWKS is fetched rarely, not per request.
                client = jwt.PyJWKClient(
                    settings.SSO_JWT_JWKS_URL,
                    cache_jwk_set=True,
                    lifespan=_JWKS_URL_CACHE_SECONDS,
                    timeout=_JWKS_FETCH_TIMEOUT,
                )
                _jwks_clients[settings.SSO_JWT_JWKS_URL] = client
        return client.get_signing_key_from_jwt(token)
    raise ImproperlyConfigured("SSO_JWT_HEADER needs SSO_JWT_JWKS_FILE or SSO_JWT_JWKS_URL.")


def verify_assertion(token: str) -> dict:
    """The verified claims of a proxy's JWT. Raises jwt.InvalidTokenError on any doubt."""
    if not settings.SSO_JWT_ISSUER or not settings.SSO_JWT_AUDIENCE:
        raise ImproperlyConfigured("SSO_JWT_HEADER needs SSO_JWT_ISSUER and SSO_JWT_AUDIENCE.")
    key = _signing_key(token)
    return jwt.decode(
        token,
        # The raw key, not the PyJWK: the allowed list below (asymmetric only) is what counts,
        # and the key's own type rejects an algorithm of another family.
        key=key.key,
        algorithms=JWT_ALGORITHMS,
        audience=settings.SSO_JWT_AUDIENCE,
        issuer=settings.SSO_JWT_ISSUER,
        leeway=30,
        options={"require": ["exp", "iat", "iss", "aud"]},
    )


def _identity_from_jwt(request: HttpRequest) -> Identity | Refusal | None:
    if _claims_identity(request):
        # In this mode only the signed assertion counts; a plain header is a forgery attempt.
        return Refusal(
            PLAIN_HEADER_IN_JWT_MODE,
            "plain identity header in signed-assertion mode",
            claimed=_header(request, settings.SSO_USER_HEADER),
        )
    token = _header(request, settings.SSO_JWT_HEADER)
    if not token:
        return None
    peer = request.META.get("REMOTE_ADDR", "")
    if settings.TRUSTED_PROXY_CIDRS and not is_trusted_proxy(peer):
        return Refusal(UNTRUSTED_PEER, "signed assertion from an untrusted address")
    if _repeated_header(request, [settings.SSO_JWT_HEADER]):
        return Refusal(DUPLICATE_HEADER, f"{settings.SSO_JWT_HEADER} arrived more than once")
    try:
        claims = verify_assertion(token)
    except (jwt.InvalidTokenError, jwt.PyJWKClientError, ValueError, OSError) as exc:
        return Refusal(
            INVALID_ASSERTION, "invalid signed assertion", details={"error": type(exc).__name__}
        )
    claim = claims.get(settings.SSO_JWT_USER_CLAIM)
    if claim is None or claim == "":
        return Refusal(NO_USER_CLAIM, "signed assertion without a user claim")
    if not isinstance(claim, str):
        # A list or an object would otherwise become a user name like "['a', 'b']".
        return Refusal(BAD_USER_CLAIM, f"the user claim is a {type(claim).__name__}, not a string")
    username = claim.strip()
    if not username:
        return Refusal(NO_USER_CLAIM, "signed assertion without a user claim")
    groups = claims.get(settings.SSO_JWT_GROUPS_CLAIM)
    if not (groups is None or isinstance(groups, str) or _all_strings(groups)):
        return Refusal(BAD_GROUPS_CLAIM, "the groups claim is neither a string nor a list of them")
    email = claims.get("email")
    return Identity(
        username=username,
        email=email if isinstance(email, str) else "",
        groups=_split_groups(groups),
        source="jwt",
    )


def _all_strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


# --- The middleware -------------------------------------------------------------------------

_MAX_USERNAME = 150  # django.contrib.auth's username column
_MAX_EMAIL = 254  # … and its email column


def _acceptable_username(username: str) -> bool:
    # Control characters have no place in a name and would forge log lines or CSV rows; a
    # comma is two names run together (a repeated header, a list claim).
    return len(username) <= _MAX_USERNAME and username.isprintable() and "," not in username


def _acceptable_email(email: str) -> bool:
    return len(email) <= _MAX_EMAIL and email.isprintable()


# Names which demo identity a loopback browser uses in DEBUG ("second" or absent).
DEMO_COOKIE = "dashboard_demo_identity"


def demo_identities(request: HttpRequest) -> dict | None:
    """The local demo's two identities, to switch between: `first`, `second` and whether the
    browser is switched to the second (`is_second`); None outside the demo."""
    identity = getattr(request, "sso_identity", None)
    if not (settings.DEBUG and settings.DASHBOARD_DEV_SECOND_USER) or identity is None:
        return None
    if identity.source != "dev":
        return None
    second = settings.DASHBOARD_DEV_SECOND_USER
    return {
        "first": settings.DASHBOARD_DEV_USER,
        "second": second,
        "is_second": identity.username == second,
    }


def identity_from_request(request: HttpRequest) -> Identity | Refusal | None:
    """Who the request is from: an Identity, a Refusal, or None for an anonymous request."""
    if settings.SSO_JWT_HEADER:
        found = _identity_from_jwt(request)
    elif _claims_identity(request):
        found = _identity_from_headers(request)
    else:
        found = None
    if found is not None:
        return found
    remote = request.META.get("REMOTE_ADDR", "")
    if settings.DEBUG and settings.DASHBOARD_DEV_USER and is_loopback(remote):
        if settings.DASHBOARD_DEV_SECOND_USER and request.COOKIES.get(DEMO_COOKIE) == "second":
            # The second demo identity, so one person can try a four-eyes approval.
            return Identity(
                settings.DASHBOARD_DEV_SECOND_USER,
                groups=tuple(settings.DASHBOARD_DEV_SECOND_GROUPS),
                source="dev",
            )
        return Identity(
            settings.DASHBOARD_DEV_USER, groups=tuple(settings.DASHBOARD_DEV_GROUPS), source="dev"
        )
    return None


def _refuse(request: HttpRequest, refusal: Refusal) -> HttpResponse:
    security_log.warning(
        "refused SSO identity: %s (%s); peer=%s claimed=%r path=%s",
        refusal.reason,
        refusal.code,
        request.META.get("REMOTE_ADDR", ""),
        refusal.claimed[:150],
        request.path[:200],
    )
    if request.user.is_authenticated:
        logout(request)
    # Counted by client address and code, never by the claimed name (the client chooses it):
    # a flood of spoofed identities adds one row a minute, however many names it tries.
    audit.refusal(
        request,
        "sso.refused",
        code=refusal.code,
        once_per_minute=True,
        target=request.path,
        reason=refusal.reason,
        claimed_user=refusal.claimed,
        **refusal.details,
    )
    return permission_denied(request, PermissionDenied(refusal.reason))


class SSOMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.sso_identity = None
        request.sso_groups = ()
        request.roles = frozenset()
        request.project_roles = {}
        found = identity_from_request(request)
        if isinstance(found, Refusal):
            return _refuse(request, found)
        if found is None:
            if request.user.is_authenticated:
                logout(request)  # no header: the old session ends, the request is anonymous
            return self.get_response(request)

        if not _acceptable_username(found.username) or not _acceptable_email(found.email):
            return _refuse(request, Refusal(MALFORMED_USER, "malformed user name", found.username))
        request.sso_identity = found
        request.sso_groups = found.groups
        roles, project_roles = for_groups(found.groups)
        if not roles:
            # Their service tokens stop too (a person once recorded is recorded again).
            remember_seen(
                request, found.username, found.groups, roles, project_roles, signed_in=False
            )
            return _refuse(
                request, Refusal(NO_ROLE, "no dashboard role in the SSO groups", found.username)
            )
        user = request.user
        if not user.is_authenticated or user.get_username() != found.username:
            if user.is_authenticated:
                logout(request)  # a header naming another user ends the old session
            user, _ = get_user_model().objects.get_or_create(
                username=found.username, defaults={"email": found.email}
            )
            if not user.is_active:
                return _refuse(
                    request, Refusal(ACCOUNT_DISABLED, "account disabled locally", found.username)
                )
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        elif not user.is_active:
            return _refuse(
                request, Refusal(ACCOUNT_DISABLED, "account disabled locally", found.username)
            )
        if found.email and user.email != found.email:
            user.email = found.email
            user.save(update_fields=["email"])
        request.roles = roles
        request.project_roles = project_roles
        # Remembered (a query) only when they changed; a token never acts with more.
        remember_seen(request, found.username, found.groups, roles, project_roles)
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        # Deny by default: a view is reachable without a role only if marked @public.
        if getattr(view_func, "public", False):
            return None
        if not request.roles:
            request.refusal_code = NO_IDENTITY
            raise PermissionDenied(_("Sign in through the company SSO to use the dashboard."))
        return None


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a refused state change is audited like any other refusal."""
    request.refusal_code = CSRF_FAILED
    if getattr(request, "sso_identity", None) is not None:
        # Anonymous requests are not audited anywhere: nobody to attribute them to, and an
        # unauthenticated client must not be able to fill the audit table.
        audit.refusal(
            request, "csrf.refused", code=CSRF_FAILED, target=request.path, reason=reason[:200]
        )
    return render(request, "403_csrf.html", status=403)
