"""A selection of 5,000 servers: stored, planned and confirmed with a selection id, never one
form field per server (Django refuses more than DATA_UPLOAD_MAX_NUMBER_FIELDS fields).

Runs on SQLite and on PostgreSQL (DATABASE_URL=postgres://…). Timings are printed, never
asserted."""

import time

import pytest
from django.conf import settings
from django.utils import timezone

from dashboard.models import Image, Rollout, RolloutServer, Selection, Server, ServerGroup
from tests.rollout_helpers import confirm_from_page

pytestmark = pytest.mark.django_db

FLEET = 5000


@pytest.fixture
def fleet(db):
    now = timezone.now()
    old = Image.objects.create(
        id="img-old",
        name="win2022-office-2026.10",
        os_type="Windows",
        architecture="x86",
        status="active",
        synced_at=now,
    )
    new = Image.objects.create(
        id="img-new",
        name="win2022-office-2026.11",
        os_type="Windows",
        architecture="x86",
        status="active",
        synced_at=now,
    )
    group = ServerGroup.objects.create(
        id="grp-office",
        name="office",
        os_type="Windows",
        image_id=new.id,
        image_name=new.name,
        synced_at=now,
        servers_live=FLEET,
    )
    Server.objects.bulk_create(
        [
            Server(
                id=f"srv-{i:05d}",
                name=f"office-{i:05d}",
                group=group,
                image_id=old.id,
                os_type="Windows",
                architecture="x86",
                system_disk_size=100,
                status="REGISTERED",
                drift=True,
                synced_at=now,
                search_text=f"office-{i:05d}",
            )
            for i in range(FLEET)
        ],
        batch_size=1000,
    )
    return group


def test_five_thousand_servers_are_planned_and_confirmed_by_selection_id(fleet, operator_client):
    assert settings.ROLLOUT_MAX_SERVERS >= FLEET
    started = time.monotonic()
    response = operator_client.post(
        "/rollouts/selection/", {"all_matching": "1", "filter": f"group={fleet.id}"}
    )
    assert response.status_code == 302
    selection = Selection.objects.get()
    assert len(selection.server_ids) == FLEET
    page = operator_client.get(f"/rollouts/new/?selection={selection.pk}")
    assert page.status_code == 200
    assert page.context["form"].initial["target_image"] == fleet.image_id
    selected = time.monotonic()

    data = {
        "selection": selection.pk,
        "target_image": fleet.image_id,
        "preset": "standard",
        "reason": "CHG-5000 the whole office fleet",
    }
    assert len(data) < settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    response = operator_client.post("/rollouts/new/plan/", data)
    assert response.status_code == 302, response.content[:2000]
    rollout = Rollout.objects.latest("pk")
    assert rollout.servers.filter(verdict="change").count() == FLEET
    planned = time.monotonic()

    plan_page = operator_client.get(f"/rollouts/new/{rollout.pk}/")
    assert plan_page.status_code == 200
    # The page counts all of them per group and shows one page of rows, saying where it is.
    assert len(plan_page.context["rows"]) == 100
    assert f"Servers 1\u2013100 of {FLEET}" in plan_page.text and "after=" in plan_page.text
    assert plan_page.context["per_group"][0].change == FLEET
    response = confirm_from_page(operator_client, rollout)
    assert response.status_code == 302
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.QUEUED
    assert rollout.servers.filter(state=RolloutServer.State.PENDING).count() == FLEET
    confirmed = time.monotonic()
    page = operator_client.get(f"/rollouts/{rollout.pk}/")
    assert page.status_code == 200 and f"Servers 1\u2013100 of {FLEET}" in page.text
    assert page.text.count('id="row-') == 100
    shown = time.monotonic()
    print(
        f"\n{FLEET} servers on {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}: "
        f"select {selected - started:.1f} s, plan {planned - selected:.1f} s, "
        f"show and confirm {confirmed - planned:.1f} s, rollout page {shown - confirmed:.1f} s"
    )


def test_one_more_than_the_maximum_is_refused_with_a_message(fleet, operator_client, settings):
    settings.ROLLOUT_MAX_SERVERS = 100
    operator_client.post(
        "/rollouts/selection/", {"all_matching": "1", "filter": f"group={fleet.id}"}
    )
    selection = Selection.objects.get()
    assert len(selection.server_ids) == 101  # one more, so the form can say it is too many
    response = operator_client.post(
        "/rollouts/new/plan/",
        {"selection": selection.pk, "target_image": fleet.image_id, "reason": "x"},
    )
    assert response.status_code == 400
    assert "a rollout holds at most 100" in response.content.decode()
    assert not Rollout.objects.exists()
