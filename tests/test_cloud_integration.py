"""CloudClient against the running simulator over real HTTP: listings, changes, jobs, faults."""

from dataclasses import replace
from typing import Any

import pytest

from dashboard.cloud.client import CloudClient
from dashboard.cloud.errors import CloudError, Outcome
from dashboard.cloud.records import ChangeTarget, ImageType, Server
from tests.sim_fixtures import RunningSimulator


class HealingClock:
    """Fake sleep/monotonic; the first wait also switches the simulator's faults off."""

    def __init__(self, sim: RunningSimulator) -> None:
        self.sim = sim
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.sim.state.set_faults(
            throttle_rate=0.0,
            error_rate=0.0,
            drop_before_rate=0.0,
            drop_after_rate=0.0,
            stall_seconds=0.0,
        )

    def monotonic(self) -> float:
        return self.now


def healing_client(
    sim: RunningSimulator, base: CloudClient, **config: Any
) -> tuple[CloudClient, HealingClock]:
    clock = HealingClock(sim)
    client = CloudClient(
        replace(base.config, **config),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        random=lambda: 1.0,
    )
    return client, clock


def eligible(sim: RunningSimulator, client: CloudClient, count: int = 1) -> list[Server]:
    """Servers the simulator would move to their group's image right now."""
    groups = {g.id: g for g in client.list_server_groups()}
    now = sim.state.now()
    found = []
    for server in client.list_servers():
        target = groups[server.group_id].image_id
        sim_server = sim.state.servers[server.id]
        if target != server.image_id and sim.state.verdict(sim_server, target, now).ok:
            found.append(server)
    assert len(found) >= count, "the seeded fleet should hold servers to change"
    return found[:count]


def target_for(client: CloudClient, server: Server) -> ChangeTarget:
    group = client.show_server_group(server.group_id)
    image = next(i for i in client.list_images() if i.id == group.image_id)
    return ChangeTarget(
        image_id=image.id,
        image_type=image.image_type,
        os_type=image.os_type,
        image_product_id=image.product_code,
    )


# --- listings ----------------------------------------------------------------------------


def test_it_lists_every_server_across_pages(simulator_factory: Any, settings: Any) -> None:
    sim = simulator_factory(servers=230)
    client = _client_for(sim, settings)
    servers = client.list_servers()
    assert sorted(s.id for s in servers) == sorted(sim.state.servers)
    assert client.calls_by_api["ListServers"] == 3


def test_listed_servers_match_the_clouds_state(
    simulator: RunningSimulator, cloud_client: CloudClient
) -> None:
    for server in cloud_client.list_servers():
        truth = simulator.state.servers[server.id]
        assert (server.group_id, server.image_id, server.os_type) == (
            truth.group_id,
            truth.image_id,
            truth.os_type,
        )
        assert server.task_status != "null"
        assert server.create_time is None or server.create_time.tzinfo is not None


def test_it_lists_and_shows_server_groups(
    simulator: RunningSimulator, cloud_client: CloudClient
) -> None:
    groups = cloud_client.list_server_groups()
    assert sorted(g.id for g in groups) == sorted(simulator.state.groups)
    shown = cloud_client.show_server_group(groups[0].id)
    assert shown.image_id == simulator.state.groups[groups[0].id].image_id


def test_it_lists_images_in_our_vocabulary(
    simulator: RunningSimulator, cloud_client: CloudClient
) -> None:
    images = {i.id: i for i in cloud_client.list_images()}
    for image_id, truth in simulator.state.images.items():
        assert images[image_id].image_type == truth.kind
        assert images[image_id].paid == truth.paid
        assert images[image_id].product_code == truth.product_code


def test_it_finds_marketplace_images_by_id(
    simulator: RunningSimulator, cloud_client: CloudClient
) -> None:
    market = [i.id for i in simulator.state.images.values() if i.kind == ImageType.MARKETPLACE]
    found = cloud_client.list_market_images(market)
    assert sorted(i.id for i in found) == sorted(market)
    assert all(i.product_code for i in found)


def test_it_lists_workspace_images(cloud_client: CloudClient) -> None:
    images = cloud_client.list_workspace_images()
    assert images
    assert {i.image_type for i in images} <= {ImageType.PUBLIC, ImageType.PRIVATE}


