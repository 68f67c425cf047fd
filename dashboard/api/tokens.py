"""Service tokens: issued on the /tokens/ page, shown once, stored as a SHA-256, revocable.

A secret is `dsh_` and 43 random URL-safe characters (256 bits), so the hash of a guess never
matches and no slow password hash is needed. `identify()` says which live token a secret is,
or why it is not one (a stable code, used in the 401 problem and the audit). A token never
acts with more than its creator's roles as the SSO last showed them (dashboard/roles.py): one
its creator no longer holds the role for is revoked, and answers CREATOR_LOST_ROLE.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from dashboard import roles
from dashboard.models import Project, ServiceToken

SECRET_PREFIX = "dsh_"  # noqa: S105 (a marker, not a secret)
MAX_SECRET_LENGTH = 200
LAST_USED_RESOLUTION = timedelta(seconds=60)  # last_used_at is written at most once a minute

INVALID, EXPIRED, REVOKED = "auth.invalid_token", "auth.token_expired", "auth.token_revoked"
CREATOR_LOST_ROLE = "auth.token_creator_lost_role"
CREATOR_UNSEEN = "auth.token_creator_unseen"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Issued:
    token: ServiceToken
    secret: str  # shown to the admin once, never stored


def issue(
    *,
    name: str,
    role: str,
    expires_at: datetime,
    created_by: str,
    project: Project | None = None,
    form_nonce: str = "",
) -> Issued:
    """Make a token, for every project or (`project`) for one: it then sees and acts on that
    project only. `form_nonce`: the one-time nonce of the /tokens/ form that asked for it.
    Raises ValueError for an unknown role (the page's form checks it first)."""
    if role not in roles.ROLES:
        raise ValueError(f"unknown role {role!r}")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    token = ServiceToken.objects.create(
        name=name,
        role=role,
        project=project,
        secret_hash=digest(secret),
        prefix=secret[: len(SECRET_PREFIX) + 4],
        created_by=created_by,
        expires_at=expires_at,
        form_nonce=form_nonce,
    )
    return Issued(token, secret)


def identify(secret: str, request: HttpRequest | None = None) -> ServiceToken | str:
    """The live token this secret belongs to, or why it is none (INVALID, EXPIRED, REVOKED,
    CREATOR_LOST_ROLE, CREATOR_UNSEEN). A token whose creator was last seen without its role
    is revoked here (audited, for `request`) if the SSO middleware has not done it yet; one
    whose creator has not been seen for TOKEN_CREATOR_UNSEEN_DAYS is refused meanwhile."""
    if not secret.startswith(SECRET_PREFIX) or len(secret) > MAX_SECRET_LENGTH:
        return INVALID
    token = (
        ServiceToken.objects.select_related("project")
        .annotate(creator_groups=roles.creator_groups(), creator_seen_at=roles.creator_seen_at())
        .filter(secret_hash=digest(secret))
        .first()
    )
    if token is None:
        return INVALID
    if token.revoked_at is not None:
        lost = token.revoked_reason == ServiceToken.CREATOR_LOST_ROLE
        return CREATOR_LOST_ROLE if lost else REVOKED
    now = timezone.now()
    if token.expires_at <= now:
        return EXPIRED
    if not roles.token_within_creator(token):
        roles.revoke_for_lost_role(request, token)
        return CREATOR_LOST_ROLE
    if roles.creator_unseen_too_long(token, now):
        return CREATOR_UNSEEN  # suspended: works again once its creator is seen
    # One conditional UPDATE, at most once a minute per token: not a write per request.
    ServiceToken.objects.filter(pk=token.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
    ).update(last_used_at=now)
    return token


def revoke(token: ServiceToken, *, by: str) -> bool:
    """Revoke the token now. True if this call did (False: it was revoked already)."""
    return token.revoke(by=by)


def revoke_all_of(username: str, *, by: str) -> list[ServiceToken]:
    """Revoke every live token `username` made (their name's case aside), e.g. someone who
    has left; the tokens this call revoked."""
    made = ServiceToken.objects.made_by(username).filter(revoked_at__isnull=True)
    return [token for token in made.select_related("project") if token.revoke(by=by)]
