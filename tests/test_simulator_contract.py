"""The official SDK talks to the simulator, and its answers match schemas from the reference."""

import json
from pathlib import Path
from typing import Any

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkworkspaceapp.v1 import (
    BatchChangeMaintainServerReq,
    BatchChangeServerImageReq,
    BatchChangeServerImageRequest,
    BatchChangeServerMaintainModeRequest,
    ListServerGroupsRequest,
    ListServersRequest,
    ListSubJobsRequest,
    ShowJobDetailRequest,
    ShowServerRequest,
    WorkspaceAppClient,
)
from jsonschema import Draft202012Validator

from tests.sim_fixtures import RunningSimulator
from tests.sim_fixtures import signed_call as call

SCHEMAS = Path(__file__).with_name("schemas")


def validate(document: str, definition: str, instance: Any) -> None:
    """Raise if `instance` does not match `$defs/<definition>` of tests/schemas/<document>."""
    schema = json.loads((SCHEMAS / f"{document}.json").read_text())
    schema["$ref"] = f"#/$defs/{definition}"
    Draft202012Validator(schema).validate(instance)


@pytest.fixture
def sdk(simulator: RunningSimulator) -> WorkspaceAppClient:
    config = simulator.config
    credentials = BasicCredentials(config.ak, config.sk, config.project_id)
    http = HttpConfig.get_default_config()
    http.timeout = (5, 10)
    return (
        WorkspaceAppClient.new_builder()
        .with_credentials(credentials)
        .with_endpoints([simulator.url])
        .with_http_config(http)
        .build()
    )


def _drifted(sim: RunningSimulator) -> tuple[Any, Any]:
    """A drifted server (in maintenance) on a private image, with its group's image."""
    for server in sim.state.servers.values():
        image = sim.state.images[sim.state.groups[server.group_id].image_id]
        if server.scenario == "drifted_maintenance" and image.kind == "private":
            return server, image
    raise AssertionError("the test fleet has no drifted server")


def _change(sdk: WorkspaceAppClient, server_ids: list[str], image: Any) -> Any:
    body = BatchChangeServerImageReq(
        server_ids=server_ids, image_id=image.id, image_type="private", os_type="Windows"
    )
    return sdk.batch_change_server_image(BatchChangeServerImageRequest(body=body))


# --- the SDK -----------------------------------------------------------------------------------


def test_the_sdk_lists_every_server(simulator, sdk) -> None:
    response = sdk.list_servers(ListServersRequest(limit=100))
    assert response.count == len(simulator.state.servers)
    assert {s.id for s in response.items} == set(simulator.state.servers)


def test_the_sdk_lists_server_groups(simulator, sdk) -> None:
    response = sdk.list_server_groups(ListServerGroupsRequest(limit=100))
    assert [g.name for g in response.items] == [g.name for g in simulator.state.groups.values()]


def test_the_sdk_changes_an_image_and_follows_the_job(simulator, sdk) -> None:
    server, image = _drifted(simulator)
    (item,) = _change(sdk, [server.id], image).items
    assert item.job_id and not item.error_code

    simulator.advance(simulator.config.job_seconds)
    detail = sdk.show_job_detail(ShowJobDetailRequest(job_id=item.job_id))
    assert str(detail.status) == "SUCCESS"
    assert detail.sub_jobs[0].job_resource_info.resource_id == server.id
    subs = sdk.list_sub_jobs(ListSubJobsRequest(job_type="CHANGE_SERVER_IMAGE", job_id=item.job_id))
    assert subs.count == 1 and str(subs.items[0].status) == "SUCCESS"
    shown = sdk.show_server(ShowServerRequest(server_id=server.id))
    assert shown.image_id == image.id


