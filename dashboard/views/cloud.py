"""GET /cloud/: the connection check, for admins (settings, credentials and permissions).

It runs the same check as `manage.py cloudcheck` (dashboard.cloud.check) on each visit: a
dozen reads sent once, never a write. It changes nothing and shows no secret.
"""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dashboard.cloud.check import SIGNATURE_SKEW_LIMIT, run_check
from dashboard.roles import ADMIN, require_role


@require_GET
@require_role(ADMIN)
def connection_check(request: HttpRequest) -> HttpResponse:
    report = run_check()
    skew = report.clock_skew
    context = {
        "report": report,
        "skew_seconds": None if skew is None else round(skew.total_seconds(), 1),
        "skew_limit_minutes": int(SIGNATURE_SKEW_LIMIT.total_seconds() // 60),
    }
    return render(request, "cloud/check.html", context, status=200)
