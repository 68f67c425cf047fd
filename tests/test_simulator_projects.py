"""One simulator serves several projects, each with its own fleet, keys, faults and log."""

import hashlib
import pickle
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkworkspaceapp.v1 import (
    ListServerGroupsRequest,
    ListServersRequest,
    WorkspaceAppClient,
)

from dashboard.cloud.client import CloudClient
from dashboard.cloud.config import CloudConfig
from dashboard.cloud.errors import CloudError
from dashboard.simulator import codes, persist, server
from dashboard.simulator.state import SimConfig, SimProject, SimState
from tests.sim_fixtures import RunningSimulator, SimulatorFactory
from tests.sim_fixtures import signed_call as call

TIMEOUT = 10
BEIJING = SimProject(
    project_id="b" * 32, region="cn-north-4", ak="BEIJINGACCESSKEY0001", sk="beijing-secret"
)
SHANGHAI = SimProject(
    project_id="5" * 32,
    region="cn-east-3",
    ak="SHANGHAIACCESSKEY001",
    sk="shanghai-secret",
    servers=12,
)
TWO = (BEIJING, SHANGHAI)


@pytest.fixture
def sim(simulator_factory: SimulatorFactory) -> RunningSimulator:
    return simulator_factory(projects=TWO)


def as_project(sim: RunningSimulator, project: SimProject, method: str, path: str, **kw: Any):
    """A request signed with `project`'s key."""
    return call(sim, method, path, ak=project.ak, sk=project.sk, **kw)


def servers_of(sim: RunningSimulator, project: SimProject, key: SimProject | None = None):
    key = key or project
    path = f"/v1/{project.project_id}/app-servers"
    return as_project(sim, key, "GET", path, params=[("limit", "100")])


def cloud_config(sim: RunningSimulator, project: SimProject, **changes: Any) -> CloudConfig:
    base = CloudConfig(
        workspaceapp_endpoint=sim.url,
        workspace_endpoint=sim.url,
        ims_endpoint=sim.url,
        iam_endpoint=sim.url,
        project_id=project.project_id,
        ak=project.ak,
        sk=project.sk,
        region=project.region,
        retry_deadline=0.0,
    )
    return replace(base, **changes)


# --- fleets -------------------------------------------------------------------------------------


def test_each_project_lists_only_its_own_servers(sim) -> None:
    beijing = servers_of(sim, BEIJING).json()
    shanghai = servers_of(sim, SHANGHAI).json()
    assert beijing["count"] == 24 and shanghai["count"] == 12
    assert {s["id"] for s in beijing["items"]} == set(sim.state.servers)
    assert {s["id"] for s in shanghai["items"]} == set(
        sim.state.project(SHANGHAI.project_id).servers
    )


def test_two_projects_never_share_a_server_group_or_private_image_id(sim) -> None:
    beijing, shanghai = sim.state, sim.state.project(SHANGHAI.project_id)
    assert not set(beijing.servers) & set(shanghai.servers)
    assert not set(beijing.groups) & set(shanghai.groups)
    private = [
        {i.id for i in p.images.values() if i.kind == "private"} for p in (beijing, shanghai)
    ]
    assert not private[0] & private[1]
    sessions = [{u.id for u in p.user_sessions()} for p in (beijing, shanghai)]
    assert sessions[0] and sessions[1] and not sessions[0] & sessions[1]


def test_the_default_project_keeps_the_one_project_fleet_and_the_others_name_their_region(
    sim,
) -> None:
    alone = SimState(SimConfig(servers=24, seed=7), manual_clock=True)
    assert list(sim.state.servers) == list(alone.servers)
    shanghai = sim.state.project(SHANGHAI.project_id)
    assert all(g.name.startswith("cn-east-3-") for g in shanghai.groups.values())
    assert all(s.name.startswith("cn-east-3-") for s in shanghai.servers.values())
    assert {s.availability_zone[:-1] for s in shanghai.servers.values()} == {"cn-east-3"}


