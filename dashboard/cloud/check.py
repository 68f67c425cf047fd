"""The connection check: can this dashboard, with these settings, do its work in the cloud?

`run_check()` answers with a typed `Report` — region, endpoints, how requests authenticate,
the token's expiry, the clock's skew against the cloud's `Date` header, and one `Probe` per
API the dashboard calls. The `/cloud/` page and `manage.py cloudcheck` both show it.

Every probe is a read sent once. The writes (BatchChangeServerImage, maintenance mode,
logoff) are never sent: no read-only call proves a write is allowed, so their rows name
the IAM action they need and are judged from the answers of the reads (see docs/cloud.md,
"First day on the real cloud"). Nothing here holds or shows a secret.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from dashboard.cloud import wire
from dashboard.cloud.client import CloudClient, Query, get_client
from dashboard.cloud.config import from_settings
from dashboard.cloud.errors import CloudError, Outcome

SIGNATURE_SKEW_LIMIT = timedelta(minutes=15)  # the gateway refuses signatures past this
SKEW_WARNING = timedelta(minutes=5)

# Results of one probe.
OK = "ok"
DENIED = "denied"  # 403: the key's policy lacks the action
NOT_PUBLISHED = "not_published"  # 404 from the gateway: no such API in this region
UNREACHABLE = "unreachable"  # no answer (DNS, connect, timeout)
UNAUTHORIZED = "unauthorized"  # 401: the credentials themselves were refused
FAILED = "failed"  # any other error
SKIPPED = "skipped"  # nothing to probe it with (e.g. no server yet)
NOT_SENT = "not_sent"  # a write: never sent by the check
PASSING = frozenset({OK, SKIPPED, NOT_SENT})

# Words for people, in the reader's language (the page) or English (the command).
LABELS = {
    OK: gettext_lazy("OK"),
    DENIED: gettext_lazy("Denied (403)"),
    NOT_PUBLISHED: gettext_lazy("Not published in this region (404)"),
    UNREACHABLE: gettext_lazy("Unreachable"),
    UNAUTHORIZED: gettext_lazy("Credentials refused (401)"),
    FAILED: gettext_lazy("Failed"),
    SKIPPED: gettext_lazy("Skipped"),
    NOT_SENT: gettext_lazy("Write, not sent"),
}
AUTH_MODES = {
    "IAM token (user and password)": gettext_lazy("IAM token (user and password)"),
    "temporary keys (AK/SK and security token)": gettext_lazy(
        "temporary keys (AK/SK and security token)"
    ),
    "AK/SK": gettext_lazy("access keys (AK/SK)"),
    "unknown": gettext_lazy("unknown"),
    "none": gettext_lazy("none"),
}

# The IAM action each API needs. The reference names only BatchChangeServerImage's
# (`documented`); the others follow the same service:resource:verb pattern.
ACTIONS = {
    "ListServers": "workspace:server:list",
    "ShowServer": "workspace:server:get",
    "ListServerGroups": "workspace:serverGroup:list",
    "ShowServerGroup": "workspace:serverGroup:get",
    "ListImages": "ims:images:list",
    "ListWorkspaceImages": "workspace:images:list",
    "ListMarketImages": "workspace:images:list",
    "ShowJobDetail": "workspace:job:get",
    "ListSubJobs": "workspace:job:list",
    "ListSessions": "workspace:session:list",
    "BatchChangeServerImage": "workspace:server:batchChangeImage",
    "BatchChangeServerMaintainMode": "workspace:server:batchMaint",
    "LogoffUserSession": "workspace:session:logoff",
    "KeystoneListProjects": "iam:projects:list",
}
DOCUMENTED_ACTIONS = frozenset({"workspace:server:batchChangeImage"})
_POLICY = re.compile(r"Policy doesn't allow (\S+) to be performed", re.IGNORECASE)
_NOT_PUBLISHED = ("APIGW.0101", "APIG.0101")


@dataclass(frozen=True)
class Probe:
    api: str
    purpose: str
    action: str
    result: str
    detail: str = ""
    http_status: int | None = None

    @property
    def label(self) -> str:
        return str(LABELS[self.result])

    @property
    def passed(self) -> bool:
        return self.result in PASSING

    @property
    def action_documented(self) -> bool:
        return self.action in DOCUMENTED_ACTIONS


@dataclass(frozen=True)
class Report:
    region: str
    endpoints: dict[str, str]
    auth_mode: str
    project_id: str = ""
    project_source: str = ""
    token_expires_at: datetime | None = None
    cloud_time: datetime | None = None
    local_time: datetime | None = None
    problem: str = ""  # set when the check could not start (no credentials, no project)
    probes: tuple[Probe, ...] = field(default_factory=tuple)

    @property
    def auth_mode_label(self) -> str:
        return str(AUTH_MODES.get(self.auth_mode, self.auth_mode))

    @property
    def clock_skew(self) -> timedelta | None:
        """Our clock minus the cloud's (positive: we are ahead)."""
        if self.cloud_time is None or self.local_time is None:
            return None
        return self.local_time - self.cloud_time

    @property
    def clock_ok(self) -> bool:
        skew = self.clock_skew
        return skew is None or abs(skew) < SIGNATURE_SKEW_LIMIT - timedelta(seconds=30)

    @property
    def clock_warning(self) -> bool:
        skew = self.clock_skew
        return skew is not None and abs(skew) >= SKEW_WARNING

    @property
    def ok(self) -> bool:
        """Everything the dashboard needs works (what `cloudcheck` exits 0 on)."""
        return (
            not self.problem
            and self.clock_ok
            and bool(self.probes)
            and all(p.passed for p in self.probes)
        )


