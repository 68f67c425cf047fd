"""The region tables the client picks endpoints from agree with the official SDK's."""

import json
from pathlib import Path

import pytest

from dashboard.cloud import config

TABLE = json.loads(
    (Path(config.__file__).with_name("data") / "endpoints.json").read_text(encoding="utf-8")
)


def test_eu_west_101_uses_its_own_iam_endpoint() -> None:
    assert config._endpoint("IAM", "", "eu-west-101") == "https://iam.eu-west-101.myhuaweicloud.eu"


def test_a_region_without_a_regional_iam_falls_back_to_the_global_one() -> None:
    assert config._endpoint("IAM", "", "xx-nowhere-1") == "https://iam.myhuaweicloud.com"


def test_every_iam_endpoint_matches_the_iam_sdks_region_table() -> None:
    region = pytest.importorskip("huaweicloudsdkiam.v3.region.iam_region")
    sdk = {name: r.endpoints[0] for name, r in region.IamRegion.static_fields.items()}
    ours = {name: url for name, url in TABLE["IAM"].items() if name != "_global"}
    assert ours == sdk


def test_every_workspaceapp_endpoint_matches_the_sdks_region_table() -> None:
    region = pytest.importorskip("huaweicloudsdkworkspaceapp.v1.region.workspaceapp_region")
    sdk = {name: r.endpoints[0] for name, r in region.WorkspaceAppRegion.static_fields.items()}
    assert TABLE["WorkspaceApp"] == sdk
