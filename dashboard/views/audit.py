"""GET /audit/ (filtered, paginated) and GET /audit/export.csv (the same filter, all rows).

Both need the viewer role: everyone who may watch rollouts may see who started them. The
export itself is audited, so reading the whole trail leaves a trace. `?project=` narrows both
to the events that touched one project, as on the inventory pages.
"""

import csv
import json
from collections.abc import Iterator

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy
from django.views.decorators.http import require_GET

from dashboard import audit as audit_log
from dashboard.exports import safe_cell
from dashboard.forms import AuditFilterForm
from dashboard.models import AuditEvent
from dashboard.roles import VIEWER, require_role
from dashboard.views.inventory import chosen_project

PAGE_SIZE = 50
CSV_COLUMNS = [
    "at",
    "actor",
    "action",
    "outcome",
    "target",
    "rollout",
    "project",
    "client_ip",
    "groups",
]
# The export's header row, in the language of the person downloading it (the automation API
# is the place for stable field names).
CSV_TITLES = {
    "at": pgettext_lazy("audit export", "at"),
    "actor": pgettext_lazy("audit export", "actor"),
    "action": pgettext_lazy("audit export", "action"),
    "outcome": pgettext_lazy("audit export", "outcome"),
    "target": pgettext_lazy("audit export", "target"),
    "rollout": pgettext_lazy("audit export", "rollout"),
    "project": pgettext_lazy("audit export", "project"),
    "client_ip": pgettext_lazy("audit export", "client_ip"),
    "groups": pgettext_lazy("audit export", "groups"),
    "details": pgettext_lazy("audit export", "details"),
}


def _filtered(request: HttpRequest) -> tuple[AuditFilterForm, QuerySet[AuditEvent]]:
    # An unknown ?project= is left out (the page says so), as on every page.
    form = AuditFilterForm(chosen_project(request).params or None)
    return form, form.filter(AuditEvent.objects.select_related("project"))


@require_GET
@require_role(VIEWER)
def audit_list(request: HttpRequest) -> HttpResponse:
    form, events = _filtered(request)
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    choice = chosen_project(request)
    query = choice.params.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "events": page.object_list,
        "query": query.urlencode(),
        "project_choice": choice,
        "actions": AuditEvent.objects.values_list("action", flat=True)
        .order_by("action")
        .distinct(),
    }
    return render(request, "audit/list.html", context)


class _Echo:
    def write(self, value: str) -> str:
        return value


def _json(details: dict) -> str:
    """The details as JSON (what a script reading the export can parse), not Python's repr."""
    return json.dumps(details, ensure_ascii=False, sort_keys=True, default=str)


def _rows(events: QuerySet[AuditEvent], header: list[str]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for event in events.iterator(chunk_size=2000):
        yield writer.writerow(
            [
                safe_cell(event.at.isoformat()),
                safe_cell(event.actor),
                safe_cell(event.action),
                safe_cell(event.outcome),
                safe_cell(event.target),
                safe_cell(event.rollout_id or ""),
                safe_cell(event.project.name if event.project else ""),
                safe_cell(event.client_ip or ""),
                safe_cell(" ".join(event.groups or [])),
                safe_cell(_json(event.details) if event.details else ""),
            ]
        )


@require_GET
@require_role(VIEWER)
def audit_export(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    form, events = _filtered(request)
    if form.errors:  # not the whole trail when a filter was asked for and could not be read
        wrong = [f"{form[name].label}: {' '.join(errors)}" for name, errors in form.errors.items()]
        message = _("These filters are not valid: %(errors)s") % {"errors": "; ".join(wrong)}
        return render(request, "400.html", {"message": message}, status=400)
    target = request.get_full_path()[:255]
    if not audit_log.within_ration(request, "audit.export", target=target):
        message = _("Too many exports from your address this minute: try again in a minute.")
        refused = render(request, "429.html", {"message": message}, status=429)
        refused["Retry-After"] = "60"
        return refused
    audit_log.record(request, "audit.export", target=target)
    filename = f"audit-{timezone.now():%Y%m%d-%H%M%S}.csv"
    # The header is worded now: the rows stream after this view has returned.
    header = [str(CSV_TITLES[column]) for column in [*CSV_COLUMNS, "details"]]
    response = StreamingHttpResponse(_rows(events, header), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
