"""Planning across projects through the pages: a rollout never spans projects, a selection
that does becomes one plan per project shown together, and each offers only its images."""

import re

import pytest

from dashboard import inventory, projects
from dashboard.models import Image, Rollout, Server


@pytest.fixture
def synced(two_projects):
    beijing, singapore = projects.rows()
    for project in (beijing, singapore):
        assert inventory.sync_now(project=project).state == "succeeded"
    return beijing, singapore


def _plan(client, server_ids: list[str], target: str = "group"):
    return client.post(
        "/rollouts/new/plan/",
        {
            "server": server_ids,
            "target_image": target,
            "reason": "CHG-42 monthly patch",
            "preset": "standard",
        },
    )


@pytest.mark.django_db
def test_a_selection_in_two_projects_becomes_one_plan_per_project(synced, admin_client_sso):
    beijing, singapore = synced
    picked = [
        *Server.objects.filter(project=beijing, drift=True).values_list("id", flat=True)[:3],
        *Server.objects.filter(project=singapore, drift=True).values_list("id", flat=True)[:2],
    ]

    response = _plan(admin_client_sso, picked)

    assert response.status_code == 302, response.content.decode()[:2000]
    plans = list(Rollout.objects.order_by("pk"))
    assert [p.project for p in plans] == [beijing, singapore]
    assert plans[0].plan_set and plans[0].plan_set == plans[1].plan_set
    for plan in plans:
        rows = plan.servers.all()
        assert {Server.objects.get(pk=r.server_id).project_id for r in rows} == {plan.project_id}
        # Each server goes to its own group's image, an image of its own project.
        for row in rows.filter(verdict="change"):
            assert Image.objects.filter(project=plan.project, id=row.to_image_id).exists()
    page = admin_client_sso.get(response["Location"]).content.decode()
    assert f"/rollouts/new/{plans[1].pk}/" in page  # the sibling plan is shown beside it