# --- changing images and following jobs --------------------------------------------------


def test_a_change_runs_as_a_job_until_the_server_has_its_new_image(
    simulator: RunningSimulator, cloud_client: CloudClient
) -> None:
    (server,) = eligible(simulator, cloud_client)
    target = target_for(cloud_client, server)
    result = cloud_client.batch_change_image([server.id], target)
    (item,) = result.items
    assert item.accepted
    assert result.request_id
    assert cloud_client.show_job(item.job_id).status in {"WAITING", "RUNNING"}
    simulator.advance(simulator.config.job_seconds + 1)
    job = cloud_client.show_job(item.job_id)
    assert job.status == "SUCCESS"
    assert [s.resource_id for s in job.sub_jobs] == [server.id]
    after = cloud_client.show_server(server.id)
    assert after.image_id == target.image_id
    assert (after.job_id, after.job_type) == (item.job_id, "CHANGE_SERVER_IMAGE")
    subs = cloud_client.list_sub_jobs(job_id=item.job_id)
    assert [s.resource_id for s in subs] == [server.id]


def test_a_refused_server_comes_back_as_an_item_error(
    simulator: RunningSimulator, cloud_client: CloudClient
) -> None:
    first, second = eligible(simulator, cloud_client, 2)
    simulator.state.reject(second.id)
    result = cloud_client.batch_change_image([first.id, second.id], target_for(cloud_client, first))
    by_server = {i.server_id: i for i in result.items}
    assert by_server[first.id].accepted
    assert not by_server[second.id].accepted
    assert by_server[second.id].error_code


def test_maintenance_mode_is_switched(
    simulator: RunningSimulator, cloud_client: CloudClient
) -> None:
    ids = [s.id for s in cloud_client.list_servers()[:3]]
    cloud_client.batch_change_maintain(ids, True)
    assert all(cloud_client.show_server(i).maintain_status for i in ids)


# --- faults: reads recover ---------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        {"throttle_rate": 1.0},
        {"error_rate": 1.0},
        {"drop_before_rate": 1.0},
        {"drop_after_rate": 1.0},
    ],
    ids=["throttled", "server-error", "dropped-before", "dropped-after"],
)
def test_a_read_recovers_from_a_fault(
    simulator: RunningSimulator, cloud_client: CloudClient, fault: dict[str, float]
) -> None:
    client, clock = healing_client(simulator, cloud_client)
    simulator.state.set_faults(**fault)
    assert len(client.list_servers()) == len(simulator.state.servers)
    assert len(clock.sleeps) == 1
    assert client.calls_by_api["ListServers"] == 2


def test_a_throttled_read_waits_as_the_cloud_asks(
    simulator: RunningSimulator, cloud_client: CloudClient
) -> None:
    client, clock = healing_client(simulator, cloud_client)
    simulator.state.set_faults(throttle_rate=1.0, retry_after_seconds=3)
    client.list_server_groups()
    assert clock.sleeps == [3.0]


def test_a_throttled_read_without_retry_after_backs_off_on_its_own(
    simulator: RunningSimulator, cloud_client: CloudClient
) -> None:
    client, clock = healing_client(simulator, cloud_client)
    simulator.state.set_faults(throttle_rate=1.0, omit_retry_after=True)
    assert client.list_server_groups()
    assert len(clock.sleeps) == 1 and 0 < clock.sleeps[0] <= 20.0  # the jittered backoff
    assert client.calls_by_api["ListServerGroups"] == 2


def test_a_read_recovers_from_a_stalled_answer(
    simulator: RunningSimulator, cloud_client: CloudClient
) -> None:
    client, clock = healing_client(simulator, cloud_client, read_timeout=0.3)
    simulator.state.set_faults(stall_seconds=5.0)
    assert client.list_server_groups()
    assert len(clock.sleeps) == 1


# --- faults: the image change is classified, never re-sent -------------------------------


def _change_under(
    sim: RunningSimulator, base: CloudClient, **fault: float
) -> tuple[CloudError, Server, CloudClient]:
    (server,) = eligible(sim, base)
    target = target_for(base, server)
    client, clock = healing_client(sim, base, read_timeout=0.3)
    sim.state.set_faults(**fault)
    with pytest.raises(CloudError) as caught:
        client.batch_change_image([server.id], target)
    assert clock.sleeps == []
    assert client.calls_by_api["BatchChangeServerImage"] == 1
    sim.state.set_faults(**dict.fromkeys(fault, 0.0))
    return caught.value, server, client


