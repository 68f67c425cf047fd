"""GET /audit/ (filtered, paginated) and GET /audit/export.csv (the same filter, all rows).

Both need the viewer role: everyone who may watch rollouts may see who started them. The
export itself is audited, so reading the whole trail leaves a trace.
"""

import csv
import datetime
from collections.abc import Iterator

from django import forms
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import pgettext_lazy
from django.views.decorators.http import require_GET

from dashboard import audit as audit_log
from dashboard.exports import safe_cell
from dashboard.models import AuditEvent
from dashboard.roles import VIEWER, require_role

PAGE_SIZE = 50
CSV_COLUMNS = ["at", "actor", "action", "outcome", "target", "rollout", "client_ip", "groups"]
# The export's header row, in the language of the person downloading it (the automation API
# is the place for stable field names).
CSV_TITLES = {
    "at": pgettext_lazy("audit export", "at"),
    "actor": pgettext_lazy("audit export", "actor"),
    "action": pgettext_lazy("audit export", "action"),
    "outcome": pgettext_lazy("audit export", "outcome"),
    "target": pgettext_lazy("audit export", "target"),
    "rollout": pgettext_lazy("audit export", "rollout"),
    "client_ip": pgettext_lazy("audit export", "client_ip"),
    "groups": pgettext_lazy("audit export", "groups"),
    "details": pgettext_lazy("audit export", "details"),
}
OUTCOME_CHOICES = [
    ("", pgettext_lazy("audit outcome", "any")),
    (audit_log.OK, pgettext_lazy("audit outcome", "ok")),
    (audit_log.REFUSED, pgettext_lazy("audit outcome", "refused")),
    (audit_log.ERROR, pgettext_lazy("audit outcome", "error")),
]


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False, max_length=150)
    action = forms.CharField(required=False, max_length=64)
    outcome = forms.ChoiceField(required=False, choices=OUTCOME_CHOICES)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    # A bigger number than the id column holds is an error to show, not a query to send.
    rollout = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1)

    def filter(self, events: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        """`events` narrowed to the valid filters (invalid ones are ignored and shown)."""
        data = self.cleaned_data if self.is_valid() else {}
        if data.get("actor"):
            events = events.filter(actor__iexact=data["actor"])
        if data.get("action"):
            events = events.filter(action__startswith=data["action"])
        if data.get("outcome"):
            events = events.filter(outcome=data["outcome"])
        if data.get("since"):
            events = events.filter(at__gte=_start_of(data["since"]))
        if data.get("until"):
            events = events.filter(at__lt=_start_of(data["until"] + datetime.timedelta(days=1)))
        if data.get("rollout"):
            events = events.filter(rollout_id=data["rollout"])
        return events


def _start_of(day: datetime.date) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


def _filtered(request: HttpRequest) -> tuple[AuditFilterForm, QuerySet[AuditEvent]]:
    form = AuditFilterForm(request.GET or None)
    return form, form.filter(AuditEvent.objects.all())


@require_GET
@require_role(VIEWER)
def audit_list(request: HttpRequest) -> HttpResponse:
    form, events = _filtered(request)
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "events": page.object_list,
        "query": query.urlencode(),
        "actions": AuditEvent.objects.values_list("action", flat=True)
        .order_by("action")
        .distinct(),
    }
    return render(request, "audit/list.html", context)


class _Echo:
    def write(self, value: str) -> str:
        return value


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
                safe_cell(event.client_ip or ""),
                safe_cell(" ".join(event.groups or [])),
                safe_cell(event.details or ""),
            ]
        )


@require_GET
@require_role(VIEWER)
def audit_export(request: HttpRequest) -> StreamingHttpResponse:
    _form, events = _filtered(request)
    audit_log.record(request, "audit.export", target=request.get_full_path()[:255])
    filename = f"audit-{timezone.now():%Y%m%d-%H%M%S}.csv"
    # The header is worded now: the rows stream after this view has returned.
    header = [str(CSV_TITLES[column]) for column in [*CSV_COLUMNS, "details"]]
    response = StreamingHttpResponse(_rows(events, header), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
