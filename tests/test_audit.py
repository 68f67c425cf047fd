"""The audit trail: what record() stores, that nothing can rewrite it, and the /audit/ page."""

import csv
import datetime
import io
import json
import re
from html import unescape

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.db.models import ProtectedError
from django.test import RequestFactory
from django.utils import timezone

from dashboard import audit
from dashboard.models import AuditEvent, Rollout
from dashboard.roles import OPERATOR, require_role
from tests.conftest import CLIENT_ADDR


def _event(**overrides) -> AuditEvent:
    fields = {"actor": "otto", "action": "rollout.plan", "target": "group-a"} | overrides
    return audit.record(None, fields.pop("action"), **fields)


# --- record() ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_record_takes_actor_groups_and_address_from_the_sso_identity(operator_client):
    response = operator_client.get("/")
    event = audit.record(response.wsgi_request, "rollout.plan", target="group-a", servers=3)
    event.refresh_from_db()
    assert event.actor == "otto.operator"
    assert event.groups == ["dashboard-operators"]
    assert event.client_ip == CLIENT_ADDR
    assert (event.action, event.outcome, event.target) == ("rollout.plan", "ok", "group-a")
    assert event.details == {"servers": 3}


@pytest.mark.django_db
def test_record_without_a_request_names_the_actor_it_is_given():
    rollout = Rollout.objects.create(created_by="otto")
    event = audit.record(None, "rollout.submitted", actor="otto", rollout=rollout, chunk=1)
    assert (event.actor, event.client_ip, event.rollout_id) == ("otto", None, rollout.pk)
    assert audit.record(None, "rollout.sync", rollout=rollout.pk).rollout_id == rollout.pk


@pytest.mark.django_db
def test_record_scrubs_secrets_from_details():
    event = _event(error="401 from IAM, X-Auth-Token: MIIabcdef123456", sk="Zk3mYw9Q")
    assert "MIIabcdef123456" not in str(event.details)
    assert event.details["sk"] == "[redacted]"


@pytest.mark.django_db
def test_record_refuses_an_unknown_outcome():
    with pytest.raises(ValueError):
        _event(outcome="maybe")


@pytest.mark.django_db
def test_a_failed_role_check_writes_a_refused_event():
    @require_role(OPERATOR)
    def act(request):
        raise AssertionError("must not run")

    request = RequestFactory().post("/rollouts/1/cancel/", REMOTE_ADDR="203.0.113.5")
    from django.contrib.auth import get_user_model

    request.user = get_user_model().objects.create(username="vera")
    request.roles = frozenset({"viewer"})
    with pytest.raises(PermissionDenied):
        act(request)
    event = AuditEvent.objects.get()
    assert (event.actor, event.action, event.outcome) == ("vera", "access.denied", "refused")
    assert event.details == {"code": "role.missing", "required_role": "operator", "method": "POST"}


# --- Append-only ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_model_refuses_to_change_or_delete_an_event():
    event = _event()
    event.outcome = "error"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()


@pytest.mark.django_db
def test_the_database_refuses_a_queryset_update():
    _event()
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.update(outcome="ok", actor="someone-else")
    assert AuditEvent.objects.get().actor == "otto"


@pytest.mark.django_db
def test_the_database_refuses_a_queryset_delete():
    _event()
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.count() == 1


@pytest.mark.django_db
def test_the_database_refuses_raw_sql_too():
    _event()
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE dashboard_auditevent SET actor = 'x'")
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM dashboard_auditevent")


@pytest.mark.django_db
def test_a_rollout_with_audit_events_cannot_be_deleted():
    rollout = Rollout.objects.create(created_by="otto")
    _event(rollout=rollout)
    with pytest.raises(ProtectedError), transaction.atomic():
        rollout.delete()


@pytest.mark.django_db(transaction=True)
def test_flush_empties_the_trail_and_puts_the_guard_back():
    _event()
    call_command("flush", interactive=False, verbosity=0)
    assert not AuditEvent.objects.exists()
    _event()
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.update(actor="x")


# --- The page and the export ---------------------------------------------------------------


