"""Roles and the checks every view and action goes through.

Roles are ordered: each one includes the rights of those before it, except that approving
is its own right (an admin may approve too).
"""

from collections.abc import Callable, Iterable
from functools import wraps

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

VIEWER, OPERATOR, APPROVER, ADMIN = "viewer", "operator", "approver", "admin"
ROLES = (VIEWER, OPERATOR, APPROVER, ADMIN)

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
    return role in getattr(request, "roles", frozenset())


def require_role(role: str) -> Callable:
    """View decorator: 403 unless the request's SSO identity holds `role`."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated or not has_role(request, role):
                raise PermissionDenied(f"This needs the {role} role.")
            return view(request, *args, **kwargs)

        wrapped.required_role = role  # type: ignore[attr-defined]
        return wrapped

    return decorator


def public(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Mark a view as reachable without an identity (only /healthz)."""
    view.public = True  # type: ignore[attr-defined]
    return view
