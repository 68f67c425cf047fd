"""Roles and the checks every view and action goes through.

Roles come from SSO groups (settings.ROLE_GROUPS) and are recomputed on every request by
`dashboard.sso.SSOMiddleware`, which stores them on `request.roles`.

Roles are ordered: each one includes the rights of those before it, except that approving
is its own right (an operator cannot approve; an admin may do everything).
"""

from collections.abc import Callable, Iterable
from functools import wraps

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from dashboard import audit

VIEWER, OPERATOR, APPROVER, ADMIN = "viewer", "operator", "approver", "admin"
ROLES = (VIEWER, OPERATOR, APPROVER, ADMIN)
# How pages name each role, in the reader's language.
ROLE_LABELS = {
    VIEWER: gettext_lazy("viewer"),
    OPERATOR: gettext_lazy("operator"),
    APPROVER: gettext_lazy("approver"),
    ADMIN: gettext_lazy("admin"),
}

# What each role may do, spelled out so the URL-walk test reads like a policy.
IMPLIED = {
    VIEWER: {VIEWER},
    OPERATOR: {VIEWER, OPERATOR},
    APPROVER: {VIEWER, APPROVER},
    ADMIN: {VIEWER, OPERATOR, APPROVER, ADMIN},
}


def roles_for_groups(groups: Iterable[str]) -> frozenset[str]:
    """The roles the SSO groups grant, with the rights each role implies."""
    groups = set(groups)
    granted: set[str] = set()
    for role, role_groups in settings.ROLE_GROUPS.items():
        if groups & set(role_groups):
            granted |= IMPLIED[role]
    return frozenset(granted)


def has_role(request: HttpRequest, role: str) -> bool:
    """Whether this request's SSO identity holds `role` (directly or implied)."""
    return role in getattr(request, "roles", frozenset())


def _username(request: HttpRequest) -> str:
    user = getattr(request, "user", None)
    return user.get_username() if user is not None and user.is_authenticated else ""


def can_approve(request: HttpRequest, rollout_created_by: str) -> bool:
    """Approver (or admin) and not the person who submitted the rollout: four eyes."""
    username = _username(request)
    if not username or not has_role(request, APPROVER):
        return False
    return username.casefold() != (rollout_created_by or "").casefold()


def refuse(request: HttpRequest, action: str, *, role: str = "", **details) -> None:
    """Write a "refused" audit event and raise PermissionDenied (403).

    For checks inside a view (e.g. `can_approve`) so every refusal is audited the same way.
    The event carries the reason code `role.missing` (or `access.refused` without a role) and
    counts against the client's per-minute ration of refusal rows (audit.refusal).
    """
    code = "role.missing" if role else "access.refused"
    audit.refusal(request, action, code=code, target=request.path, required_role=role, **details)
    if role:
        raise PermissionDenied(_("This needs the %(role)s role.") % {"role": ROLE_LABELS[role]})
    raise PermissionDenied(_("Not allowed."))


def require_role(role: str) -> Callable:
    """View decorator: 403 (and an audit event) unless the request's identity holds `role`."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated or not has_role(request, role):
                refuse(request, "access.denied", role=role, method=request.method)
            return view(request, *args, **kwargs)

        wrapped.required_role = role  # type: ignore[attr-defined]
        return wrapped

    return decorator


def public(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Mark a view as reachable without an identity (only /healthz)."""
    view.public = True  # type: ignore[attr-defined]
    return view
