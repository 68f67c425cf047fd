"""The simulator as a WSGI app: routing, the gateway (faults, auth) and request recording.

Every response carries X-Request-Id. Cloud paths pass through the fault knobs and the
authentication check in that order, as a gateway would; /_sim/ paths skip both. With several
projects, a request is answered (faults, log, data) by the project its path names, else the
one its credentials name; a project they cannot use is refused 403 after authentication.
A dropped connection is signalled to the server through the environ key `DROP_KEY`.
"""

import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from dashboard.simulator import (
    codes,
    control,
    faults,
    iam,
    images,
    permissions,
    render,
    workspaceapp,
)
from dashboard.simulator.auth import Denied, authenticate
from dashboard.simulator.http import ApiError, Request, Response
from dashboard.simulator.state import SimCloud, SimState, iso

DROP_KEY = "simulator.drop"
P = r"/(?P<project_id>[^/]+)"
ID = r"(?P<id>[^/]+)"
Handler = Callable[[Request], Response]
StartResponse = Callable[..., Any]

REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    authenticated: bool = True


def _route(method: str, pattern: str, handler: Handler, authenticated: bool = True) -> Route:
    return Route(method, re.compile(pattern), handler, authenticated)


ROUTES = (
    _route("GET", rf"/v1{P}/app-servers", workspaceapp.list_servers),
    _route("POST", rf"/v1{P}/app-servers/actions/batch-change-image",
           workspaceapp.batch_change_image),
    _route("PATCH", rf"/v1{P}/app-servers/actions/batch-maint", workspaceapp.batch_maint),
    _route("GET", rf"/v1{P}/app-servers/{ID}", workspaceapp.show_server),
    _route("POST", rf"/v1{P}/app-servers/{ID}/actions/change-image", workspaceapp.change_image),
    _route("GET", rf"/v1{P}/app-server-groups", workspaceapp.list_server_groups),
    _route("GET", rf"/v1{P}/app-server-groups/{ID}", workspaceapp.show_server_group),
    _route("GET", rf"/v2{P}/job/(?P<job_id>[^/]+)", workspaceapp.show_job_detail),
    _route("GET", rf"/v1{P}/job/(?P<job_id>[^/]+)", workspaceapp.show_job),
    _route("GET", rf"/v1{P}/app-server-sub-jobs/actions/count", workspaceapp.count_sub_jobs),
    _route("GET", rf"/v1{P}/app-server-sub-jobs", workspaceapp.list_sub_jobs),
    _route("GET", rf"/v1{P}/session/list-sessions", workspaceapp.list_sessions),
    _route("POST", rf"/v1{P}/session/logoff", workspaceapp.logoff_user_session),
    _route("GET", r"/v2/cloudimages", images.list_ims_images),
    _route("GET", r"/v2/images/(?P<image_id>[^/]+)", images.glance_show_image),
    _route("GET", rf"/v2{P}/images", images.list_workspace_images),
    _route("GET", rf"/v2{P}/market-images", images.list_market_images),
    _route("POST", r"/v3/auth/tokens", iam.create_token, authenticated=False),
    _route("GET", r"/v3/auth/tokens", iam.validate_token),
    _route("GET", r"/v3/auth/projects", iam.list_auth_projects),
    _route("GET", r"/v3/projects", iam.list_projects),
)  # fmt: skip


