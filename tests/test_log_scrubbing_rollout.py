"""No log line, through a whole rollout and a forced error, carries a secret."""

import logging
import secrets

import pytest

from dashboard import inventory
from dashboard.cloud.client import CloudClient
from dashboard.cloud.config import from_settings
from dashboard.models import Rollout, Server
from dashboard.rollouts import engine
from dashboard.simulator import server as sim_server
from dashboard.simulator.state import SimConfig, SimState
from tests.rollout_helpers import confirm_from_page

pytestmark = pytest.mark.django_db


@pytest.fixture
def secret_sim(settings):
    ak = "HPUA" + secrets.token_hex(8).upper()
    sk = secrets.token_urlsafe(30)
    state = SimState(SimConfig(ak=ak, sk=sk, servers=24, seed=3, job_seconds=60), manual_clock=True)
    handle = sim_server.start(state)
    settings.HUAWEICLOUD = {
        **settings.HUAWEICLOUD,
        "WORKSPACEAPP_ENDPOINT": handle.url,
        "WORKSPACE_ENDPOINT": handle.url,
        "IMS_ENDPOINT": handle.url,
        "IAM_ENDPOINT": handle.url,
        "AK": ak,
        "SK": sk,
        "PROJECT_ID": state.config.project_id,
    }
    yield state, ak, sk
    handle.stop()


def test_a_full_rollout_and_a_forced_error_log_no_secret(
    secret_sim, operator_client, log_output, settings
):
    state, ak, sk = secret_sim
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)  # the most talkative the logs can be
    try:
        client = CloudClient(from_settings())
        inventory.sync_now(client=client)
        server = (
            Server.objects.filter(drift=True, frozen=False)
            .exclude(job_status__in=["WAITING", "RUNNING"])
            .select_related("group")
            .first()
        )
        response = operator_client.post(
            "/rollouts/new/plan/",
            {"server": [server.id], "target_image": server.group.image_id, "reason": "CHG-9"},
        )
        assert response.status_code == 302
        rollout = Rollout.objects.latest("pk")
        confirm_from_page(operator_client, rollout)
        engine.start(rollout.pk, client, sleep=lambda s: None)
        state.advance(3600)
        assert engine.tick(rollout.pk, client) == "succeeded"
        logging.getLogger("dashboard").error(
            "forced error with Authorization: SDK-HMAC-SHA256 Access=%s, Signature=abc; sk=%s",
            ak,
            sk,
        )
        cookies = [c.value for c in operator_client.cookies.values()]
    finally:
        root.setLevel(level)

    text = log_output.getvalue()
    assert "rollout.confirm" in text  # the capture saw the rollout
    assert "forced error" in text
    for secret in [ak, sk, *cookies]:
        assert secret not in text
    assert "Signature=abc" not in text
    assert all("\n" not in line for line in text.splitlines())