def test_the_sdk_follows_a_job_shared_by_a_batch(simulator, sdk) -> None:
    simulator.state.set_faults(shared_batch_job=True)
    server, image = _drifted(simulator)
    now = simulator.state.now()
    other = next(
        s for s in simulator.state.servers.values()
        if s.id != server.id and simulator.state.verdict(s, image.id, now).ok
    )  # fmt: skip
    items = _change(sdk, [server.id, other.id], image).items
    assert len({i.job_id for i in items}) == 1 and items[0].job_id

    simulator.advance(simulator.config.job_seconds)
    detail = sdk.show_job_detail(ShowJobDetailRequest(job_id=items[0].job_id))
    assert str(detail.status) == "SUCCESS" and detail.sub_jobs_total == 2
    assert {s.job_resource_info.resource_id for s in detail.sub_jobs} == {server.id, other.id}
    assert {s.job_id for s in detail.sub_jobs} == {items[0].job_id}
    shown = sdk.show_server(ShowServerRequest(server_id=other.id))
    assert shown.job_id == items[0].job_id and str(shown.job_status) == "SUCCESS"


def test_the_sdk_reads_an_unknown_job_answered_400(simulator, sdk) -> None:
    simulator.state.set_faults(unknown_job_as_400=True)
    with pytest.raises(ClientRequestException) as caught:
        sdk.show_job_detail(ShowJobDetailRequest(job_id="575768277000000001"))
    assert (caught.value.status_code, caught.value.error_code) == (400, "WKS.00149901")


def test_the_sdk_sees_a_refusal_as_an_item_error(simulator, sdk) -> None:
    server, _image = _drifted(simulator)
    linux = next(i for i in simulator.state.images.values() if i.os_type == "Linux")
    body = BatchChangeServerImageReq(
        server_ids=[server.id], image_id=linux.id, image_type="private", os_type="Linux"
    )
    (item,) = sdk.batch_change_server_image(BatchChangeServerImageRequest(body=body)).items
    assert item.error_code and not item.job_id


def test_the_sdk_sets_maintenance(simulator, sdk) -> None:
    server, _image = _drifted(simulator)
    body = BatchChangeMaintainServerReq(items=[server.id], maintain_status=False)
    sdk.batch_change_server_maintain_mode(BatchChangeServerMaintainModeRequest(body=body))
    assert simulator.state.servers[server.id].maintain_status is False


def test_the_sdk_reads_the_error_code_and_request_id(sdk) -> None:
    with pytest.raises(ClientRequestException) as caught:
        sdk.show_server(ShowServerRequest(server_id="no-such-server"))
    assert caught.value.status_code == 404
    assert caught.value.error_code == "WKS.00211902"
    assert caught.value.request_id


def test_the_sdk_is_refused_with_the_wrong_secret(simulator) -> None:
    config = simulator.config
    client = (
        WorkspaceAppClient.new_builder()
        .with_credentials(BasicCredentials(config.ak, "wrong-secret", config.project_id))
        .with_endpoints([simulator.url])
        .build()
    )
    with pytest.raises(ClientRequestException) as caught:
        client.list_servers(ListServersRequest())
    assert caught.value.status_code == 401
    assert caught.value.error_code == "APIGW.0301"


# --- schemas -----------------------------------------------------------------------------------


def _project(sim: RunningSimulator, rest: str) -> str:
    return f"/v1/{sim.config.project_id}{rest}"


def test_server_responses_match_the_schemas(simulator) -> None:
    listed = call(simulator, "GET", _project(simulator, "/app-servers"), [("limit", "100")])
    validate("workspaceapp", "ListServersResponse", listed.json())
    first = listed.json()["items"][0]["id"]
    shown = call(simulator, "GET", _project(simulator, f"/app-servers/{first}"))
    validate("workspaceapp", "ShowServerResponse", shown.json())


def test_group_responses_match_the_schemas(simulator) -> None:
    listed = call(simulator, "GET", _project(simulator, "/app-server-groups"))
    validate("workspaceapp", "ListServerGroupsResponse", listed.json())
    for group in listed.json()["items"]:
        shown = call(simulator, "GET", _project(simulator, f"/app-server-groups/{group['id']}"))
        validate("workspaceapp", "ShowServerGroupResponse", shown.json())


