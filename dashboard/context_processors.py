from django.conf import settings
from django.http import HttpRequest

from dashboard import sso
from dashboard.roles import ADMIN, APPROVER, OPERATOR, ROLES, holds_anywhere


def dashboard(request: HttpRequest) -> dict:
    """What every page may ask of the person: their global roles, and whether they hold a role
    anywhere (`can_operate`, `can_approve`: globally or in at least one project).

    Whether they may act on one rollout depends on its project: pages about a rollout get
    `can_operate_this` / `can_approve_this` from their view.
    """
    roles = getattr(request, "roles", frozenset())
    demo = sso.demo_identities(request)
    return {
        "TIME_ZONE_NAME": settings.TIME_ZONE,
        "roles": [role for role in ROLES if role in roles],  # in rank order, the same each time
        "project_roles": getattr(request, "project_roles", {}),
        "can_operate": holds_anywhere(request, OPERATOR),
        "can_approve": holds_anywhere(request, APPROVER),
        "is_admin": ADMIN in roles,
        # In the local demo, the second person's name while the browser is switched to them
        # (every page then offers the way back); "" otherwise.
        "demo_switched_to": demo["second"] if demo and demo["is_second"] else "",
        "demo_first": demo["first"] if demo else "",
    }