def test_a_throttled_change_was_not_accepted(
    simulator: RunningSimulator, cloud_client: CloudClient
) -> None:
    error, server, client = _change_under(simulator, cloud_client, throttle_rate=1.0)
    assert error.outcome == Outcome.THROTTLED
    assert error.retry_after == 1.0
    assert client.show_server(server.id).job_id == server.job_id


def test_a_change_throttled_without_retry_after_says_not_when_to_come_back(
    simulator: RunningSimulator, cloud_client: CloudClient
) -> None:
    simulator.state.set_faults(omit_retry_after=True)
    error, server, client = _change_under(simulator, cloud_client, throttle_rate=1.0)
    assert (error.status, error.outcome, error.retry_after) == (429, Outcome.THROTTLED, None)
    assert client.show_server(server.id).job_id == server.job_id


def test_a_change_answered_with_a_server_error_is_unknown(
    simulator: RunningSimulator, cloud_client: CloudClient
) -> None:
    error, _, _ = _change_under(simulator, cloud_client, error_rate=1.0)
    assert error.outcome == Outcome.UNKNOWN
    assert error.status in {500, 503}


def test_a_change_dropped_before_processing_is_unknown_and_did_not_happen(
    simulator: RunningSimulator, cloud_client: CloudClient
) -> None:
    error, server, client = _change_under(simulator, cloud_client, drop_before_rate=1.0)
    assert error.outcome == Outcome.UNKNOWN
    assert client.show_server(server.id).job_id == server.job_id


def test_a_change_dropped_after_processing_is_unknown_and_did_happen(
    simulator: RunningSimulator, cloud_client: CloudClient
) -> None:
    error, server, client = _change_under(simulator, cloud_client, drop_after_rate=1.0)
    assert error.outcome == Outcome.UNKNOWN
    # Reconciliation reads the server's own last-job fields.
    after = client.show_server(server.id)
    assert after.job_type == "CHANGE_SERVER_IMAGE"
    assert after.job_id != server.job_id


def test_a_stalled_change_is_unknown(
    simulator: RunningSimulator, cloud_client: CloudClient
) -> None:
    error, _, _ = _change_under(simulator, cloud_client, stall_seconds=5.0)
    assert error.outcome == Outcome.UNKNOWN
    assert error.status is None


def test_a_change_to_a_stopped_cloud_was_not_sent(
    simulator: RunningSimulator, cloud_client: CloudClient
) -> None:
    (server,) = eligible(simulator, cloud_client)
    target = target_for(cloud_client, server)
    client, _ = healing_client(simulator, cloud_client)
    simulator.handle.stop()
    with pytest.raises(CloudError) as caught:
        client.batch_change_image([server.id], target)
    assert caught.value.outcome == Outcome.NOT_SENT


# --- IAM token authentication ------------------------------------------------------------


def test_a_token_client_works_and_renews_an_expired_token(
    simulator: RunningSimulator, cloud_client: CloudClient
) -> None:
    config = simulator.config
    client = CloudClient(
        replace(
            cloud_client.config,
            ak="",
            sk="",
            iam_user=config.iam_user,
            iam_password=config.iam_password,
            iam_domain=config.iam_domain,
        )
    )
    assert client.list_server_groups()
    simulator.state.expire_tokens()
    assert client.list_server_groups()
    assert client.calls_by_api["KeystoneCreateUserTokenByPassword"] == 2


def _client_for(sim: RunningSimulator, settings: Any) -> CloudClient:
    from dashboard.cloud.config import from_settings

    config = sim.config
    settings.HUAWEICLOUD = {
        **settings.HUAWEICLOUD,
        "WORKSPACEAPP_ENDPOINT": sim.url,
        "WORKSPACE_ENDPOINT": sim.url,
        "IMS_ENDPOINT": sim.url,
        "IAM_ENDPOINT": sim.url,
        "AK": config.ak,
        "SK": config.sk,
        "PROJECT_ID": config.project_id,
        "SECURITY_TOKEN": "",
    }
    return CloudClient(from_settings())