@pytest.mark.parametrize("elapsed", [0, 30, 60])
def test_job_responses_match_the_schemas_at_every_stage(simulator, elapsed) -> None:
    server, image = _drifted(simulator)
    body = {
        "server_ids": [server.id, "missing"],
        "image_id": image.id,
        "image_type": "private",
        "os_type": "Windows",
    }
    changed = call(
        simulator, "POST", _project(simulator, "/app-servers/actions/batch-change-image"), body=body
    )
    validate("workspaceapp", "BatchChangeServerImageResponse", changed.json())
    job_id = changed.json()["items"][0]["job_id"]
    simulator.advance(elapsed)
    detail = call(simulator, "GET", f"/v2/{simulator.config.project_id}/job/{job_id}")
    validate("workspaceapp", "ShowJobDetailResponse", detail.json())
    v1 = call(simulator, "GET", _project(simulator, f"/job/{job_id}"))
    validate("workspaceapp", "ShowJobResponse", v1.json())
    params = [("job_type", "CHANGE_SERVER_IMAGE")]
    subs = call(simulator, "GET", _project(simulator, "/app-server-sub-jobs"), params)
    validate("workspaceapp", "ListSubJobsResponse", subs.json())
    count = call(simulator, "GET", _project(simulator, "/app-server-sub-jobs/actions/count"))
    validate("workspaceapp", "CountSubJobsResponse", count.json())


def test_change_image_for_one_server_matches_the_schema(simulator) -> None:
    server, image = _drifted(simulator)
    body = {"image_id": image.id, "image_type": "private", "os_type": "Windows"}
    path = _project(simulator, f"/app-servers/{server.id}/actions/change-image")
    validate(
        "workspaceapp", "ChangeServerImageResponse", call(simulator, "POST", path, body=body).json()
    )


def test_error_bodies_match_the_schemas(simulator) -> None:
    bad = call(simulator, "GET", _project(simulator, "/app-servers"), [("limit", "0")])
    validate("workspaceapp", "Error", bad.json())
    unsigned = call(simulator, "GET", _project(simulator, "/app-servers"), sign=False)
    validate("workspaceapp", "GatewayError", unsigned.json())
    missing = call(simulator, "GET", "/v2/images/no-such-image")
    validate("images", "ImsError", missing.json())


def test_image_responses_match_the_schemas(simulator) -> None:
    ims = call(simulator, "GET", "/v2/cloudimages")
    validate("images", "ImsListImagesResponse", ims.json())
    first = ims.json()["images"][0]["id"]
    validate("images", "ImsImage", call(simulator, "GET", f"/v2/images/{first}").json())
    workspace = call(simulator, "GET", f"/v2/{simulator.config.project_id}/images")
    validate("images", "WorkspaceListImagesResponse", workspace.json())
    paid = [i.id for i in simulator.state.images.values() if i.paid]
    market = call(
        simulator,
        "GET",
        f"/v2/{simulator.config.project_id}/market-images",
        [("image_ids", i) for i in paid],
    )
    validate("images", "ListMarketImagesResponse", market.json())
    assert len(market.json()["images"]) == len(paid)


def test_iam_responses_match_the_schemas(simulator) -> None:
    config = simulator.config
    user = {
        "name": config.iam_user,
        "password": config.iam_password,
        "domain": {"name": config.iam_domain},
    }
    body = {
        "auth": {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": {"project": {"name": config.region}},
        }
    }
    token = call(simulator, "POST", "/v3/auth/tokens", body=body, sign=False)
    validate("iam", "CreateTokenResponse", token.json())
    issued = token.headers["X-Subject-Token"]
    subject = {"X-Auth-Token": issued, "X-Subject-Token": issued}
    checked = call(simulator, "GET", "/v3/auth/tokens", headers=subject, sign=False)
    assert checked.status_code == 200
    assert checked.headers["X-Subject-Token"] == issued
    validate("iam", "CreateTokenResponse", checked.json())  # the same token body
    assert checked.json()["token"]["expires_at"] == token.json()["token"]["expires_at"]
    projects = call(simulator, "GET", "/v3/projects", [("name", config.region)])
    validate("iam", "ListProjectsResponse", projects.json())
    user["password"] = "wrong"
    refused = call(simulator, "POST", "/v3/auth/tokens", body=body, sign=False)
    validate("iam", "KeystoneError", refused.json())


# --- user sessions (imports kept here: this section is appended to the contract) ------------


def _session_window() -> dict[str, str]:
    return {
        "query_begin_time": "2020-01-01T00:00:00.000Z",
        "query_end_time": "2099-01-01T00:00:00.000Z",
    }


