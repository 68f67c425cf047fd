"""Which cloud projects the dashboard serves: `CLOUD_PROJECTS_FILE`, or the one-project variables.

Huawei Cloud scopes Workspace APP to one project in one region. A dashboard that serves offices
in several regions lists them in a TOML file, one `[[project]]` table each:

    [[project]]
    name = "beijing"                 # what URLs and pages call it: ?project=beijing
    region = "cn-north-4"
    label = "Beijing offices"        # optional
    project_id = "0123…"             # optional: without it, looked up through IAM by region
    ak_env = "BEIJING_AK"            # the NAMES of the variables (or NAME_FILE) holding secrets
    sk_env = "BEIJING_SK"
    operator_groups = ["ops-beijing"]   # optional: SSO groups that operate this project only
    approver_groups = ["leads-beijing"]  # optional: … that approve this project's rollouts
    [project.endpoints]              # optional: workspaceapp, workspace, ims, iam
    iam = "https://iam.example.internal"

The file never holds a secret (a key that looks like one is refused), and a bad file stops
start-up with its line and the reason. Without a file the old variables keep working: one
project named after HUAWEICLOUD_REGION. This module reads no Django settings at import time
and touches no database: settings.py calls `load()` once, `configured()` at use time.
"""

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
PROJECT_ID = re.compile(r"^[0-9a-f]{32}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ENDPOINTS = ("workspaceapp", "workspace", "ims", "iam")
CREDENTIALS = (
    "ak_env",
    "sk_env",
    "security_token_env",
    "iam_user_env",
    "iam_password_env",
    "iam_domain_env",
)
# Project groups add rights in one project to a person (and let them view the dashboard); the
# global ROLE_*_GROUPS grant their role in every project.
GROUP_LISTS = ("operator_groups", "approver_groups")
KEYS = frozenset({"name", "region", "label", "project_id", "endpoints", *CREDENTIALS, *GROUP_LISTS})
# The single-project variables, as `ak_env` … would name them in a file.
LEGACY_CREDENTIALS = {
    "ak_env": "HUAWEICLOUD_SDK_AK",
    "sk_env": "HUAWEICLOUD_SDK_SK",
    "security_token_env": "HUAWEICLOUD_SDK_SECURITY_TOKEN",
    "iam_user_env": "HUAWEICLOUD_IAM_USER",
    "iam_password_env": "HUAWEICLOUD_IAM_PASSWORD",
    "iam_domain_env": "HUAWEICLOUD_IAM_DOMAIN",
}


@dataclass(frozen=True)
class ProjectConfig:
    """One project as configured. Credentials are variable names, read when a client is built."""

    name: str
    region: str
    label: str = ""
    project_id: str = ""  # empty: looked up through IAM by region
    ak_env: str = ""
    sk_env: str = ""
    security_token_env: str = ""
    iam_user_env: str = ""
    iam_password_env: str = ""
    iam_domain_env: str = ""
    endpoints: tuple[tuple[str, str], ...] = ()
    operator_groups: tuple[str, ...] = ()
    approver_groups: tuple[str, ...] = ()
    legacy: bool = field(default=False, compare=False)  # built from the single-project variables

    @property
    def title(self) -> str:
        return self.label or self.name

    @property
    def guard_key(self) -> str:
        """The key of its client, pacing and circuit breaker (limits.process_guard): "" for the
        single-project variables, so their counters keep the names they always had."""
        return "" if self.legacy else self.name

    def endpoint(self, service: str) -> str:
        return dict(self.endpoints).get(service, "")

    def groups_for(self, role: str) -> tuple[str, ...]:
        return getattr(self, f"{role}_groups", ())


def configured() -> tuple[ProjectConfig, ...]:
    """Every configured project, the default first."""
    return settings.CLOUD_PROJECTS or (legacy(),)


def default() -> ProjectConfig:
    return configured()[0]


def find(name: str) -> ProjectConfig | None:
    return next((p for p in configured() if p.name == name), None)


def legacy() -> ProjectConfig:
    """The one project the single-project variables describe, named after its region."""
    c = settings.HUAWEICLOUD
    return ProjectConfig(
        name=c["REGION"],
        region=c["REGION"],
        project_id=c["PROJECT_ID"],
        legacy=True,
        **LEGACY_CREDENTIALS,
    )


def load(path: str | Path) -> tuple[ProjectConfig, ...]:
    """Parse a projects file; ImproperlyConfigured names the file, the line and the reason."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImproperlyConfigured(f"CLOUD_PROJECTS_FILE {path}: cannot read it ({exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends with "(at line N, column M)".
        raise ImproperlyConfigured(f"CLOUD_PROJECTS_FILE {path}: {exc}") from None
    lines = _table_lines(text)
    unknown = set(data) - {"project"}
    if unknown:
        raise ImproperlyConfigured(
            f"CLOUD_PROJECTS_FILE {path}: unknown top-level key {sorted(unknown)[0]!r}; "
            "list projects as [[project]] tables"
        )
    tables = data.get("project")
    if not isinstance(tables, list) or not tables:
        raise ImproperlyConfigured(
            f"CLOUD_PROJECTS_FILE {path}: no [[project]] table; list at least one project"
        )
    projects = []
    for index, table in enumerate(tables):
        line = lines[index] if index < len(lines) else 1
        try:
            projects.append(_project(table))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"CLOUD_PROJECTS_FILE {path}, line {line} (project {index + 1}): {exc}"
            ) from None
    seen: set[str] = set()
    for index, project in enumerate(projects):
        if project.name in seen:
            raise ImproperlyConfigured(
                f"CLOUD_PROJECTS_FILE {path}, line {lines[index]} (project {index + 1}): "
                f"the name {project.name!r} is used twice"
            )
        seen.add(project.name)
    return tuple(projects)


def _table_lines(text: str) -> list[int]:
    """The line of each `[[project]]` header, in order (tomllib does not report them)."""
    header = re.compile(r"^\s*\[\[\s*project\s*\]\]")
    return [n for n, line in enumerate(text.splitlines(), start=1) if header.match(line)]


def _project(table: dict) -> ProjectConfig:
    unknown = set(table) - KEYS
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(KEYS))})")
    name = _text(table, "name", required=True)
    if not NAME.match(name):
        raise ValueError(
            f"name {name!r} must be lowercase letters, digits, '-' or '_' (at most 63 characters)"
        )
    region = _text(table, "region", required=True)
    if not REGION.match(region):
        raise ValueError(f"region {region!r} is not a region name such as 'cn-north-4'")
    project_id = _text(table, "project_id")
    if project_id and not PROJECT_ID.match(project_id):
        raise ValueError("project_id must be 32 lowercase hexadecimal characters")
    credentials = {key: _text(table, key) for key in CREDENTIALS}
    for key, value in credentials.items():
        if value and (not ENV_NAME.match(value) or _looks_like_a_key(value)):
            raise ValueError(
                f"{key} must name an environment variable (letters, digits, '_'), not hold a secret"
            )
    if bool(credentials["ak_env"]) != bool(credentials["sk_env"]):
        raise ValueError("ak_env and sk_env go together")
    if not credentials["ak_env"] and not credentials["iam_password_env"]:
        raise ValueError("name the credentials: ak_env and sk_env, or iam_*_env")
    return ProjectConfig(
        name=name,
        region=region,
        label=_text(table, "label"),
        project_id=project_id,
        endpoints=_endpoints(table.get("endpoints", {})),
        **credentials,
        **{key: _groups(table, key) for key in GROUP_LISTS},
    )


def _looks_like_a_key(value: str) -> bool:
    """An access key (20 characters) or a secret key (40) pasted where a variable's name
    belongs: long, with digits, without the underscores variable names have, and no such
    variable set. A variable really called so still works once it is set."""
    return (
        len(value) >= 16
        and "_" not in value
        and any(c.isdigit() for c in value)
        and value not in os.environ
        and f"{value}_FILE" not in os.environ
    )


def _text(table: dict, key: str, *, required: bool = False) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    value = value.strip()
    if required and not value:
        raise ValueError(f"{key} is required")
    return value


def _groups(table: dict, key: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(g, str) and g.strip() for g in value):
        raise ValueError(f"{key} must be a list of group names")
    return tuple(g.strip() for g in value)


def _endpoints(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise ValueError("endpoints must be a table")
    unknown = set(value) - set(ENDPOINTS)
    if unknown:
        raise ValueError(f"unknown endpoint {sorted(unknown)[0]!r} (known: {', '.join(ENDPOINTS)})")
    found = []
    for service in ENDPOINTS:
        url = value.get(service)
        if url is None:
            continue
        if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url):
            raise ValueError(f"endpoints.{service} must be an http(s) URL")
        found.append((service, url.rstrip("/")))
    return tuple(found)
