"""GET /audit: the audit trail, with the audit page's filters (its own form), newest first."""

from django.db.models import Q, QuerySet
from django.http import HttpRequest
from ninja import Query, Router

from dashboard.api import schemas
from dashboard.api.auth import by, scope
from dashboard.api.inventory import form_errors
from dashboard.api.problems import Problem
from dashboard.api.rollouts import MAX_LIMIT, id_page
from dashboard.forms import AuditFilterForm
from dashboard.models import AuditEvent
from dashboard.roles import VIEWER

router = Router(tags=["audit"])


@router.get(
    "/audit",
    response=schemas.reads(schemas.AuditPage),
    summary="Read the audit trail",
    auth=by(VIEWER),
)
def list_audit(
    request: HttpRequest,
    filters: Query[schemas.AuditFilter],
    cursor: str | None = Query(None, max_length=20, description="a page's next cursor"),
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
):
    """Who did what, from where, and how it ended (pages and API alike). A token scoped to a
    project reads only the events about that project."""
    form = AuditFilterForm(filters.model_dump(exclude_none=True))
    if not form.is_valid():
        raise Problem(422, "validation.invalid", errors=form_errors(form))
    rows = _visible(request, AuditEvent.objects.select_related("project", "rollout__project"))
    return id_page(form.filter(rows), cursor, limit)


def _visible(request: HttpRequest, events: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
    """A scoped token's events: those about its project (named, or through the rollout)."""
    project = scope(request)
    if project is None:
        return events
    return events.filter(Q(project=project) | Q(project__isnull=True, rollout__project=project))
