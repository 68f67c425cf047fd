"""Where the cloud is and how to authenticate, from settings.HUAWEICLOUD.

Endpoints come from the region (the official SDK's region tables) unless an explicit
override is set; `make run` and the tests point every override at the simulator.
"""

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from dashboard.cloud.projects import ProjectConfig
from dashboard.env import env_secret, env_str

_ENDPOINTS = Path(__file__).with_name("data") / "endpoints.json"


@cache
def _region_tables() -> dict[str, dict[str, str]]:
    return json.loads(_ENDPOINTS.read_text())


@dataclass(frozen=True)
class CloudConfig:
    workspaceapp_endpoint: str
    workspace_endpoint: str
    ims_endpoint: str
    iam_endpoint: str
    project_id: str
    ak: str = ""
    sk: str = ""
    security_token: str = ""
    iam_user: str = ""
    iam_password: str = ""
    iam_domain: str = ""
    region: str = ""
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    retry_deadline: float = 60.0
    verify_tls: bool = True

    @property
    def uses_aksk(self) -> bool:
        return bool(self.ak and self.sk)

    def __repr__(self) -> str:  # never print secrets
        return f"CloudConfig(endpoint={self.workspaceapp_endpoint!r}, project={self.project_id!r})"


def _endpoint(service: str, override: str, region: str) -> str:
    if override:
        return override.rstrip("/")
    table = _region_tables()[service]
    if service == "IAM" and region not in table:
        return table["_global"]
    try:
        return table[region]
    except KeyError:
        raise ImproperlyConfigured(
            f"Region {region!r} has no {service} endpoint; set HUAWEICLOUD_{service.upper()}_"
            "ENDPOINT."
        ) from None


def from_settings() -> CloudConfig:
    c = settings.HUAWEICLOUD
    region = c["REGION"]
    return CloudConfig(
        workspaceapp_endpoint=_endpoint("WorkspaceApp", c["WORKSPACEAPP_ENDPOINT"], region),
        workspace_endpoint=_endpoint("Workspace", c["WORKSPACE_ENDPOINT"], region),
        ims_endpoint=_endpoint("IMS", c["IMS_ENDPOINT"], region),
        iam_endpoint=_endpoint("IAM", c["IAM_ENDPOINT"], region),
        project_id=c["PROJECT_ID"],
        ak=c["AK"],
        sk=c["SK"],
        security_token=c["SECURITY_TOKEN"],
        iam_user=c["IAM_USER"],
        iam_password=c["IAM_PASSWORD"],
        iam_domain=c["IAM_DOMAIN"],
        region=region,
        connect_timeout=c["CONNECT_TIMEOUT"],
        read_timeout=c["READ_TIMEOUT"],
        retry_deadline=c["RETRY_DEADLINE"],
        verify_tls=c["VERIFY_TLS"],
    )


def for_project(project: ProjectConfig) -> CloudConfig:
    """The connection of one configured project.

    Endpoints: the project's own override, else the HUAWEICLOUD_*_ENDPOINT variable (one
    gateway or simulator for every project), else the region's table. Secrets are read from
    the variables the project names, now, so a rotated secret file is picked up.
    """
    if project.legacy:
        return from_settings()
    c = settings.HUAWEICLOUD

    def endpoint(service: str, key: str) -> str:
        return _endpoint(
            service, project.endpoint(key) or c[f"{key.upper()}_ENDPOINT"], project.region
        )

    def secret(name: str) -> str:
        return env_secret(name) if name else ""

    return CloudConfig(
        workspaceapp_endpoint=endpoint("WorkspaceApp", "workspaceapp"),
        workspace_endpoint=endpoint("Workspace", "workspace"),
        ims_endpoint=endpoint("IMS", "ims"),
        iam_endpoint=endpoint("IAM", "iam"),
        project_id=project.project_id,
        ak=secret(project.ak_env),
        sk=secret(project.sk_env),
        security_token=secret(project.security_token_env),
        iam_user=env_str(project.iam_user_env) if project.iam_user_env else "",
        iam_password=secret(project.iam_password_env),
        iam_domain=env_str(project.iam_domain_env) if project.iam_domain_env else "",
        region=project.region,
        connect_timeout=c["CONNECT_TIMEOUT"],
        read_timeout=c["READ_TIMEOUT"],
        retry_deadline=c["RETRY_DEADLINE"],
        verify_tls=c["VERIFY_TLS"],
    )