# The API name of each handler, as the knobs (`denied_apis`, `unpublished_apis`) name them.
API_NAMES = {
    workspaceapp.list_servers: "ListServers",
    workspaceapp.batch_change_image: "BatchChangeServerImage",
    workspaceapp.batch_maint: "BatchChangeServerMaintainMode",
    workspaceapp.show_server: "ShowServer",
    workspaceapp.change_image: "ChangeServerImage",
    workspaceapp.list_server_groups: "ListServerGroups",
    workspaceapp.show_server_group: "ShowServerGroup",
    workspaceapp.show_job_detail: "ShowJobDetail",
    workspaceapp.show_job: "ShowJob",
    workspaceapp.count_sub_jobs: "CountSubJobs",
    workspaceapp.list_sub_jobs: "ListSubJobs",
    workspaceapp.list_sessions: "ListSessions",
    workspaceapp.logoff_user_session: "LogoffUserSession",
    images.list_ims_images: "ListImages",
    images.glance_show_image: "GlanceShowImage",
    images.list_workspace_images: "ListWorkspaceImages",
    images.list_market_images: "ListMarketImages",
    iam.create_token: "KeystoneCreateUserTokenByPassword",
    iam.validate_token: "KeystoneValidateToken",
    iam.list_auth_projects: "KeystoneListAuthProjects",
    iam.list_projects: "KeystoneListProjects",
}


