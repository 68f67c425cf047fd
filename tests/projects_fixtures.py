"""Two projects in two regions, served by one simulator: the dashboard configured for both."""

import pytest

from dashboard.cloud.projects import ProjectConfig
from dashboard.simulator.state import SimProject

BEIJING = SimProject(
    project_id="b" * 32, region="cn-north-4", ak="BEIJINGACCESSKEY0001", sk="beijing-secret"
)
SINGAPORE = SimProject(
    project_id="5" * 32,
    region="ap-southeast-1",
    ak="SINGAPOREACCESSKEY01",
    sk="singapore-secret",
    servers=12,
)


@pytest.fixture
def two_projects(simulator_factory, settings, monkeypatch):
    sim = simulator_factory(projects=(BEIJING, SINGAPORE))
    settings.HUAWEICLOUD = {
        **settings.HUAWEICLOUD,
        **{f"{k}_ENDPOINT": sim.url for k in ("WORKSPACEAPP", "WORKSPACE", "IMS", "IAM")},
        "RETRY_DEADLINE": 0.0,
    }
    settings.CLOUD_PROJECTS = (
        ProjectConfig(
            name="beijing",
            region="cn-north-4",
            project_id=BEIJING.project_id,
            ak_env="T_BJ_AK",
            sk_env="T_BJ_SK",
        ),
        # No project id: found through IAM by the region's name.
        ProjectConfig(
            name="singapore", region="ap-southeast-1", ak_env="T_SG_AK", sk_env="T_SG_SK"
        ),
    )
    monkeypatch.setenv("T_BJ_AK", BEIJING.ak)
    monkeypatch.setenv("T_BJ_SK", BEIJING.sk)
    monkeypatch.setenv("T_SG_AK", SINGAPORE.ak)
    monkeypatch.setenv("T_SG_SK", SINGAPORE.sk)
    return sim