def test_a_job_in_one_project_moves_with_the_shared_clock(sim) -> None:
    shanghai = sim.state.project(SHANGHAI.project_id)
    target = next(s for s in shanghai.servers.values() if s.scenario == "drifted_maintenance")
    image = shanghai.images[shanghai.groups[target.group_id].image_id]
    body = {"server_ids": [target.id], "image_id": image.id,
            "image_type": {"marketplace": "gold"}.get(image.kind, image.kind),
            "os_type": image.os_type}  # fmt: skip
    if image.product_code:
        body["product_id"] = image.product_code
    path = f"/v1/{SHANGHAI.project_id}/app-servers/actions/batch-change-image"
    (item,) = as_project(sim, SHANGHAI, "POST", path, body=body).json()["items"]
    assert item["job_id"], item
    sim.state.advance(120)  # the default project's handle moves every project's time
    shown = as_project(sim, SHANGHAI, "GET", f"/v1/{SHANGHAI.project_id}/app-servers/{target.id}")
    assert (shown.json()["image_id"], shown.json()["job_status"]) == (image.id, "SUCCESS")
    assert target.id not in sim.state.servers


# --- keys and tokens ----------------------------------------------------------------------------


def test_a_key_is_refused_on_another_projects_path(sim) -> None:
    refused = servers_of(sim, SHANGHAI, key=BEIJING)
    assert refused.status_code == 403
    assert refused.json() == {
        "error_code": codes.FORBIDDEN,
        "error_msg": codes.MESSAGES[codes.FORBIDDEN],
    }
    assert servers_of(sim, BEIJING, key=SHANGHAI).status_code == 403


def test_an_unknown_project_is_refused_as_one_the_key_cannot_see(sim) -> None:
    unknown = SimProject(project_id="f" * 32)
    answer = servers_of(sim, unknown, key=BEIJING)
    assert (answer.status_code, answer.json()["error_code"]) == (403, codes.FORBIDDEN)
    assert list(answer.json()) == ["error_code", "error_msg"]


def test_a_key_signing_another_projects_x_project_id_is_refused(sim) -> None:
    headers = {"X-Project-Id": SHANGHAI.project_id}
    answer = as_project(sim, BEIJING, "GET", "/v2/cloudimages", headers=headers)
    assert answer.status_code == 403


def test_ims_answers_from_the_project_the_key_signs_for(sim) -> None:
    headers = {"X-Project-Id": SHANGHAI.project_id}
    listed = as_project(sim, SHANGHAI, "GET", "/v2/cloudimages", headers=headers)
    shanghai = sim.state.project(SHANGHAI.project_id)
    assert {i["id"] for i in listed.json()["images"]} == set(shanghai.images)


def test_a_key_shared_by_two_projects_opens_both(simulator_factory) -> None:
    shared = replace(SHANGHAI, ak=BEIJING.ak, sk=BEIJING.sk)
    sim = simulator_factory(projects=(BEIJING, shared))
    assert servers_of(sim, BEIJING).status_code == 200
    assert servers_of(sim, shared).json()["count"] == 12
    listed = as_project(sim, BEIJING, "GET", "/v3/auth/projects").json()["projects"]
    assert [p["id"] for p in listed] == [BEIJING.project_id, SHANGHAI.project_id]


def test_one_key_with_two_secrets_is_refused() -> None:
    with pytest.raises(ValueError, match="another secret"):
        SimConfig(projects=(BEIJING, replace(SHANGHAI, ak=BEIJING.ak)))


def _token(sim: RunningSimulator, scope: dict[str, str]) -> requests.Response:
    config = sim.config
    user = {"name": config.iam_user, "password": config.iam_password,
            "domain": {"name": config.iam_domain}}  # fmt: skip
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": user}},
                     "scope": {"project": scope}}}  # fmt: skip
    return call(sim, "POST", "/v3/auth/tokens", body=body, sign=False)


def test_a_token_scoped_to_a_region_opens_that_project_only(sim) -> None:
    issued = _token(sim, {"name": "cn-east-3"})
    assert issued.status_code == 201
    assert issued.json()["token"]["project"]["id"] == SHANGHAI.project_id
    token = {"X-Auth-Token": issued.headers["X-Subject-Token"]}
    shanghai = call(sim, "GET", f"/v1/{SHANGHAI.project_id}/app-servers", sign=False, headers=token)
    beijing = call(sim, "GET", f"/v1/{BEIJING.project_id}/app-servers", sign=False, headers=token)
    assert (shanghai.status_code, beijing.status_code) == (200, 403)
    listed = call(sim, "GET", "/v3/auth/projects", sign=False, headers=token).json()["projects"]
    assert {p["id"] for p in listed} == {BEIJING.project_id, SHANGHAI.project_id}


def test_a_token_for_an_unknown_project_is_refused(sim) -> None:
    assert _token(sim, {"name": "ap-southeast-1"}).status_code == 401
    assert _token(sim, {"id": "f" * 32}).status_code == 401
    assert _token(sim, {"id": SHANGHAI.project_id}).status_code == 201


