"""With AK/SK and no project id, the project is found at IAM as the official SDK finds it."""

from dataclasses import replace
from typing import Any

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.region.region import Region
from huaweicloudsdkworkspaceapp.v1 import ListServersRequest, WorkspaceAppClient

from dashboard.cloud.client import CloudClient
from dashboard.cloud.config import CloudConfig
from dashboard.cloud.errors import CloudError
from tests.sim_fixtures import RunningSimulator


def _config(sim: RunningSimulator, **changes: Any) -> CloudConfig:
    base = CloudConfig(
        workspaceapp_endpoint=sim.url,
        workspace_endpoint=sim.url,
        ims_endpoint=sim.url,
        iam_endpoint=sim.url,
        project_id="",
        ak=sim.config.ak,
        sk=sim.config.sk,
        region=sim.config.region,
        retry_deadline=0.0,
    )
    return replace(base, **changes)


def test_the_project_is_found_at_iam_once_and_used_in_every_path(simulator) -> None:
    client = CloudClient(_config(simulator))
    servers = client.list_servers()
    again = CloudClient(_config(simulator))  # another client of the same keys: cached
    again.list_server_groups()

    assert len(servers) == len(simulator.state.servers)
    lookups = simulator.requests("GET", "/v3/projects")
    assert len(lookups) == 1
    assert lookups[0]["query"] == [("name", simulator.config.region)]
    project = simulator.config.project_id
    served = [r["path"] for r in simulator.requests() if r["path"].startswith("/v1/")]
    assert served and all(p.startswith(f"/v1/{project}/") for p in served)


@pytest.mark.parametrize(("projects", "found"), [(0, "no project"), (2, "2 projects")])
def test_no_project_or_several_is_refused_naming_the_variable(
    simulator_factory, projects: int, found: str
) -> None:
    sim = simulator_factory(iam_projects=projects)
    client = CloudClient(_config(sim))
    with pytest.raises(CloudError) as caught:
        client.list_servers()
    assert "HUAWEICLOUD_SDK_PROJECT_ID" in caught.value.message
    assert found in caught.value.message
    assert not [r for r in sim.requests() if r["path"].startswith("/v1/")]


def test_a_refused_lookup_names_the_variable_too(simulator_factory) -> None:
    sim = simulator_factory(denied_apis=["KeystoneListProjects"])
    with pytest.raises(CloudError) as caught:
        CloudClient(_config(sim)).list_servers()
    assert caught.value.status == 403
    assert "HUAWEICLOUD_SDK_PROJECT_ID" in caught.value.message


def test_a_configured_project_needs_no_lookup(simulator) -> None:
    CloudClient(_config(simulator, project_id=simulator.config.project_id)).list_servers()
    assert simulator.requests("GET", "/v3/projects") == []


def test_an_empty_path_segment_is_never_sent(simulator) -> None:
    client = CloudClient(_config(simulator, project_id=simulator.config.project_id))
    with pytest.raises(AssertionError, match="empty path segment"):
        client._get("ListServers", f"{simulator.url}/v1//app-servers")
    assert simulator.requests() == []


def test_the_official_sdk_finds_the_project_at_the_simulator(simulator) -> None:
    config = simulator.config
    credentials = BasicCredentials(config.ak, config.sk).with_iam_endpoint(simulator.url)
    http = HttpConfig.get_default_config()
    http.timeout = (5, 10)
    sdk = (
        WorkspaceAppClient.new_builder()
        .with_credentials(credentials)
        .with_region(Region(config.region, simulator.url))
        .with_http_config(http)
        .build()
    )
    response = sdk.list_servers(ListServersRequest(limit=100))
    assert response.count == len(simulator.state.servers)
    assert credentials.project_id == config.project_id
    assert simulator.requests("GET", "/v3/projects")[0]["query"] == [("name", config.region)]
