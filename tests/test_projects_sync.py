"""Several projects sync on their own: each stores only its servers, and one whose key is
refused fails its own run, says why, and holds up no other (over HTTP, one simulator serving
two projects)."""

import pytest

from dashboard import inventory, projects
from dashboard.models import Image, Server, ServerGroup, SyncRun


@pytest.mark.django_db
def test_each_project_syncs_its_own_fleet(two_projects):
    beijing, singapore = projects.rows()

    for project in (beijing, singapore):
        run = inventory.sync_now(project=project)
        assert run.state == SyncRun.State.SUCCEEDED, run.error

    assert Server.objects.filter(project=beijing).count() == 24
    assert Server.objects.filter(project=singapore).count() == 12
    assert not set(ServerGroup.objects.filter(project=beijing).values_list("id", flat=True)) & set(
        ServerGroup.objects.filter(project=singapore).values_list("id", flat=True)
    )
    assert Image.objects.filter(project=singapore).exists()
    # A second sync of one project leaves the other's servers live.
    inventory.sync_now(project=singapore)
    assert Server.objects.filter(project=beijing, gone=False).count() == 24
    figures = {p.name: inventory.fleet_figures(p).servers for p in (beijing, singapore)}
    assert figures == {"beijing": 24, "singapore": 12}
    assert inventory.fleet_figures().servers == 36


@pytest.mark.django_db
def test_a_refused_key_fails_its_own_project_only_and_pages_say_so(
    two_projects, monkeypatch, viewer_client
):
    monkeypatch.setenv("T_SG_SK", "not-the-secret")
    beijing, singapore = projects.rows()

    refused = inventory.sync_now(project=singapore)
    synced = inventory.sync_now(project=beijing)

    assert refused.state == SyncRun.State.FAILED
    assert refused.error  # the cloud's answer, kept for the pages
    assert synced.state == SyncRun.State.SUCCEEDED
    assert Server.objects.filter(project=beijing).count() == 24
    assert not Server.objects.filter(project=singapore).exists()
    [failing] = inventory.freshness()["failing_projects"]
    assert failing.project == singapore and failing.error == refused.error

    html = viewer_client.get("/").content.decode()
    assert "signature mismatch" in html  # the overview names the failing project's reason


@pytest.mark.django_db
def test_syncs_of_two_projects_run_at_once_and_each_joins_only_its_own(two_projects):
    beijing, singapore = projects.rows()
    first, started_b = inventory.request_sync("manual", project=beijing)
    second, started_s = inventory.request_sync("manual", project=singapore)
    again, started_again = inventory.request_sync("manual", project=beijing)

    assert started_b and started_s and not started_again
    assert again.pk == first.pk and second.pk != first.pk
    assert projects.queue_for(beijing) != projects.queue_for(singapore)


@pytest.mark.django_db
def test_cloudcheck_checks_every_project_and_fails_if_one_is_not_ready(
    two_projects, monkeypatch, capsys
):
    from django.core.management import call_command

    call_command("cloudcheck")
    out = capsys.readouterr().out
    assert "== project beijing (cn-north-4)" in out and "== project singapore" in out
    assert out.count("\nREADY") == 2

    monkeypatch.setenv("T_SG_SK", "not-the-secret")
    with pytest.raises(SystemExit) as exited:
        call_command("cloudcheck")
    assert exited.value.code == 1
    assert "NOT READY" in capsys.readouterr().out
    call_command("cloudcheck", project="beijing")  # the other one alone is ready
    out = capsys.readouterr().out
    assert "singapore" not in out and "READY" in out


@pytest.mark.django_db
def test_the_sync_command_syncs_every_project_and_names_the_one_that_failed(
    two_projects, monkeypatch, capsys
):
    from django.core.management import CommandError, call_command

    monkeypatch.setenv("T_BJ_SK", "not-the-secret")
    with pytest.raises(CommandError, match="beijing: sync #"):
        call_command("sync_inventory")
    assert "singapore: sync #" in capsys.readouterr().out  # synced after beijing failed
    assert Server.objects.filter(project__name="singapore").count() == 12
