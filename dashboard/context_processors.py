from django.http import HttpRequest

from dashboard.roles import ADMIN, APPROVER, OPERATOR


def dashboard(request: HttpRequest) -> dict:
    roles = getattr(request, "roles", frozenset())
    return {
        "roles": roles,
        "can_operate": OPERATOR in roles,
        "can_approve": APPROVER in roles,
        "is_admin": ADMIN in roles,
    }
