"""Who is making this request.

In production the company's authenticating proxy sends the identity; in local development
(DEBUG on, loopback client) the demo identity from DASHBOARD_DEV_USER stands in for it.
The result is `request.user` (a Django user, created on first sight) plus `request.roles`
and `request.sso_groups`, recomputed on every request.
"""

import ipaddress
import logging

from django.conf import settings
from django.contrib.auth import get_user_model, login, logout
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from dashboard.roles import roles_for_groups

security_log = logging.getLogger("django.security.sso")


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class Identity:
    __slots__ = ("email", "groups", "username")

    def __init__(self, username: str, email: str = "", groups: tuple[str, ...] = ()) -> None:
        self.username = username
        self.email = email
        self.groups = groups


def identity_from_request(request: HttpRequest) -> Identity | None:
    remote = request.META.get("REMOTE_ADDR", "")
    if settings.DEBUG and settings.DASHBOARD_DEV_USER and _is_loopback(remote):
        return Identity(settings.DASHBOARD_DEV_USER, groups=tuple(settings.DASHBOARD_DEV_GROUPS))
    return None


class SSOMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        identity = identity_from_request(request)
        request.sso_groups = identity.groups if identity else ()
        request.roles = roles_for_groups(request.sso_groups) if identity else frozenset()
        if identity is None or not request.roles:
            if request.user.is_authenticated:
                logout(request)
        elif request.user.username != identity.username:
            if request.user.is_authenticated:
                logout(request)  # a header naming another user ends the old session
            user, _ = get_user_model().objects.get_or_create(
                username=identity.username, defaults={"email": identity.email}
            )
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        # Deny by default: a view is reachable without a role only if marked @public.
        if getattr(view_func, "public", False):
            return None
        if not request.roles:
            raise PermissionDenied("Sign in through the company SSO to use the dashboard.")
        return None