def test_the_sdk_lists_sessions_by_machine_name(simulator, sdk) -> None:
    from huaweicloudsdkworkspaceapp.v1 import ListSessionsRequest

    server = max(simulator.state.servers.values(), key=lambda s: s.session_count)
    request = ListSessionsRequest(
        limit=100, machine_name=server.machine_name, session_state="Active,Disconnected",
        **_session_window(),
    )  # fmt: skip
    response = sdk.list_sessions(request)
    assert response.count == server.session_count > 0
    assert {s.id for s in response.items} == {u.id for u in simulator.state.sessions_of(server.id)}
    first = response.items[0]
    assert first.machine_name == server.machine_name
    assert first.app_server_group_id == server.group_id
    assert first.start_time is not None and first.end_time is None
    assert "." in first.login_user


def test_the_sdk_logs_sessions_off_after_a_delay(simulator, sdk) -> None:
    from huaweicloudsdkworkspaceapp.v1 import LogoffUserSessionReq, LogoffUserSessionRequest

    server = max(simulator.state.servers.values(), key=lambda s: s.session_count)
    ids = [u.id for u in simulator.state.sessions_of(server.id)]
    body = LogoffUserSessionReq(
        session_ids=ids, message_type=1, message="Saving time", title="Update", delay_time=120,
        transaction_id="contract-1",
    )  # fmt: skip
    sdk.logoff_user_session(LogoffUserSessionRequest(body=body))
    assert [m["transaction_id"] for m in simulator.state.messages()] == ["contract-1"] * len(ids)
    simulator.advance(120)
    assert simulator.state.servers[server.id].session_count == 0


def test_the_sdk_reads_a_refused_logoff(sdk) -> None:
    from huaweicloudsdkworkspaceapp.v1 import LogoffUserSessionReq, LogoffUserSessionRequest

    body = LogoffUserSessionReq(session_ids=["s-1"], message_type=7, delay_time=10)
    with pytest.raises(ClientRequestException) as caught:
        sdk.logoff_user_session(LogoffUserSessionRequest(body=body))
    assert caught.value.status_code == 400
    assert caught.value.error_code == "WKS.00211102"


def test_query_values_are_bounded_as_the_definitions_bound_them(simulator) -> None:
    """An empty server_group_id is refused (minLength 1), as the cloud would, rather than
    answering an empty fleet; where a definition's pattern allows an empty value, empty is
    the same as absent."""
    servers = _project(simulator, "/app-servers")
    refused = call(simulator, "GET", servers, [("server_group_id", "")])
    assert refused.status_code == 400
    assert refused.json()["error_code"] == "WKS.00211102"
    assert "server_group_id" in refused.json()["error_msg"]

    groups = call(simulator, "GET", _project(simulator, "/app-server-groups"), [("app_type", "")])
    assert groups.status_code == 200 and groups.json()["count"] == len(simulator.state.groups)
    for path in ("/app-server-sub-jobs", "/app-server-sub-jobs/actions/count"):
        query = [("job_type", "CHANGE_SERVER_IMAGE"), ("status", "")]
        assert call(simulator, "GET", _project(simulator, path), query).status_code == 200
    workspace = f"/v2/{simulator.config.project_id}/images"
    assert call(simulator, "GET", workspace, [("image_type", "")]).status_code == 200
    assert call(simulator, "GET", workspace, [("image_type", "bogus")]).status_code == 400


def test_an_empty_product_id_is_refused(simulator) -> None:
    server, image = _drifted(simulator)
    body = {
        "server_ids": [server.id],
        "image_id": image.id,
        "image_type": "private",
        "os_type": image.os_type,
        "image_product_id": "",
    }
    answer = call(
        simulator, "POST", _project(simulator, "/app-servers/actions/batch-change-image"), body=body
    )
    assert answer.status_code == 400
    assert "image_product_id" in answer.json()["error_msg"]


def test_ims_images_say_when_they_became_active(simulator) -> None:
    images = call(simulator, "GET", "/v2/cloudimages").json()["images"]
    assert images and all(i["active_at"] >= i["created_at"] for i in images)