@pytest.mark.django_db
def test_the_audit_page_filters_by_actor_action_outcome_and_rollout(viewer_client):
    rollout = Rollout.objects.create(created_by="otto")
    _event(actor="otto", action="rollout.confirm", rollout=rollout)
    _event(actor="otto", action="rollout.plan")
    _event(actor="ada", action="rollout.approve", outcome="refused")
    page = viewer_client.get("/audit/", {"actor": "otto", "action": "rollout.plan"})
    assert [e.action for e in page.context["events"]] == ["rollout.plan"]
    page = viewer_client.get("/audit/", {"outcome": "refused"})
    assert [e.actor for e in page.context["events"]] == ["ada"]
    page = viewer_client.get("/audit/", {"rollout": rollout.pk})
    assert [e.action for e in page.context["events"]] == ["rollout.confirm"]


@pytest.mark.django_db
def test_the_audit_page_filters_by_date_range(viewer_client):
    _event(action="today")
    today = timezone.localdate()
    tomorrow = today + datetime.timedelta(days=1)
    assert len(viewer_client.get("/audit/", {"since": tomorrow}).context["events"]) == 0
    page = viewer_client.get("/audit/", {"since": today, "until": today, "action": "today"})
    assert [e.action for e in page.context["events"]] == ["today"]


@pytest.mark.django_db
def test_the_audit_page_ignores_a_malformed_filter(viewer_client):
    _event()
    page = viewer_client.get("/audit/", {"since": "yesterday-ish"})
    assert page.status_code == 200
    assert len(page.context["events"]) == 1


@pytest.mark.django_db
def test_the_audit_page_is_paginated(viewer_client):
    for n in range(55):
        _event(target=f"server-{n}")
    first = viewer_client.get("/audit/")
    assert len(first.context["events"]) == 50
    second = viewer_client.get("/audit/", {"page": 2})
    assert len(second.context["events"]) == 5
    assert b"Page 2 of 2" in second.content


@pytest.mark.django_db
def test_the_audit_page_needs_an_identity(client):
    assert client.get("/audit/").status_code == 403
    assert client.get("/audit/export.csv").status_code == 403


@pytest.mark.django_db
def test_the_csv_export_carries_the_filtered_events_and_is_itself_audited(viewer_client):
    _event(actor="otto", action="rollout.plan", target="grp")
    _event(actor="ada", action="rollout.approve")
    response = viewer_client.get("/audit/export.csv", {"actor": "otto"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["actor"], r["action"], r["target"]) for r in rows] == [
        ("otto", "rollout.plan", "grp")
    ]
    export = AuditEvent.objects.get(action="audit.export")
    assert export.actor == "vera.viewer"


@pytest.mark.django_db
def test_the_csv_export_defuses_spreadsheet_formulas(viewer_client):
    _event(target='=HYPERLINK("http://evil.test","click")')
    body = b"".join(viewer_client.get("/audit/export.csv").streaming_content).decode()
    row = next(r for r in csv.DictReader(io.StringIO(body)) if r["action"] == "rollout.plan")
    assert row["target"].startswith("'=")


@pytest.mark.django_db
def test_the_csv_export_writes_the_details_as_json(viewer_client):
    _event(action="detailed", via="worker", servers=["srv-1", "srv-2"], done=True, note="数")
    body = b"".join(viewer_client.get("/audit/export.csv").streaming_content).decode()
    row = next(r for r in csv.DictReader(io.StringIO(body)) if r["action"] == "detailed")
    assert json.loads(row["details"]) == {
        "via": "worker",
        "servers": ["srv-1", "srv-2"],
        "done": True,
        "note": "数",
    }


# --- Times carry their zone ----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("zone", "offset"), [("UTC", "+0000"), ("Asia/Shanghai", "+0800")])
def test_the_audit_page_shows_times_with_their_utc_offset(viewer_client, settings, zone, offset):
    settings.TIME_ZONE = zone
    event = _event(action="zoned")
    body = viewer_client.get("/audit/", {"action": "zoned"}).content.decode()
    local = timezone.localtime(event.at, timezone.get_fixed_timezone(int(offset[:3]) * 60))
    assert f"{local:%Y-%m-%d %H:%M:%S} {offset}" in body
    assert f'datetime="{local.isoformat()}"' in body