@dataclass
class _Context:
    """What earlier probes found that later ones need (ids to show, the cloud's time)."""

    server_id: str = ""
    job_id: str = ""
    group_id: str = ""
    image_id: str = ""
    cloud_time: datetime | None = None
    local_time: datetime | None = None  # our clock when the cloud's Date was read
    refused: list[str] = field(default_factory=list)  # actions of reads answered 403


def run_check(
    client: CloudClient | None = None, *, now: Callable[[], datetime] | None = None
) -> Report:
    """Probe the cloud with the current settings. Never raises for a cloud failure."""
    clock = now or (lambda: datetime.now(UTC))
    try:
        config = client.config if client is not None else from_settings()
    except ImproperlyConfigured as error:  # a region without the service, say
        region = settings.HUAWEICLOUD.get("REGION", "")
        return Report(region=region, endpoints={}, auth_mode="unknown", problem=str(error))
    endpoints = {
        "WorkspaceApp": config.workspaceapp_endpoint,
        gettext_lazy("Workspace (images)"): config.workspace_endpoint,
        "IMS": config.ims_endpoint,
        "IAM": config.iam_endpoint,
    }
    base = {"region": config.region, "endpoints": endpoints}
    try:
        client = client or get_client()
    except ValueError as error:  # no credentials at all
        return Report(**base, auth_mode="none", problem=str(error))
    report = {**base, "auth_mode": client.auth_mode}
    project_probe, project, source = _project(client)
    if project_probe is not None and not project:
        return Report(**report, problem=project_probe.detail, probes=(project_probe,))
    expires = None
    try:
        expires = client.token_expires_at()
    except CloudError as error:
        return Report(
            **report, problem=_("IAM refused the token request: %(error)s") % {"error": error}
        )
    context = _Context()
    reads = _reads(client, project, context, clock)
    probes = [*((project_probe,) if project_probe else ()), *reads]
    probes += _writes(context)
    return Report(
        **report,
        project_id=project,
        project_source=source,
        token_expires_at=expires,
        cloud_time=context.cloud_time,
        local_time=context.local_time,
        probes=tuple(probes),
    )


def _project(client: CloudClient) -> tuple[Probe | None, str, str]:
    """(the probe of how the project was found, when it took a call; its id; its source)."""
    configured = client.config.project_id
    if configured:
        return None, configured, _("configured")
    token = client.auth_mode.startswith("IAM token")
    api, purpose = (
        ("KeystoneCreateUserTokenByPassword", _("sign in as the IAM user"))
        if token
        else ("KeystoneListProjects", _("find the region's project"))
    )
    try:
        project = client.project_id
    except CloudError as error:
        return _failed(api, purpose, error), "", ""
    source = _("from the IAM token's scope") if token else _("found at IAM by the region's name")
    return Probe(api, purpose, ACTIONS.get(api, ""), OK), project, source


