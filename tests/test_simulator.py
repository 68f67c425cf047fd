"""The simulator over HTTP: limits, auth, paging, jobs, compat refusals, faults, recording."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from dashboard.cloud.signing import SDK_DATE_FORMAT
from dashboard.simulator import codes, rules
from dashboard.simulator.fleet import build_fleet
from tests.sim_fixtures import RunningSimulator
from tests.sim_fixtures import signed_call as call

TIMEOUT = 10


def v1(sim: RunningSimulator, rest: str) -> str:
    return f"/v1/{sim.config.project_id}{rest}"


def image_named(sim: RunningSimulator, name: str):
    return next(i for i in sim.state.images.values() if i.name == name)


def servers_in_scenario(sim: RunningSimulator, scenario: str) -> list:
    return [s for s in sim.state.servers.values() if s.scenario == scenario]


def group_image(sim: RunningSimulator, server) -> Any:
    return sim.state.images[sim.state.groups[server.group_id].image_id]


def change_body(image, server_ids: list[str]) -> dict[str, Any]:
    wire = {"marketplace": "gold"}.get(image.kind, image.kind)
    body = {
        "server_ids": server_ids,
        "image_id": image.id,
        "image_type": wire,
        "os_type": image.os_type,
    }
    if image.product_code:
        body["image_product_id"] = image.product_code
    return body


def drifted_private(sim: RunningSimulator):
    """A drifted server whose group image is a free private one (the ordinary case)."""
    return next(
        s
        for s in servers_in_scenario(sim, "drifted_maintenance")
        if group_image(sim, s).kind == "private"
    )


def drifted_marketplace(sim: RunningSimulator):
    """A server of the marketplace group moved back to the previous generation of its image."""
    server = next(
        s
        for s in servers_in_scenario(sim, "busy_sessions")
        if group_image(sim, s).kind == "marketplace"
    )
    target = group_image(sim, server)
    older = next(
        i
        for i in sim.state.images.values()
        if i.product_code == target.product_code and i.id != target.id
    )
    sim.state.patch_server(server.id, image_id=older.id)
    return server


# --- the fleet ----------------------------------------------------------------------------


def test_the_fleet_is_the_same_for_the_same_seed() -> None:
    first, second = build_fleet(60, 3), build_fleet(60, 3)
    assert [s.id for s in first.servers] == [s.id for s in second.servers]
    assert [s.image_id for s in first.servers] == [s.image_id for s in second.servers]


def test_a_small_fleet_has_every_scenario_and_image_kind() -> None:
    fleet = build_fleet(24, 7)
    assert {s.scenario for s in fleet.servers} >= {
        "current",
        "drifted",
        "drifted_maintenance",
        "busy_sessions",
        "stopped",
        "maintaining",
        "frozen",
        "job_running",
    }
    kinds = {i.kind for i in fleet.images}
    assert kinds == {"private", "shared", "public", "marketplace"}
    assert len({i.product_code for i in fleet.images if i.paid}) == 2
    assert any(i.architecture == "arm" for i in fleet.images)
    assert any(i.os_type == "Linux" for i in fleet.images)
    assert any(i.status != "active" for i in fleet.images)


def test_a_large_fleet_has_fifty_groups() -> None:
    fleet = build_fleet(5000, 1)
    assert len(fleet.groups) == 50
    assert len({g.name for g in fleet.groups}) == 50


# --- limits and errors ----------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["0", "101", "ten"])
def test_list_servers_refuses_a_limit_outside_1_to_100(simulator, limit) -> None:
    response = call(simulator, "GET", v1(simulator, "/app-servers"), [("limit", limit)])
    assert response.status_code == 400
    assert response.json()["error_code"] == codes.BAD_REQUEST
    assert response.headers["X-Request-Id"]


def test_list_servers_refuses_a_malformed_maintain_status(simulator) -> None:
    params = [("maintain_status", "yes")]
    response = call(simulator, "GET", v1(simulator, "/app-servers"), params)
    assert response.status_code == 400


def test_batch_change_refuses_more_than_50_servers(simulator) -> None:
    image = image_named(simulator, "win2019-office-2026.11")
    body = change_body(image, [f"s-{n}" for n in range(51)])
    path = v1(simulator, "/app-servers/actions/batch-change-image")
    response = call(simulator, "POST", path, body=body)
    assert response.status_code == 400
    assert response.json()["error_code"] == codes.BAD_REQUEST


@pytest.mark.parametrize("missing", ["image_id", "image_type", "os_type"])
def test_batch_change_requires_its_fields(simulator, missing) -> None:
    image = image_named(simulator, "win2019-office-2026.11")
    body = change_body(image, [])
    del body[missing]
    path = v1(simulator, "/app-servers/actions/batch-change-image")
    assert call(simulator, "POST", path, body=body).status_code == 400


def test_batch_change_requires_the_product_id_of_a_marketplace_image(simulator) -> None:
    image = image_named(simulator, "adobe-cc-win2022-2026.11")
    body = change_body(image, [])
    del body["image_product_id"]
    path = v1(simulator, "/app-servers/actions/batch-change-image")
    assert call(simulator, "POST", path, body=body).status_code == 400


@pytest.mark.parametrize("ids", [[], [f"s-{n}" for n in range(21)], ["a", "a"]])
def test_maintenance_takes_1_to_20_unique_ids(simulator, ids) -> None:
    path = v1(simulator, "/app-servers/actions/batch-maint")
    body = {"items": ids, "maintain_status": True}
    response = call(simulator, "PATCH", path, body=body)
    assert response.status_code == 400
    assert response.json()["error_code"] == codes.BAD_REQUEST


def test_an_unknown_server_is_404_with_the_cloud_code(simulator) -> None:
    response = call(simulator, "GET", v1(simulator, "/app-servers/no-such-server"))
    assert response.status_code == 404
    assert response.json()["error_code"] == "WKS.00211902"


def test_list_sub_jobs_requires_a_job_type(simulator) -> None:
    response = call(simulator, "GET", v1(simulator, "/app-server-sub-jobs"))
    assert response.status_code == 400


def test_an_unknown_path_is_a_gateway_404(simulator) -> None:
    response = call(simulator, "GET", v1(simulator, "/no-such-api"))
    assert response.status_code == 404
    assert response.json()["error_code"] == codes.GW_NOT_FOUND


# --- authentication ---------------------------------------------------------------------------


def test_an_unsigned_request_is_401_apigw_0301(simulator) -> None:
    response = call(simulator, "GET", v1(simulator, "/app-servers"), sign=False)
    assert response.status_code == 401
    body = response.json()
    assert body["error_code"] == "APIGW.0301"
    assert body["request_id"] == response.headers["X-Request-Id"]


def test_a_wrong_secret_is_401(simulator) -> None:
    response = call(simulator, "GET", v1(simulator, "/app-servers"), sk="not-the-secret")
    assert response.status_code == 401
    assert response.json()["error_code"] == "APIGW.0301"


def test_a_signature_dated_20_minutes_ago_has_expired(simulator) -> None:
    old = (datetime.now(UTC) - timedelta(minutes=20)).strftime(SDK_DATE_FORMAT)
    response = call(simulator, "GET", v1(simulator, "/app-servers"), sdk_date=old)
    assert response.status_code == 401
    assert response.json()["error_code"] == "APIGW.0303"


def _password_body(sim: RunningSimulator, password: str) -> dict[str, Any]:
    config = sim.config
    user = {"name": config.iam_user, "password": password, "domain": {"name": config.iam_domain}}
    return {
        "auth": {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": {"project": {"name": config.region}},
        }
    }


def test_an_iam_token_opens_the_api(simulator) -> None:
    body = _password_body(simulator, simulator.config.iam_password)
    issued = call(simulator, "POST", "/v3/auth/tokens", body=body, sign=False)
    assert issued.status_code == 201
    assert issued.json()["token"]["project"]["id"] == simulator.config.project_id
    token = issued.headers["X-Subject-Token"]
    listed = call(
        simulator,
        "GET",
        v1(simulator, "/app-servers"),
        sign=False,
        headers={"X-Auth-Token": token},
    )
    assert listed.status_code == 200


def test_a_wrong_password_is_a_keystone_401(simulator) -> None:
    body = _password_body(simulator, "wrong")
    response = call(simulator, "POST", "/v3/auth/tokens", body=body, sign=False)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == 401


def test_an_unknown_token_is_401(simulator) -> None:
    headers = {"X-Auth-Token": "MIIbogus"}
    response = call(simulator, "GET", v1(simulator, "/app-servers"), sign=False, headers=headers)
    assert response.status_code == 401


def test_projects_resolve_by_region_name(simulator) -> None:
    response = call(simulator, "GET", "/v3/projects", [("name", simulator.config.region)])
    assert response.json()["projects"][0]["id"] == simulator.config.project_id


# --- paging -------------------------------------------------------------------------------------


def test_list_servers_pages_through_the_whole_fleet(simulator) -> None:
    seen: list[str] = []
    offset = 0
    while True:
        params = [("limit", "10"), ("offset", str(offset))]
        page = call(simulator, "GET", v1(simulator, "/app-servers"), params).json()
        assert page["count"] == len(simulator.state.servers)
        seen += [s["id"] for s in page["items"]]
        offset += 10
        if offset >= page["count"]:
            break
    assert seen == list(simulator.state.servers)


def test_list_servers_defaults_to_ten(simulator) -> None:
    page = call(simulator, "GET", v1(simulator, "/app-servers")).json()
    assert len(page["items"]) == 10


def test_list_servers_filters_by_group(simulator) -> None:
    group = next(iter(simulator.state.groups.values()))
    params = [("server_group_id", group.id), ("limit", "100")]
    page = call(simulator, "GET", v1(simulator, "/app-servers"), params).json()
    assert page["count"] == simulator.state.servers_in(group.id)
    assert {s["server_group_id"] for s in page["items"]} == {group.id}


def test_ims_images_page_by_marker(simulator) -> None:
    first = call(simulator, "GET", "/v2/cloudimages", [("limit", "5")]).json()["images"]
    marker = first[-1]["id"]
    params = [("limit", "500"), ("marker", marker)]
    rest = call(simulator, "GET", "/v2/cloudimages", params).json()["images"]
    assert len(first) + len(rest) == len(simulator.state.images)
    assert not {i["id"] for i in first} & {i["id"] for i in rest}


def test_ims_filters_by_image_type(simulator) -> None:
    params = [("__imagetype", "market")]
    images = call(simulator, "GET", "/v2/cloudimages", params).json()["images"]
    assert images
    assert all(i["__productcode"] for i in images)


# --- jobs -------------------------------------------------------------------------------------


def _views(sim: RunningSimulator, server_id: str, job_id: str) -> tuple[str, str, str, str]:
    server = call(sim, "GET", v1(sim, f"/app-servers/{server_id}")).json()
    detail = call(sim, "GET", f"/v2/{sim.config.project_id}/job/{job_id}").json()
    params = [("job_type", "CHANGE_SERVER_IMAGE"), ("job_id", job_id)]
    subs = call(sim, "GET", v1(sim, "/app-server-sub-jobs"), params).json()["items"]
    assert server["job_id"] == job_id and server["job_type"] == "CHANGE_SERVER_IMAGE"
    assert detail["sub_jobs"][0]["job_resource_info"]["resource_id"] == server_id
    return server["job_status"], detail["status"], subs[0]["status"], server["task_status"]


def _submit(sim: RunningSimulator, server, image) -> dict[str, str]:
    path = v1(sim, "/app-servers/actions/batch-change-image")
    response = call(sim, "POST", path, body=change_body(image, [server.id]))
    assert response.status_code == 200
    (item,) = response.json()["items"]
    return item


def test_a_change_job_progresses_with_the_clock_and_all_views_agree(simulator) -> None:
    server = drifted_private(simulator)
    target = group_image(simulator, server)
    item = _submit(simulator, server, target)
    assert item["error_code"] == "" and len(item["job_id"]) == 18 and item["job_id"].isdigit()

    assert _views(simulator, server.id, item["job_id"]) == ("WAITING",) * 3 + ("rebuilding",)
    simulator.advance(30)
    assert _views(simulator, server.id, item["job_id"]) == ("RUNNING",) * 3 + ("rebuilding",)
    simulator.advance(30)
    assert _views(simulator, server.id, item["job_id"]) == ("SUCCESS",) * 3 + ("null",)


def test_a_successful_job_changes_the_servers_image(simulator) -> None:
    server = drifted_private(simulator)
    target = group_image(simulator, server)
    _submit(simulator, server, target)
    path = v1(simulator, f"/app-servers/{server.id}")
    assert call(simulator, "GET", path).json()["image_id"] != target.id
    simulator.advance(60)
    assert call(simulator, "GET", path).json()["image_id"] == target.id


def test_a_failed_job_keeps_the_old_image_and_reports_an_error(simulator) -> None:
    simulator.state.set_faults(job_failure_rate=1.0)
    server = drifted_private(simulator)
    before = server.image_id
    item = _submit(simulator, server, group_image(simulator, server))
    simulator.advance(60)
    detail = call(simulator, "GET", f"/v2/{simulator.config.project_id}/job/{item['job_id']}")
    assert detail.json()["status"] == "FAILED"
    assert detail.json()["sub_jobs"][0]["error_code"] == codes.JOB_FAILED
    assert simulator.state.servers[server.id].image_id == before


def test_each_accepted_server_gets_its_own_job(simulator) -> None:
    candidates = [
        s
        for s in servers_in_scenario(simulator, "drifted")
        if group_image(simulator, s).kind == "private"
    ][:2]
    target = group_image(simulator, candidates[0])
    same_family = [s for s in candidates if group_image(simulator, s).id == target.id]
    ids = [s.id for s in same_family] or [candidates[0].id]
    path = v1(simulator, "/app-servers/actions/batch-change-image")
    items = call(simulator, "POST", path, body=change_body(target, ids)).json()["items"]
    jobs = [i["job_id"] for i in items]
    assert all(jobs) and len(set(jobs)) == len(jobs)


def test_maintenance_mode_sets_the_flag_and_status(simulator) -> None:
    server = next(iter(servers_in_scenario(simulator, "current")))
    path = v1(simulator, "/app-servers/actions/batch-maint")
    response = call(simulator, "PATCH", path, body={"items": [server.id], "maintain_status": True})
    assert response.status_code == 200 and response.content == b""
    shown = call(simulator, "GET", v1(simulator, f"/app-servers/{server.id}")).json()
    assert shown["maintain_status"] is True and shown["status"] == "MAINTAINING"


# --- compatibility refused per item -------------------------------------------------------------


def _refusal(sim: RunningSimulator, server, image) -> str:
    item = _submit(sim, server, image)
    assert item["job_id"] == ""
    return item["error_code"]


@pytest.mark.parametrize(
    ("image_name", "reason"),
    [
        ("ubuntu-22.04-apps-2026.11", rules.OTHER_OS),
        ("win2022-arm-office-2026.11", rules.OTHER_ARCHITECTURE),
        ("win2019-office-2026.12-rc", rules.NOT_READY),
        ("win2019-office-bigdisk-2026.11", rules.DISK_TOO_SMALL),
        ("adobe-cc-win2022-2026.11", rules.FREE_FOR_PAID),
    ],
)
def test_an_incompatible_image_is_refused_per_server(simulator, image_name, reason) -> None:
    server = drifted_private(simulator)
    image = image_named(simulator, image_name)
    assert _refusal(simulator, server, image) == codes.REFUSAL_CODES[reason]


def test_a_paid_image_of_another_product_is_refused(simulator) -> None:
    server = drifted_marketplace(simulator)
    image = image_named(simulator, "autocad-lt-win2022-2026.11")
    assert _refusal(simulator, server, image) == codes.REFUSAL_CODES[rules.OTHER_PRODUCT]


def test_a_paid_image_of_the_same_product_is_accepted(simulator) -> None:
    server = drifted_marketplace(simulator)
    assert _submit(simulator, server, group_image(simulator, server))["job_id"]


@pytest.mark.parametrize(
    ("scenario", "reason"),
    [
        ("frozen", rules.FROZEN),
        ("job_running", rules.BUSY),
        ("current", rules.SAME_IMAGE),
    ],
)
def test_a_server_that_cannot_change_now_is_refused(simulator, scenario, reason) -> None:
    server = servers_in_scenario(simulator, scenario)[0]
    image = group_image(simulator, server)
    if scenario != "current":
        family = image.name.rsplit("-", 1)[0]
        older = [
            i
            for i in simulator.state.images.values()
            if i.name.rsplit("-", 1)[0] == family and i.id != image.id
        ]
        server.image_id = older[0].id
    assert _refusal(simulator, server, image) == codes.REFUSAL_CODES[reason]


def test_an_unknown_server_in_a_batch_is_an_item_error(simulator) -> None:
    image = image_named(simulator, "win2019-office-2026.11")
    path = v1(simulator, "/app-servers/actions/batch-change-image")
    items = call(simulator, "POST", path, body=change_body(image, ["gone"])).json()["items"]
    assert items == [
        {
            "server_id": "gone",
            "job_id": "",
            "error_code": codes.NOT_FOUND,
            "error_message": rules.MESSAGES[rules.SERVER_GONE],
        }
    ]


# --- faults ---------------------------------------------------------------------------------------


def test_throttling_answers_429_with_retry_after(simulator) -> None:
    simulator.state.set_faults(throttle_rate=1.0, retry_after_seconds=3)
    response = call(simulator, "GET", v1(simulator, "/app-servers"))
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert response.headers["X-Request-Id"]


def test_error_rate_answers_5xx_in_the_cloud_format(simulator) -> None:
    simulator.state.set_faults(error_rate=1.0)
    response = call(simulator, "GET", v1(simulator, "/app-servers"))
    assert response.status_code in (500, 503)
    assert response.json()["error_code"] in (codes.INTERNAL, codes.UNAVAILABLE)


def test_faults_never_touch_the_control_endpoints(simulator) -> None:
    simulator.state.set_faults(error_rate=1.0, throttle_rate=1.0, drop_before_rate=1.0)
    assert requests.get(f"{simulator.url}/_sim/health", timeout=TIMEOUT).status_code == 200


def test_a_drop_before_closes_the_connection_and_changes_nothing(simulator) -> None:
    simulator.state.set_faults(drop_before_rate=1.0)
    server = drifted_private(simulator)
    with pytest.raises(requests.ConnectionError):
        _submit(simulator, server, group_image(simulator, server))
    assert simulator.state.job_of(server).job_type == "CREATE_SERVER"


def test_a_drop_after_closes_the_connection_but_the_change_happened(simulator) -> None:
    simulator.state.set_faults(drop_after_rate=1.0)
    server = drifted_private(simulator)
    with pytest.raises(requests.ConnectionError):
        _submit(simulator, server, group_image(simulator, server))
    simulator.state.set_faults(drop_after_rate=0.0)
    shown = call(simulator, "GET", v1(simulator, f"/app-servers/{server.id}")).json()
    assert shown["job_type"] == "CHANGE_SERVER_IMAGE"
    assert shown["job_status"] == "WAITING"


def test_a_stall_outlasts_a_short_client_timeout(simulator) -> None:
    simulator.state.set_faults(stall_seconds=2.0)
    with pytest.raises(requests.Timeout):
        call(simulator, "GET", v1(simulator, "/app-servers"), timeout=0.2)


def test_a_per_server_rejection_is_returned_as_an_item_error(simulator) -> None:
    server = drifted_private(simulator)
    simulator.state.reject(server.id, "WKS.00129901")
    item = _submit(simulator, server, group_image(simulator, server))
    assert item["error_code"] == "WKS.00129901" and item["job_id"] == ""


def test_faults_and_clock_are_controllable_over_http(simulator) -> None:
    url = simulator.url
    knobs = requests.post(f"{url}/_sim/faults", json={"latency_ms": 5}, timeout=TIMEOUT).json()
    assert knobs["latency_ms"] == 5
    bad = requests.post(f"{url}/_sim/faults", json={"error_rate": 2}, timeout=TIMEOUT)
    assert bad.status_code == 400
    before = simulator.state.clock.now()
    requests.post(f"{url}/_sim/clock", json={"advance": 90}, timeout=TIMEOUT)
    assert simulator.state.clock.now() - before == timedelta(seconds=90)


@pytest.mark.parametrize(
    "knob",
    [{"shared_batch_job": 1}, {"denied_apis": "ListServers"}, {"unpublished_apis": [""]},
     {"iam_projects": -1}, {"omit_retry_after": "yes"}],
)  # fmt: skip
def test_the_open_question_knobs_refuse_bad_values(simulator, knob) -> None:
    bad = requests.post(f"{simulator.url}/_sim/faults", json=knob, timeout=TIMEOUT)
    assert bad.status_code == 400


def test_a_denied_api_is_refused_only_to_that_api(simulator) -> None:
    simulator.state.set_faults(denied_apis=["ListServerGroups"])
    refused = call(simulator, "GET", v1(simulator, "/app-server-groups"))
    assert refused.status_code == 403
    assert "workspace:serverGroup:list" in refused.json()["error_msg"]
    assert call(simulator, "GET", v1(simulator, "/app-servers")).status_code == 200


def test_an_unpublished_api_is_unknown_to_the_gateway_even_unsigned(simulator) -> None:
    simulator.state.set_faults(unpublished_apis=["ListServers"])
    answer = call(simulator, "GET", v1(simulator, "/app-servers"), sign=False)
    assert (answer.status_code, answer.json()["error_code"]) == (404, codes.GW_NOT_FOUND)


def test_a_server_can_be_patched_over_http(simulator) -> None:
    server = next(iter(simulator.state.servers.values()))
    url = f"{simulator.url}/_sim/servers/{server.id}"
    patched = requests.post(url, json={"session_count": 9}, timeout=TIMEOUT).json()
    assert patched["session_count"] == 9


def test_reset_restores_the_fleet(simulator) -> None:
    server = drifted_private(simulator)
    _submit(simulator, server, group_image(simulator, server))
    requests.post(f"{simulator.url}/_sim/reset", timeout=TIMEOUT)
    assert simulator.state.job_of(simulator.state.servers[server.id]).job_type == "CREATE_SERVER"
    assert simulator.requests() == []


# --- request recording ------------------------------------------------------------------------


def test_every_cloud_request_is_recorded_once(simulator) -> None:
    server = drifted_private(simulator)
    _submit(simulator, server, group_image(simulator, server))
    call(simulator, "GET", v1(simulator, "/app-servers"), [("limit", "100")])
    requests.get(f"{simulator.url}/_sim/health", timeout=TIMEOUT)
    posts = simulator.requests("POST", "/batch-change-image")
    assert len(posts) == 1
    assert posts[0]["body"]["server_ids"] == [server.id]
    assert posts[0]["status"] == 200 and posts[0]["request_id"]
    assert [r["path"] for r in simulator.requests()] == [
        v1(simulator, "/app-servers/actions/batch-change-image"),
        v1(simulator, "/app-servers"),
    ]
    recorded = requests.get(f"{simulator.url}/_sim/requests", timeout=TIMEOUT).json()
    assert len(recorded["requests"]) == 2


# --- serving ------------------------------------------------------------------------------------


def test_it_answers_many_requests_at_once(simulator) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def fetch(n: int) -> int:
        params = [("limit", "5"), ("offset", str(n))]
        return call(simulator, "GET", v1(simulator, "/app-servers"), params).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert set(pool.map(fetch, range(48))) == {200}
    assert len(simulator.requests("GET")) == 48


def test_runsim_options_build_the_state() -> None:
    from dashboard.management.commands.runsim import build_state

    options = {
        "servers": 30,
        "seed": 4,
        "job_seconds": 5.0,
        "manual_clock": True,
        "latency_ms": 0,
        "error_rate": 0.25,
        "throttle_rate": 0.0,
        "job_failure_rate": 0.5,
        "drop_before_rate": 0.0,
        "drop_after_rate": 0.0,
        "stall_seconds": 0.0,
    }
    state = build_state(options)
    assert len(state.servers) == 30 and state.config.job_seconds == 5.0
    assert state.faults.error_rate == 0.25 and state.faults.job_failure_rate == 0.5
    assert state.clock.manual
