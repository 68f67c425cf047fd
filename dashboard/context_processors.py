from django.conf import settings
from django.http import HttpRequest

from dashboard.roles import ADMIN, APPROVER, OPERATOR


def dashboard(request: HttpRequest) -> dict:
    roles = getattr(request, "roles", frozenset())
    return {
        "TIME_ZONE_NAME": settings.TIME_ZONE,
        "roles": roles,
        "can_operate": OPERATOR in roles,
        "can_approve": APPROVER in roles,
        "is_admin": ADMIN in roles,
    }