# --- IAM lookup ---------------------------------------------------------------------------------


def test_iam_finds_each_project_by_its_region(sim) -> None:
    for project in TWO:
        answer = as_project(sim, project, "GET", "/v3/projects", params=[("name", project.region)])
        assert [p["id"] for p in answer.json()["projects"]] == [project.project_id]
    # Another account's key sees no project of that name.
    other = as_project(sim, BEIJING, "GET", "/v3/projects", params=[("name", "cn-east-3")])
    assert other.json()["projects"] == []


def test_the_dashboards_client_finds_the_second_project_at_iam(sim) -> None:
    client = CloudClient(cloud_config(sim, SHANGHAI, project_id=""))
    servers = client.list_servers()
    assert {s.id for s in servers} == set(sim.state.project(SHANGHAI.project_id).servers)
    shanghai_log = sim.state.project(SHANGHAI.project_id).requests()
    assert [r["query"] for r in shanghai_log if r["path"] == "/v3/projects"] == [
        [("name", "cn-east-3")]
    ]
    assert sim.state.requests() == []  # nothing reached the other project


def test_the_iam_projects_knob_acts_on_its_own_project(sim) -> None:
    sim.state.project(SHANGHAI.project_id).set_faults(iam_projects=2)
    with pytest.raises(CloudError, match="2 projects"):
        CloudClient(cloud_config(sim, SHANGHAI, project_id="")).list_servers()
    beijing = CloudClient(cloud_config(sim, BEIJING, project_id=""))
    assert len(beijing.list_servers()) == 24


# --- faults and controls --------------------------------------------------------------------------


def test_a_fault_on_one_project_leaves_the_other_answering(sim) -> None:
    url = f"{sim.url}/_sim/faults?project={BEIJING.project_id}"
    assert requests.post(url, json={"error_rate": 1.0}, timeout=TIMEOUT).status_code == 200
    assert servers_of(sim, BEIJING).status_code in (500, 503)
    assert servers_of(sim, SHANGHAI).status_code == 200
    shown = requests.get(f"{sim.url}/_sim/faults?project={SHANGHAI.project_id}", timeout=TIMEOUT)
    assert shown.json()["error_rate"] == 0.0


def test_faults_set_in_process_target_one_project(sim) -> None:
    sim.state.project(SHANGHAI.project_id).set_faults(denied_apis=["ListServers"])
    assert servers_of(sim, SHANGHAI).status_code == 403
    assert servers_of(sim, BEIJING).status_code == 200


def test_control_endpoints_default_to_the_first_project_and_take_another(sim) -> None:
    fleet = requests.get(f"{sim.url}/_sim/fleet", timeout=TIMEOUT).json()
    assert {s["id"] for s in fleet["servers"]} == set(sim.state.servers)
    other = f"{sim.url}/_sim/fleet?project={SHANGHAI.project_id}"
    shanghai_ids = {s["id"] for s in requests.get(other, timeout=TIMEOUT).json()["servers"]}
    assert shanghai_ids == set(sim.state.project(SHANGHAI.project_id).servers)
    some = sorted(shanghai_ids)[0]
    body = {"project": SHANGHAI.project_id, "session_count": 7}
    patched = requests.post(f"{sim.url}/_sim/servers/{some}", json=body, timeout=TIMEOUT)
    assert patched.json()["session_count"] == 7
    missing = requests.post(f"{sim.url}/_sim/servers/{some}", json={}, timeout=TIMEOUT)
    assert missing.status_code == 404  # not a server of the default project
    unknown = requests.get(f"{sim.url}/_sim/health?project=nope", timeout=TIMEOUT)
    assert unknown.status_code == 404
    health = requests.get(f"{sim.url}/_sim/health", timeout=TIMEOUT).json()
    assert [p["project_id"] for p in health["projects"]] == [p.project_id for p in TWO]


def test_each_project_keeps_its_own_request_log(sim) -> None:
    servers_of(sim, SHANGHAI)
    servers_of(sim, BEIJING)
    servers_of(sim, BEIJING)
    assert len(sim.state.requests()) == 2
    assert len(sim.state.project(SHANGHAI.project_id).requests()) == 1
    other = f"{sim.url}/_sim/requests?project={SHANGHAI.project_id}"
    assert len(requests.get(other, timeout=TIMEOUT).json()["requests"]) == 1


# --- state file ---------------------------------------------------------------------------------


def _start(path: Path, projects: tuple[SimProject, ...] = TWO) -> RunningSimulator:
    state = SimState(SimConfig(servers=24, seed=7, projects=projects), manual_clock=True)
    handle = server.start(state, persister=persist.Persister(state, path))
    return RunningSimulator(handle.url, state, handle)


