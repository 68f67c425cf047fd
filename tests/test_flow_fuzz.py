"""Fuzz the rollout form through the real view: whatever is posted, never a 500, and never a
stored plan of something invalid (an image the servers cannot take, a server outside the
selection, an empty reason, a safety setting out of range).

Values come from `hypothesis.extra.django.from_form` (what the form's fields accept) and from
strategies mixing good values with junk, per field.
"""

import pytest
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import from_form

from dashboard.forms import RolloutForm
from dashboard.models import Image, Rollout, Selection, Server, ServerGroup
from dashboard.rollouts import planning

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def inventory(db):
    now = timezone.now()
    images = [
        Image(id="w-old", name="win-2026.10", os_type="Windows", architecture="x86",
              status="active", synced_at=now),
        Image(id="w-new", name="win-2026.11", os_type="Windows", architecture="x86",
              status="active", synced_at=now),
        Image(id="w-cad", name="cad-2026.11", os_type="Windows", architecture="x86",
              status="active", synced_at=now),
        Image(id="l-1", name="linux-1", os_type="Linux", architecture="x86", status="active",
              synced_at=now),
    ]  # fmt: skip
    Image.objects.bulk_create(images)
    office = ServerGroup.objects.create(
        id="g-office", name="office", os_type="Windows", image_id="w-new", synced_at=now
    )
    cad = ServerGroup.objects.create(
        id="g-cad", name="cad", os_type="Windows", image_id="w-cad", synced_at=now
    )
    servers = [
        Server(id=f"s{i}", name=f"srv-{i}", group=office if i < 4 else cad,
               image_id="w-old", os_type="Windows", architecture="x86", system_disk_size=100,
               status="REGISTERED", frozen=i == 3, session_count=i % 3, synced_at=now)
        for i in range(7)
    ]  # fmt: skip
    Server.objects.bulk_create(servers)
    return [s.id for s in servers]


@pytest.fixture
def operator(sso_client) -> Client:
    return sso_client("fuzz.operator", ["dashboard-operators"])


OUTCOMES: list[int] = []  # answers seen, so a run shows plans were made, not only refused

JUNK = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "-1", "0", "101%", "1e9", "9" * 30, "%", "\x00", "NaN", "5%%"]),
)


def _field(*good) -> st.SearchStrategy:
    # Mostly good values, so plans are made too (and checked), with junk one time in five.
    good_values = st.sampled_from(list(good))
    return st.one_of(good_values, good_values, good_values, good_values, JUNK)


def _fields(server_ids: list[str]) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries(
        {
            "target_image": _field("w-new", "w-cad", "w-old", "l-1", planning.GROUP_IMAGES),
            "reason": _field("CHG-1", "x" * 500, "x" * 501),
            "preset": _field("careful", "standard", "custom"),
            "one_image_for_all": _field("on", "1"),
        },
        optional={
            "canary": _field("1", "10%", "0", ""),
            "canary_signoff": _field("on"),
            "wave_size": _field("2", "50%", ""),
            "soak_minutes": _field("0", "5", "1440", "1441"),
            "failure_budget": _field("0", "1", "10%"),
            "session_policy": _field("none", "wait", "wait_logoff"),
            "canary_session_policy": _field("", "none", "wait_logoff"),
            "session_wait_minutes": _field("0", "15"),
            "logoff_delay_minutes": _field("5"),
            "logoff_message": _field("Save your work"),
            "scheduled_at": _field("2099-01-01T10:00", "2000-01-01T10:00", "2099-13-45T99:99"),
            "start_below_sessions": _field("1", "1000000", "1000001"),
            "update_access_agent": _field("on"),
            "use_maintenance": _field("on"),
            "server": st.lists(st.sampled_from([*server_ids, "nope", ""]), max_size=9),
        },
    )


def _check(response, before: int, allowed_servers: set[str]) -> None:
    assert response.status_code in (302, 400, 404), response.status_code
    created = Rollout.objects.filter(pk__gt=before)
    if response.status_code != 302:
        assert not created.exists()
        return
    rollout = created.get()
    rows = list(rollout.servers.all())
    assert rows and {r.server_id for r in rows} <= allowed_servers
    assert 0 < len(rollout.reason) <= 500 and rollout.reason.strip()
    images = planning.image_map()
    for row in rows:
        if row.verdict == "change":
            server = Server.objects.get(pk=row.server_id)
            target = images[row.to_image_id]
            assert not server.frozen
            assert target.os_type == server.os_type and row.to_image_id != server.image_id
    assert rollout.soak_seconds <= 24 * 3600
    assert rollout.start_below_sessions is None or 1 <= rollout.start_below_sessions <= 10**6
    assert rollout.scheduled_at is None or rollout.scheduled_at > rollout.created_at
    assert rollout.session_policy in Rollout.SessionPolicy.values


def test_fuzzed_posts_never_fail_and_never_plan_something_invalid(inventory, operator):
    selection = Selection.objects.create(created_by="fuzz.operator", server_ids=inventory[:6])
    foreign = Selection.objects.create(created_by="someone.else", server_ids=inventory)

    @FUZZ
    @given(
        fields=_fields(inventory),
        scope=st.one_of(
            st.just({"selection": str(selection.pk)}),
            st.just({"selection": str(foreign.pk)}),
            st.builds(lambda s: {"selection": s}, JUNK),
            st.builds(lambda f: {"filter": f}, _field("group=g-office", "group=g-cad", "q=srv")),
            st.just({}),
        ),
    )
    def run(fields, scope):
        before = Rollout.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        data = {**fields, **scope}
        if "server" in data and ("selection" in data or "filter" in data):
            del data["server"]
        response = operator.post("/rollouts/new/plan/", data)
        if data.get("selection") == str(selection.pk):
            allowed = set(selection.server_ids)
        elif "filter" in data or "server" in data:
            allowed = set(inventory)
        else:
            allowed = set()
        _check(response, before, allowed)
        OUTCOMES.append(response.status_code)

    OUTCOMES.clear()
    run()
    assert 302 in OUTCOMES and 400 in OUTCOMES, OUTCOMES


def test_forms_drawn_from_the_form_itself_never_fail_through_the_view(inventory, operator):
    selection = Selection.objects.create(created_by="fuzz.operator", server_ids=inventory)
    forms = from_form(
        RolloutForm,
        form_kwargs={"server_ids": inventory, "max_servers": 5000},
        scheduled_at=st.none(),
    )

    @FUZZ
    @given(form=forms)
    def run(form):
        before = Rollout.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        data = {k: v for k, v in form.data.items() if v is not None and v is not False}
        response = operator.post("/rollouts/new/plan/", {**data, "selection": selection.pk})
        _check(response, before, set(inventory))
        OUTCOMES.append(response.status_code)

    OUTCOMES.clear()
    run()
    assert 400 in OUTCOMES, OUTCOMES
    print(f"\nform-drawn posts: {OUTCOMES.count(302)} planned, {OUTCOMES.count(400)} refused")