@pytest.mark.django_db
def test_the_csv_export_writes_iso_8601_times_with_their_zone(viewer_client, settings):
    settings.TIME_ZONE = "Asia/Shanghai"
    event = _event(action="zoned")
    body = b"".join(viewer_client.get("/audit/export.csv").streaming_content).decode()
    row = next(r for r in csv.DictReader(io.StringIO(body)) if r["action"] == "zoned")
    written = datetime.datetime.fromisoformat(row["at"])
    assert written.utcoffset() is not None
    assert written == event.at


@pytest.mark.django_db
def test_an_invalid_audit_filter_is_named_and_the_valid_ones_still_apply(viewer_client):
    _event(actor="otto", action="rollout.plan")
    _event(actor="ada", action="rollout.approve")

    page = viewer_client.get("/audit/", {"actor": "ada", "rollout": "abc"}).content.decode()

    assert 'id="refused-filters" role="alert"' in page
    rows = page.split("<tbody>", 1)[1]
    assert "rollout.approve" in rows and "rollout.plan" not in rows  # actor=ada still applied


@pytest.mark.django_db
def test_the_refusal_is_an_alert_around_the_list_not_on_it(viewer_client):
    page = viewer_client.get("/audit/", {"rollout": "abc"}).content.decode()

    assert '<div id="refused-filters" role="alert"><ul class="messages">' in page
    assert not re.search(r"<(ul|ol)[^>]*\brole=", page)  # a role on a list orphans its items


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["since", "from", "until", "to"])
def test_a_date_that_is_not_one_is_named_with_what_was_given(viewer_client, name):
    _event(actor="ada")

    page = viewer_client.get("/audit/", {name: "garbage"}).content.decode()

    refusal = re.search(r'<div id="refused-filters" role="alert">.*?</div>', page, re.S)
    assert refusal is not None
    label = "From" if name in ("since", "from") else "Until"
    assert f"{label} “garbage”: Enter a valid date." in refusal.group(0)
    assert "ada" in page.split("<tbody>", 1)[1]  # nothing else was asked: every event


@pytest.mark.django_db
def test_the_dates_may_be_named_as_the_page_labels_them(viewer_client):
    _event(action="today.one")
    today = timezone.localdate()
    tomorrow = (today + datetime.timedelta(days=1)).isoformat()

    before = viewer_client.get("/audit/", {"to": today.isoformat()}).content.decode()
    after = viewer_client.get("/audit/", {"from": tomorrow}).content.decode()

    assert "today.one" in before.split("<tbody>", 1)[1]
    assert "today.one" not in after.split("<tbody>", 1)[1]
    assert "refused-filters" not in before + after
    assert f'value="{tomorrow}"' in after  # the date box shows it


@pytest.mark.django_db
def test_a_refused_rollout_number_stays_in_its_box(viewer_client):
    page = viewer_client.get("/audit/", {"rollout": "abc"}).content.decode()

    box = re.search(r'<input[^>]*name="rollout"[^>]*>', page).group(0)
    assert 'value="abc"' in box and 'type="number"' not in box  # a number box would empty it
    assert 'inputmode="numeric"' in box


@pytest.mark.django_db
def test_an_export_with_an_invalid_filter_is_refused_not_the_whole_trail(viewer_client):
    _event(actor="otto")
    refused = viewer_client.get("/audit/export.csv", {"since": "yesterday"})
    assert refused.status_code == 400
    assert "These filters are not valid" in refused.content.decode()
    assert not AuditEvent.objects.filter(action="audit.export").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "said"),
    [
        ({"rollout": "9" * 25}, "No rollout has a number that large."),
        ({"rollout": "0"}, "Rollouts are numbered from 1."),
        ({"rollout": "abc"}, "A rollout is named by its number, e.g. 12."),
        ({"from": "2026-11-30", "to": "2026-11-01"}, "“Until” comes before “From”"),
    ],
)
def test_a_refused_filter_says_what_is_wrong_in_plain_words(viewer_client, query, said):
    _event(actor="ada")
    page = viewer_client.get("/audit/", query).content.decode()
    refusal = re.search(r'<div id="refused-filters" role="alert">(.*?)</div>', page, re.S)
    assert refusal is not None and said in unescape(refusal.group(1))