def test_the_state_file_keeps_both_projects(tmp_path: Path) -> None:
    path = tmp_path / "sim.state"
    first = _start(path)
    try:
        shanghai = first.state.project(SHANGHAI.project_id)
        some = next(iter(shanghai.servers))
        shanghai.patch_server(some, session_count=5, name="renamed-in-shanghai")
        before = (servers_of(first, BEIJING).json(), servers_of(first, SHANGHAI).json())
        first.state.set_faults(error_rate=0.5)
    finally:
        first.handle.stop()
    second = _start(path)
    try:
        again = second.state.project(SHANGHAI.project_id)
        assert again.servers[some].name == "renamed-in-shanghai"
        assert second.state.faults.error_rate == 0.5 and again.faults.error_rate == 0.0
        second.state.set_faults(error_rate=0.0)
        assert (servers_of(second, BEIJING).json(), servers_of(second, SHANGHAI).json()) == before
    finally:
        second.handle.stop()


def test_a_one_project_state_file_restores_the_project_of_its_id(tmp_path: Path) -> None:
    path = tmp_path / "sim.state"
    config = SimConfig(servers=24, seed=7, project_id=BEIJING.project_id)
    alone = SimState(config, manual_clock=True)
    some = next(iter(alone.servers))
    alone.patch_server(some, name="kept-from-one-project")
    persist.save(alone, path)
    state = SimState(SimConfig(servers=24, seed=7, projects=TWO), manual_clock=True)
    persist.load(state, path)
    assert state.servers[some].name == "kept-from-one-project"
    assert len(state.project(SHANGHAI.project_id).servers) == 12  # fresh


def test_a_state_file_from_before_several_projects_becomes_the_default_project(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sim.state"
    alone = SimState(SimConfig(servers=24, seed=7), manual_clock=True)
    some = next(iter(alone.servers))
    alone.patch_server(some, name="kept-from-an-old-file")
    old = {"schema": persist.schema(), "state": alone.snapshot()}  # no project ids then
    path.write_bytes(persist.MAGIC + b" 1\n" + pickle.dumps(old))
    state = SimState(SimConfig(servers=24, seed=7, projects=TWO), manual_clock=True)
    persist.load(state, path)
    assert state.servers[some].name == "kept-from-an-old-file"


# --- configuration ------------------------------------------------------------------------------


def test_sim_projects_configures_the_projects_from_the_environment() -> None:
    text = (
        f'[{{"project_id": "{BEIJING.project_id}", "region": "cn-north-4", "ak": "A", "sk": "x"}},'
        f' {{"project_id": "{SHANGHAI.project_id}", "region": "cn-east-3", "ak": "B", "sk": "y",'
        ' "servers": 9, "seed": 3}]'
    )
    config = SimConfig.from_env({"SIM_PROJECTS": text}, servers=30)
    first, second = config.per_project()
    assert (first.project_id, first.region, first.ak, first.servers, first.seed) == (
        BEIJING.project_id, "cn-north-4", "A", 30, 1,
    )  # fmt: skip
    assert (second.region, second.sk, second.servers, second.seed) == ("cn-east-3", "y", 9, 3)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "not JSON"),
        ("[]", "JSON list"),
        ('[{"region": "cn-north-4"}]', "project_id is required"),
        ('[{"project_id": "p", "region": "r", "zone": "a"}]', "unknown field 'zone'"),
        ('[{"project_id": "p", "region": "r", "servers": "9"}]', "servers must be an integer"),
        ('[{"project_id": "p", "region": "r"}, {"project_id": "p", "region": "q"}]', "twice"),
    ],
)
def test_a_bad_sim_projects_is_refused_saying_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        SimConfig.from_env({"SIM_PROJECTS": text})


def test_runsim_refuses_a_bad_sim_projects(monkeypatch) -> None:
    from django.core.management import CommandError

    from dashboard.management.commands.runsim import build_state

    monkeypatch.setenv("SIM_PROJECTS", "[1]")
    options = {"servers": 5, "seed": 1, "job_seconds": 1.0, "manual_clock": True}
    with pytest.raises(CommandError, match="item 1 is not an object"):
        build_state(options)


# --- the official SDK ---------------------------------------------------------------------------


