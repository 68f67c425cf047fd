"""The connection check (/cloud/ and `manage.py cloudcheck`) against the simulator's answers.

The simulator's knobs give each answer a probe can meet: a denied API (403 naming the IAM
action), an API not published in the region (404 APIGW.0101), an endpoint that does not
answer, a clock far from the cloud's. No check ever sends a write.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command

from dashboard.cloud import check
from dashboard.cloud.client import CloudClient
from dashboard.cloud.config import from_settings

pytestmark = pytest.mark.django_db


def _run(**kwargs: Any) -> check.Report:
    return check.run_check(CloudClient(from_settings()), **kwargs)


def _by_api(report: check.Report) -> dict[str, check.Probe]:
    return {p.api: p for p in report.probes}


def _writes_sent(sim) -> list[dict]:
    return [r for r in sim.requests() if r["method"] != "GET"]


def test_a_healthy_cloud_passes_with_reads_only(sim_settings) -> None:
    report = _run()
    probes = _by_api(report)
    assert report.ok, report
    assert report.auth_mode == "AK/SK" and report.region == "cn-north-4"
    assert report.project_id == sim_settings.config.project_id
    assert report.clock_skew is not None and abs(report.clock_skew) < timedelta(seconds=5)
    reads = [p for p in report.probes if p.result != check.NOT_SENT]
    assert len(reads) >= 10 and all(p.result == check.OK for p in reads)
    assert probes["BatchChangeServerImage"].result == check.NOT_SENT
    assert probes["BatchChangeServerImage"].action == "workspace:server:batchChangeImage"
    assert _writes_sent(sim_settings) == []


@pytest.mark.parametrize(
    ("api", "action"),
    [("ListServers", "workspace:server:list"), ("ListSessions", "workspace:session:list"),
     ("ListImages", "ims:images:list"), ("ShowJobDetail", "workspace:job:get")],
)  # fmt: skip
def test_a_denied_api_is_reported_with_the_missing_action(sim_settings, api, action) -> None:
    sim_settings.state.set_faults(denied_apis=[api])
    report = _run()
    probe = _by_api(report)[api]
    assert (probe.result, probe.http_status, probe.action) == (check.DENIED, 403, action)
    assert action in probe.detail
    assert not report.ok


def test_a_refused_server_read_means_the_image_change_is_refused_too(sim_settings) -> None:
    sim_settings.state.set_faults(denied_apis=["ListServers"])
    probes = _by_api(_run())
    assert probes["BatchChangeServerImage"].result == check.DENIED
    assert "workspace:server:batchChangeImage" in probes["BatchChangeServerImage"].detail
    assert probes["LogoffUserSession"].result == check.NOT_SENT  # another resource
    assert _writes_sent(sim_settings) == []


def test_a_denied_write_is_never_sent_to_find_out(sim_settings) -> None:
    sim_settings.state.set_faults(denied_apis=["BatchChangeServerImage"])
    report = _run()
    assert _by_api(report)["BatchChangeServerImage"].result == check.NOT_SENT
    assert _writes_sent(sim_settings) == []


def test_an_api_missing_from_the_region_is_not_published(sim_settings) -> None:
    sim_settings.state.set_faults(unpublished_apis=["ListSessions"])
    report = _run()
    probe = _by_api(report)["ListSessions"]
    assert (probe.result, probe.http_status) == (check.NOT_PUBLISHED, 404)
    assert probe.label == "Not published in this region (404)"
    assert not report.ok


def test_an_unreachable_cloud_is_reported_as_such(settings) -> None:
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, "WORKSPACEAPP_ENDPOINT": "http://127.0.0.1:9",
                            "WORKSPACE_ENDPOINT": "http://127.0.0.1:9",
                            "IMS_ENDPOINT": "http://127.0.0.1:9", "AK": "AK", "SK": "SK",
                            "PROJECT_ID": "p"}  # fmt: skip
    report = _run()
    assert _by_api(report)["ListServers"].result == check.UNREACHABLE
    assert report.clock_skew is None and not report.ok


def test_a_clock_past_the_signature_limit_fails(sim_settings) -> None:
    report = _run(now=lambda: datetime.now(UTC) + timedelta(minutes=20))
    assert report.clock_skew > timedelta(minutes=19)
    assert not report.clock_ok and not report.ok


def test_without_a_project_id_the_lookup_is_a_probe(sim_settings, settings) -> None:
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, "PROJECT_ID": ""}
    sim_settings.state.set_faults(iam_projects=2)
    report = _run()
    assert not report.ok and "HUAWEICLOUD_SDK_PROJECT_ID" in report.problem
    assert _by_api(report)["KeystoneListProjects"].result == check.FAILED


def test_an_iam_user_shows_its_token_expiry(sim_settings, settings) -> None:
    config = sim_settings.config
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, "AK": "", "SK": "", "PROJECT_ID": "",
                            "IAM_USER": config.iam_user, "IAM_PASSWORD": config.iam_password,
                            "IAM_DOMAIN": config.iam_domain}  # fmt: skip
    report = _run()
    assert report.ok, report
    assert report.auth_mode.startswith("IAM token")
    assert report.project_source == "from the IAM token's scope"
    left = report.token_expires_at - datetime.now(UTC)
    assert timedelta(hours=23) < left <= timedelta(hours=24)


def test_the_page_is_a_table_with_headers_and_words(sim_settings, admin_client_sso) -> None:
    sim_settings.state.set_faults(denied_apis=["ListSessions"], unpublished_apis=["ListImages"])
    page = admin_client_sso.get("/cloud/")
    html = page.content.decode()
    assert page.status_code == 200
    assert (
        '<th scope="col">Result</th>' in html
        and '<th scope="row" class="mono">ListSessions' in html
    )
    assert "Denied (403)" in html and "workspace:session:list" in html
    assert "Not published in this region (404)" in html
    assert "Not ready" in html and "Clock skew" in html
    assert sim_settings.config.sk not in html


def test_the_page_is_for_admins_only(sim_settings, operator_client) -> None:
    assert operator_client.get("/cloud/").status_code == 403
    assert sim_settings.requests() == []


def test_the_command_exits_zero_only_when_all_works(sim_settings, capsys) -> None:
    call_command("cloudcheck")
    out = capsys.readouterr().out
    assert "READY" in out and "ListServers" in out
    assert sim_settings.config.sk not in out

    sim_settings.state.set_faults(denied_apis=["ListServerGroups"])
    with pytest.raises(SystemExit) as exited:
        call_command("cloudcheck")
    out = capsys.readouterr().out
    assert exited.value.code == 1
    assert "NOT READY" in out and "workspace:serverGroup:list" in out
    assert sim_settings.config.sk not in out


def test_a_region_without_the_service_is_a_problem_not_a_crash(settings, admin_client_sso) -> None:
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, "REGION": "eu-west-101",
                            "WORKSPACEAPP_ENDPOINT": ""}  # fmt: skip
    report = check.run_check()
    assert "WORKSPACEAPP_ENDPOINT" in report.problem and not report.ok
    page = admin_client_sso.get("/cloud/")
    assert page.status_code == 200 and "Could not check" in page.content.decode()


def test_temporary_keys_are_named_as_such(sim_settings, settings) -> None:
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, "SECURITY_TOKEN": "sts-token-value"}
    report = _run()
    assert report.auth_mode == "temporary keys (AK/SK and security token)"
    assert "sts-token-value" not in repr(report)