def match(method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
    """(route, path args, path known under another method)."""
    known = False
    for route in ROUTES:
        found = route.pattern.fullmatch(path)
        if found is None:
            continue
        if route.method == method:
            return route, found.groupdict(), True
        known = True
    return None, {}, known


class SimulatorApp:
    """WSGI callable over one SimState. `stopping` cuts latency and stalls short on shutdown;
    `on_change` is called after each request that may have changed the state (every cloud
    request is recorded in the log; control reads change nothing)."""

    def __init__(
        self,
        state: SimState,
        stopping: threading.Event | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.state = state
        self.stopping = stopping or threading.Event()
        self.on_change = on_change or (lambda: None)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request_id = uuid.uuid4().hex
        path = environ.get("PATH_INFO", "/")
        method = environ["REQUEST_METHOD"]
        if path.startswith(control.PREFIX):
            query = environ.get("QUERY_STRING", "")
            response = control.handle(self.state, method, path, _read_body(environ), query)
            if method != "GET":
                self.on_change()
            return _send(start_response, response, request_id)
        try:
            return self._cloud(environ, start_response, method, path, request_id)
        finally:
            self.on_change()

    def _cloud(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        method: str,
        path: str,
        request_id: str,
    ) -> Iterable[bytes]:
        query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        headers = _headers(environ)
        route, args, known = match(method, path)
        body = _read_body(environ)
        project = self._project(route, args, query, headers, body)
        with project.lock:
            knobs = project.faults
            latency, stall = knobs.latency_ms / 1000, knobs.stall_seconds
            retry_after = None if knobs.omit_retry_after else knobs.retry_after_seconds
            outcome = faults.decide(knobs, project.fault_rng)
        entry: dict[str, Any] = {"method": method, "path": path, "query": query,
                                 "request_id": request_id, "time": iso(datetime.now(UTC)),
                                 "fault": outcome}  # fmt: skip
        if outcome == faults.DROP_BEFORE:
            # Closed before anything is processed (the body the service never saw is not kept).
            entry.update(body=None, status=None)
            project.record(entry)
            environ[DROP_KEY] = True
            return []
        entry["body"] = _json_or_text(body)
        if latency:
            self.stopping.wait(latency)
        if stall:
            entry["stalled"] = stall
            self.stopping.wait(stall)
        response = self._gateway(project, outcome, retry_after, request_id) or self._dispatch(
            project, route, args, known, method, path, query, headers, body, request_id
        )
        entry["status"] = response.status
        project.record(entry)
        if outcome == faults.DROP_AFTER:
            environ[DROP_KEY] = True  # processed, but the answer never leaves
            return []
        return _send(start_response, response, request_id)

    def _project(
        self,
        route: Route | None,
        args: dict[str, str],
        query: list[tuple[str, str]],
        headers: dict[str, str],
        body: bytes,
    ) -> SimState:
        """The project whose faults, log and data answer a request: the one its path names,
        else the one an IAM request names, else the credentials' (X-Project-Id, the token's
        scope, the key's first project), else the default. An unknown one: the default."""
        cloud = self.state.cloud
        if len(cloud.projects) == 1:
            return cloud.default
        if "project_id" in args:
            return cloud.project(args["project_id"]) or cloud.default
        named = iam.project_named(cloud, route.handler, query, headers, body) if route else None
        return (
            named
            or cloud.project(headers.get("x-project-id"))
            or cloud.token_project(headers.get("x-auth-token", ""))
            or _key_project(cloud, headers.get("authorization", ""))
            or cloud.default
        )

    def _gateway(
        self, project: SimState, outcome: str | None, retry_after: int | None, request_id: str
    ) -> Response | None:
        if outcome == faults.THROTTLE:
            body = codes.gateway(codes.GW_THROTTLED, "The throttling threshold has been reached: "
                                 "policy user over ratelimit", request_id)  # fmt: skip
            headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
            return Response(429, body, headers)
        if outcome == faults.ERROR:
            with project.lock:
                status = 503 if project.fault_rng.random() < 0.5 else 500
            code = codes.UNAVAILABLE if status == 503 else codes.INTERNAL
            return Response(status, codes.wks(code))
        return None

    def _dispatch(
        self,
        project: SimState,
        route: Route | None,
        args: dict[str, str],
        known: bool,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: dict[str, str],
        body: bytes,
        request_id: str,
    ) -> Response:
        api = API_NAMES.get(route.handler, "") if route else ""
        with project.lock:
            unpublished = api in project.faults.unpublished_apis
            refused = api in project.faults.denied_apis
        if route is None or unpublished:
            if known and not unpublished:
                return Response(405, codes.wks(codes.METHOD_NOT_ALLOWED))
            message = "The API does not exist or has not been published in the environment"
            return Response(404, codes.gateway(codes.GW_NOT_FOUND, message, request_id))
        caller = None
        if route.authenticated:
            found = authenticate(self.state, method, path, query, headers, body)
            if isinstance(found, Denied):
                return Response(401, codes.gateway(found.code, found.message, request_id))
            caller = found
        if refused:  # the key's policy does not allow this API's action
            return Response(403, codes.wks(codes.FORBIDDEN, permissions.denial_message(api)))
        # A project the credentials cannot use (unknown, or another key's / token's): 403 with
        # the generic WKS "no permission" code, in the path or in X-Project-Id alike.
        wanted = args.pop("project_id", None) or headers.get("x-project-id")
        if caller is not None and wanted and wanted not in caller.projects:
            return Response(403, codes.wks(codes.FORBIDDEN))
        if body and not headers.get("content-type", "").startswith("application/json"):
            return Response(415, codes.wks(codes.UNSUPPORTED_MEDIA))
        req = Request(method, path, query, headers, body, project, request_id, args, caller=caller)
        try:
            return route.handler(req)
        except ApiError as error:
            return Response(error.status, error.body, error.headers)


_ACCESS = re.compile(r"Access=([^,\s]+)")


def _key_project(cloud: SimCloud, authorization: str) -> SimState | None:
    """The first project of the access key a signature names (not yet verified)."""
    found = _ACCESS.search(authorization)
    key = cloud.keys.get(found.group(1)) if found else None
    return cloud.project(key.projects[0]) if key else None


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    """Request headers with lower-cased, dashed names, as the signature check wants them."""
    found = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            found[key.replace("_", "-").lower()] = environ[key]
    return found


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""


def _json_or_text(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body.decode("utf-8", "replace")


def _send(start_response: StartResponse, response: Response, request_id: str) -> list[bytes]:
    body = response.body
    if body is None:
        payload = b""
    elif isinstance(body, render.JSONText):  # a listing encoded by its handler
        payload = body.text.encode()
    else:
        payload = render.ENCODER.encode(body).encode()  # what json.dumps writes
    headers = [
        ("Content-Type", "application/json;charset=UTF-8"),
        ("Content-Length", str(len(payload))),
        ("X-Request-Id", request_id),
        *response.headers.items(),
    ]
    reason = REASONS.get(response.status, "Unknown")
    start_response(f"{response.status} {reason}", headers)
    return [payload]