def test_the_official_sdk_talks_to_the_second_project(sim) -> None:
    http = HttpConfig.get_default_config()
    http.timeout = (5, 10)

    def sdk(ak: str, sk: str) -> WorkspaceAppClient:
        credentials = BasicCredentials(ak, sk, SHANGHAI.project_id)
        builder = WorkspaceAppClient.new_builder().with_credentials(credentials)
        return builder.with_endpoints([sim.url]).with_http_config(http).build()

    client = sdk(SHANGHAI.ak, SHANGHAI.sk)
    shanghai = sim.state.project(SHANGHAI.project_id)
    assert {s.id for s in client.list_servers(ListServersRequest(limit=100)).items} == set(
        shanghai.servers
    )
    groups = client.list_server_groups(ListServerGroupsRequest(limit=100)).items
    assert {g.id for g in groups} == set(shanghai.groups)
    with pytest.raises(ClientRequestException) as refused:
        sdk(BEIJING.ak, BEIJING.sk).list_servers(ListServersRequest(limit=100))
    assert (refused.value.status_code, refused.value.error_code) == (403, codes.FORBIDDEN)


def test_a_region_derived_project_id_is_md5_of_the_region() -> None:
    # What `serve` gives a project configured without an id (looked up through IAM by region).
    from dashboard.management.commands.serve import derived_project_id

    assert derived_project_id("cn-east-3") == hashlib.md5(b"cn-east-3").hexdigest()  # noqa: S324


# --- serve --------------------------------------------------------------------------------------


def _configured_projects(monkeypatch, tmp_path: Path, url: str = "") -> tuple[Any, ...]:
    """Two configured projects, the second without an id and with its SK in a file."""
    from dashboard.cloud.projects import ProjectConfig

    monkeypatch.setenv("BJ_AK", "BJACCESSKEY")
    monkeypatch.setenv("BJ_SK", "bj-secret")
    monkeypatch.setenv("SH_AK", "SHACCESSKEY")
    monkeypatch.delenv("SH_SK", raising=False)
    (tmp_path / "sh-sk").write_text("sh-secret\n")
    monkeypatch.setenv("SH_SK_FILE", str(tmp_path / "sh-sk"))
    endpoints = tuple((service, url) for service in ("workspaceapp", "workspace", "ims", "iam"))
    return (
        ProjectConfig(name="beijing", region="cn-north-4", project_id=BEIJING.project_id,
                      ak_env="BJ_AK", sk_env="BJ_SK", endpoints=endpoints if url else ()),
        ProjectConfig(name="shanghai", region="cn-east-3", ak_env="SH_AK", sk_env="SH_SK",
                      endpoints=endpoints if url else ()),
    )  # fmt: skip


def test_serve_gives_the_simulator_the_configured_projects_and_their_keys(
    settings, monkeypatch, tmp_path: Path
) -> None:
    from dashboard.management.commands import serve

    settings.CLOUD_PROJECTS = _configured_projects(monkeypatch, tmp_path)
    env = serve.simulator_env()
    assert env is not None
    found = [(p.project_id, p.region, p.ak, p.sk) for p in SimConfig.from_env(env).per_project()]
    assert found == [
        (BEIJING.project_id, "cn-north-4", "BJACCESSKEY", "bj-secret"),
        (hashlib.md5(b"cn-east-3").hexdigest(), "cn-east-3", "SHACCESSKEY", "sh-secret"),  # noqa: S324
    ]
    assert not {"bj-secret", "sh-secret"} & set(serve.simulator_args(8900, 12))


def test_serve_leaves_the_one_project_of_the_old_variables_as_it_was(settings) -> None:
    from dashboard.cloud import projects
    from dashboard.management.commands import serve

    settings.CLOUD_PROJECTS = ()
    assert serve.simulator_env() is None
    assert serve.simulator_projects((projects.legacy(),)) is None


def test_the_dashboard_finds_a_served_project_without_an_id_at_iam(
    settings, monkeypatch, tmp_path: Path, simulator_factory
) -> None:
    from dashboard.cloud.config import for_project
    from dashboard.management.commands import serve

    listed = serve.simulator_projects(_configured_projects(monkeypatch, tmp_path))
    assert listed is not None
    config = SimConfig.from_env({"SIM_PROJECTS": listed}, servers=24, seed=7)
    started = simulator_factory(projects=config.projects)
    beijing, shanghai = _configured_projects(monkeypatch, tmp_path, started.url)
    shanghai_state = started.state.all_projects()[1]
    servers = CloudClient(for_project(shanghai)).list_servers()
    assert {s.id for s in servers} == set(shanghai_state.servers)
    assert len(CloudClient(for_project(beijing)).list_servers()) == 24