def _reads(
    client: CloudClient, project: str, ctx: _Context, clock: Callable[[], datetime]
) -> list[Probe]:
    cfg = client.config
    p = quote(project, safe="")
    app = f"{cfg.workspaceapp_endpoint}/v1/{p}"
    now = datetime.now(UTC)
    window: Query = [
        ("query_begin_time", wire.wire_time(now - timedelta(days=1))),
        ("query_end_time", wire.wire_time(now + timedelta(days=1))),
    ]
    Step = tuple[str, str, Callable[[], tuple[str, Query] | None], Callable | None]
    steps: list[Step] = [
        ("ListServers", _("list servers (inventory, tracking)"),
         lambda: (f"{app}/app-servers", [("limit", "1"), ("offset", "0")]), _remember_server),
        ("ShowServer", _("read one server (sessions, checks)"),
         lambda: (f"{app}/app-servers/{quote(ctx.server_id, safe='')}", [])
         if ctx.server_id else None, None),
        ("ListServerGroups", _("list server groups"),
         lambda: (f"{app}/app-server-groups", [("limit", "1"), ("offset", "0")]), _remember_group),
        ("ShowServerGroup", _("read one group's image"),
         lambda: (f"{app}/app-server-groups/{quote(ctx.group_id, safe='')}", [])
         if ctx.group_id else None, None),
        ("ListImages", _("list IMS images (targets, compatibility)"),
         lambda: (f"{cfg.ims_endpoint}/v2/cloudimages", [("limit", "1")]), None),
        ("ListWorkspaceImages", _("list Workspace images"),
         lambda: (f"{cfg.workspace_endpoint}/v2/{p}/images", [("limit", "1"), ("offset", "0")]),
         None),
        ("ListMarketImages", _("read marketplace images"),
         lambda: (f"{cfg.workspace_endpoint}/v2/{p}/market-images",
                  [("image_ids", ctx.image_id)]) if ctx.image_id else None, None),
        ("ShowJobDetail", _("follow image-change jobs"),
         lambda: (f"{cfg.workspaceapp_endpoint}/v2/{p}/job/{quote(ctx.job_id, safe='')}", [])
         if ctx.job_id else None, None),
        ("ListSubJobs", _("list image-change sub-jobs"),
         lambda: (f"{app}/app-server-sub-jobs",
                  [("job_type", "CHANGE_SERVER_IMAGE"), ("limit", "1"), ("offset", "0")]), None),
        ("ListSessions", _("find users before a change"),
         lambda: (f"{app}/session/list-sessions", [*window, ("limit", "1"), ("offset", "0")]),
         None),
    ]  # fmt: skip
    probes = []
    for api, purpose, target, remember in steps:
        request = target()
        if request is None:
            probes.append(Probe(api, purpose, ACTIONS[api], SKIPPED, _("nothing to read it with")))
            continue
        url, query = request
        try:
            when, body = client.probe(api, url, query)
        except CloudError as error:
            probe = _failed(api, purpose, error)
            if probe.result == DENIED:
                ctx.refused.append(probe.action)
            probes.append(probe)
            continue
        if ctx.cloud_time is None and when is not None:
            ctx.cloud_time, ctx.local_time = when, clock()
        if remember is not None:
            remember(ctx, body)
        probes.append(Probe(api, purpose, ACTIONS[api], OK, http_status=200))
    return probes


def _remember_server(ctx: _Context, body: Mapping[str, Any]) -> None:
    items = [wire.server(i) for i in body.get("items") or () if isinstance(i, Mapping)]
    if items:
        ctx.server_id, ctx.job_id = items[0].id, items[0].job_id
        ctx.image_id = ctx.image_id or items[0].image_id


def _remember_group(ctx: _Context, body: Mapping[str, Any]) -> None:
    items = [wire.server_group(i) for i in body.get("items") or () if isinstance(i, Mapping)]
    if items:
        ctx.group_id = items[0].id
        ctx.image_id = items[0].image_id or ctx.image_id


def _writes(ctx: _Context) -> list[Probe]:
    """The writes are never sent. One is judged denied when the key is refused a read of the
    same resource (`workspace:server:list` refused → `workspace:server:batchChangeImage`
    is too, in any policy that grants by resource); otherwise it is reported not sent."""
    writes = (
        ("BatchChangeServerImage", _("change servers' images")),
        ("BatchChangeServerMaintainMode", _("put servers in maintenance mode")),
        ("LogoffUserSession", _("warn and log users off")),
    )
    probes = []
    for api, purpose in writes:
        action = ACTIONS[api]
        resource = action.rsplit(":", 1)[0]
        refused = [a for a in ctx.refused if a.rsplit(":", 1)[0] == resource]
        if refused:
            detail = _("not sent; the key is refused %(refused)s, so it lacks %(action)s too") % {
                "refused": refused[0],
                "action": action,
            }
            probes.append(Probe(api, purpose, action, DENIED, detail))
        else:
            detail = _("not sent: no read proves a write is allowed; the key needs %(action)s") % {
                "action": action
            }
            probes.append(Probe(api, purpose, action, NOT_SENT, detail))
    return probes


def _failed(api: str, purpose: str, error: CloudError) -> Probe:
    status = error.status
    action = ACTIONS.get(api, "")
    if status is None and error.outcome != Outcome.REJECTED:  # no answer came back
        return Probe(api, purpose, action, UNREACHABLE, error.message)
    if status == 403:
        named = _POLICY.search(error.message)
        missing = named.group(1) if named else action
        detail = _("the key lacks %(action)s") % {"action": missing} + (
            f" ({error.error_code})" if error.error_code else ""
        )
        return Probe(api, purpose, missing, DENIED, detail, status)
    if status == 404 and error.error_code in _NOT_PUBLISHED:
        return Probe(api, purpose, action, NOT_PUBLISHED, str(error), status)
    if status == 401:
        return Probe(api, purpose, action, UNAUTHORIZED, str(error), status)
    return Probe(api, purpose, action, FAILED, str(error), status)