@pytest.mark.django_db
def test_all_drifted_servers_of_two_projects_can_be_planned_from_the_form(synced, admin_client_sso):
    """The overview's "not on their group's image" → Select all matching → Plan: the form
    offers each server its own group's image (no image is common to both projects)."""
    import re

    from dashboard.models import Selection

    admin_client_sso.post("/rollouts/selection/", {"all_matching": "1", "filter": "drift=yes"})
    selection = Selection.objects.get()
    drifted = Server.objects.filter(drift=True, gone=False)
    assert {s.project_id for s in drifted} == {p.pk for p in synced}

    form = admin_client_sso.get("/rollouts/new/", {"selection": selection.pk})
    html = form.content.decode()

    assert form.context["form"].options == []  # no one image suits both projects
    assert re.search(
        r'<input type="radio" name="target_image" value="group" id="target-group"\s+checked', html
    )
    assert "one plan per project" in html
    assert "No image is compatible" not in html
    button = re.search(r'<button type="submit"([^>]*)>Show the plan', html).group(1)
    assert "disabled" not in button

    response = admin_client_sso.post(
        "/rollouts/new/plan/",
        {
            "selection": selection.pk,
            "target_image": "group",
            "reason": "CHG-7 drift",
            "preset": "standard",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    plans = list(Rollout.objects.order_by("pk"))
    assert len(plans) == 2 and plans[0].plan_set == plans[1].plan_set
    assert sum(p.servers.count() for p in plans) == drifted.count()


@pytest.mark.django_db
def test_a_selection_in_one_project_is_offered_only_that_projects_images(synced, admin_client_sso):
    beijing, singapore = synced
    picked = list(Server.objects.filter(project=singapore).values_list("id", flat=True)[:3])
    form_page = admin_client_sso.get("/rollouts/new/", {"server": picked})
    html = form_page.content.decode()
    beijing_only = set(Image.objects.filter(project=beijing).values_list("id", flat=True)) - set(
        Image.objects.filter(project=singapore).values_list("id", flat=True)
    )
    assert beijing_only
    assert not any(f'value="{image_id}"' in html for image_id in beijing_only)
    # Naming another project's image anyway is refused, and nothing is stored.
    response = _plan(admin_client_sso, picked, target=sorted(beijing_only)[0])
    assert response.status_code == 400
    assert not Rollout.objects.exists()


@pytest.mark.django_db
def test_one_image_for_servers_of_two_projects_needs_it_in_both(synced, admin_client_sso):
    beijing, singapore = synced
    picked = [
        Server.objects.filter(project=beijing).values_list("id", flat=True)[0],
        Server.objects.filter(project=singapore).values_list("id", flat=True)[0],
    ]
    image = Image.objects.filter(project=beijing).exclude(
        id__in=Image.objects.filter(project=singapore).values("id")
    )[0]

    response = _plan(admin_client_sso, picked, target=image.id)

    assert response.status_code == 400
    assert not Rollout.objects.exists()


@pytest.mark.django_db
def test_a_rollout_of_a_project_no_longer_configured_waits_and_says_why(
    synced, admin_client_sso, settings
):
    from dashboard.rollouts import engine, lifecycle

    _beijing, singapore = synced
    picked = list(Server.objects.filter(project=singapore, drift=True).values_list("id", flat=True))
    _plan(admin_client_sso, picked)
    rollout = Rollout.objects.get()
    lifecycle.transition(rollout, "confirm")
    settings.CLOUD_PROJECTS = settings.CLOUD_PROJECTS[:1]  # singapore dropped from the file

    step = engine.begin(rollout.pk)

    rollout.refresh_from_db()
    assert step.state == "queued" and step.retry_in is not None  # waits; nothing sent
    assert "no longer configured" in rollout.cloud_error
    assert rollout.cloud_unreachable_since is not None
    page = admin_client_sso.get(f"/rollouts/{rollout.pk}/").content.decode()
    assert "no longer configured" in page


@pytest.mark.django_db
def test_a_finished_rollout_refreshes_its_own_projects_inventory(synced, admin_client_sso):
    from dashboard.models import RolloutServer, SyncRun
    from dashboard.rollouts import refresh

    _beijing, singapore = synced
    picked = list(
        Server.objects.filter(project=singapore, drift=True).values_list("id", flat=True)[:2]
    )
    assert _plan(admin_client_sso, picked).status_code == 302
    rollout = Rollout.objects.get(project=singapore)
    Rollout.objects.filter(pk=rollout.pk).update(state=Rollout.State.RUNNING)
    rollout.servers.update(state=RolloutServer.State.SUCCEEDED)

    assert refresh.finish_if_done(rollout) == Rollout.State.SUCCEEDED

    requested = SyncRun.objects.get(trigger="rollout")
    assert requested.project_id == singapore.pk


@pytest.mark.django_db
def test_a_plan_cannot_follow_up_a_rollout_of_another_project(synced, admin_client_sso):
    beijing, singapore = synced
    source = _plan(admin_client_sso, list(_drifted(beijing, 2)))
    assert source.status_code == 302
    source = Rollout.objects.get()
    Rollout.objects.filter(pk=source.pk).update(state=Rollout.State.FAILED)
    theirs = list(_drifted(singapore, 2))

    refused = admin_client_sso.post(
        "/rollouts/new/plan/",
        {"server": theirs, "target_image": "group", "reason": "x", "retry_of": source.pk},
    )

    assert refused.status_code == 400
    assert f"This plan cannot follow up rollout #{source.pk}" in refused.content.decode()
    assert Rollout.objects.count() == 1  # nothing stored, nothing filed under it


@pytest.mark.django_db
def test_a_plan_cannot_follow_up_a_rollout_that_does_not_hold_its_servers(synced, admin_client_sso):
    beijing, _singapore = synced
    drifted = list(_drifted(beijing, 4))
    assert _plan(admin_client_sso, drifted[:2]).status_code == 302
    source = Rollout.objects.get()

    refused = admin_client_sso.post(
        "/rollouts/new/plan/",
        {"server": drifted[2:], "target_image": "group", "reason": "x", "retry_of": source.pk},
    )
    assert refused.status_code == 400
    assert not source.derived.exists()
    assert 'name="retry_of"' not in refused.content.decode()  # comes back as a new rollout

    image = Server.objects.get(pk=drifted[0]).group.image_id
    own = {"server": drifted[:1], "target_image": image, "reason": "x", "retry_of": source.pk}
    # Its own servers, but a plan not yet run: nothing to follow up (as /retry/ says).
    assert admin_client_sso.post("/rollouts/new/plan/", own).status_code == 400
    Rollout.objects.filter(pk=source.pk).update(state=Rollout.State.FAILED)
    answer = admin_client_sso.post("/rollouts/new/plan/", own)
    assert answer.status_code == 302, re.findall(r"<li>(.*?)</li>", answer.content.decode())
    assert source.derived.get().kind == Rollout.Kind.RETRY


def _drifted(project, n: int):
    return Server.objects.filter(project=project, drift=True, gone=False).values_list(
        "id", flat=True
    )[:n]
