"""GET /cloud/: the connection check, for admins (settings, credentials and permissions).

It runs the same check as `manage.py cloudcheck` (dashboard.cloud.check) on each visit: a
dozen reads sent once, never a write. It changes nothing and shows no secret. With several
projects, `?project=<name>` says whose connection to check (the default project's without).
"""

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dashboard import projects
from dashboard.cloud.check import SIGNATURE_SKEW_LIMIT, Report, run_check
from dashboard.models import Project
from dashboard.roles import ADMIN, require_role
from dashboard.views.inventory import chosen_project


@require_GET
@require_role(ADMIN)
def connection_check(request: HttpRequest) -> HttpResponse:
    choice = chosen_project(request)
    project = choice.project or projects.default()
    try:
        report = run_check(projects.client_for(project))
    except ImproperlyConfigured as error:  # a region without the service, an unreadable secret
        report = _unchecked(project, "unknown", error)
    except ValueError as error:  # no credentials at all
        report = _unchecked(project, "none", error)
    skew = report.clock_skew
    context = {
        "report": report,
        "checked": project,
        "projects": projects.rows() if choice.several else [],
        "unknown_project": choice.unknown,
        "skew_seconds": None if skew is None else round(skew.total_seconds(), 1),
        "skew_limit_minutes": int(SIGNATURE_SKEW_LIMIT.total_seconds() // 60),
    }
    return render(request, "cloud/check.html", context, status=200)


def _unchecked(project: Project, auth_mode: str, error: Exception) -> Report:
    """The report of a check that could not start: the project's client cannot be built."""
    return Report(region=project.region, endpoints={}, auth_mode=auth_mode, problem=str(error))
