"""A minute's refusals that were counted but not recorded are summarized by the worker's
periodic duties, not only when the next refusal happens to arrive."""

from datetime import timedelta

import pytest
from django.test import RequestFactory

from dashboard import audit
from dashboard.management.commands.worker import scheduled_duties
from dashboard.models import AuditEvent, RefusalWindow


def _refused_three_times(settings) -> None:
    settings.AUDIT_REFUSALS_PER_MINUTE = 1
    request = RequestFactory().get("/", REMOTE_ADDR="203.0.113.9")
    for _ in range(3):
        audit.refusal(request, "role.refused", code="role.missing", target="/rollouts/")


def _a_minute_passes() -> None:
    for window in RefusalWindow.objects.all():
        RefusalWindow.objects.filter(pk=window.pk).update(
            window_start=window.window_start - timedelta(minutes=1)
        )


@pytest.mark.django_db
def test_the_workers_duties_write_a_finished_minutes_summary(settings):
    _refused_three_times(settings)
    assert AuditEvent.objects.filter(action="role.refused").count() == 1
    _a_minute_passes()  # and no refusal follows

    for duty in scheduled_duties():
        duty()

    summary = AuditEvent.objects.get(action=audit.SUPPRESSED)
    assert summary.details["suppressed"] == 2
    assert summary.details["source"] == "203.0.113.9"
    for duty in scheduled_duties():
        duty()
    assert AuditEvent.objects.filter(action=audit.SUPPRESSED).count() == 1  # written once


@pytest.mark.django_db
def test_a_minute_still_running_is_not_summarized_yet(settings):
    _refused_three_times(settings)

    for duty in scheduled_duties():
        duty()

    assert not AuditEvent.objects.filter(action=audit.SUPPRESSED).exists()
