"""Service tokens: issued on the /tokens/ page, shown once, stored as a SHA-256, revocable.

A secret is `dsh_` and 43 random URL-safe characters (256 bits), so the hash of a guess never
matches and no slow password hash is needed. `identify()` says which live token a secret is,
or why it is not one (a stable code, used in the 401 problem and the audit).
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from dashboard.models import Project, ServiceToken
from dashboard.roles import ROLES

SECRET_PREFIX = "dsh_"  # noqa: S105 (a marker, not a secret)
MAX_SECRET_LENGTH = 200
LAST_USED_RESOLUTION = timedelta(seconds=60)  # last_used_at is written at most once a minute

INVALID, EXPIRED, REVOKED = "auth.invalid_token", "auth.token_expired", "auth.token_revoked"


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
) -> Issued:
    """Make a token, for every project or (`project`) for one: it then sees and acts on that
    project only. Raises ValueError for an unknown role (the page's form checks it first)."""
    if role not in ROLES:
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
    )
    return Issued(token, secret)


def identify(secret: str) -> ServiceToken | str:
    """The live token this secret belongs to, or why it is none (INVALID, EXPIRED, REVOKED)."""
    if not secret.startswith(SECRET_PREFIX) or len(secret) > MAX_SECRET_LENGTH:
        return INVALID
    token = (
        ServiceToken.objects.select_related("project").filter(secret_hash=digest(secret)).first()
    )
    if token is None:
        return INVALID
    if token.revoked_at is not None:
        return REVOKED
    now = timezone.now()
    if token.expires_at <= now:
        return EXPIRED
    # One conditional UPDATE, at most once a minute per token: not a write per request.
    ServiceToken.objects.filter(pk=token.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
    ).update(last_used_at=now)
    return token


def revoke(token: ServiceToken, *, by: str) -> bool:
    """Revoke the token now. True if this call did (False: it was revoked already)."""
    return bool(
        ServiceToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now(), revoked_by=by[:150]
        )
    )
