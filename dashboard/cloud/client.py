"""The cloud client: one Session, signed or token-authenticated calls, paging, retries, errors.

Reads (and the idempotent maintenance PATCH and session logoff) retry on 429, 5xx and
transport failures with capped exponential backoff and full jitter inside
`config.retry_deadline`. The image-change POST is never re-sent: its failures are classified
by `Outcome` for the caller to reconcile.
"""

import collections
import json
import logging
import math
import random as _random
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests
import requests.adapters
import urllib3.exceptions

from dashboard.cloud import limits, projects, wire
from dashboard.cloud.auth import USER_AGENT, AkSkAuth, Auth, IssuedToken, TokenAuth
from dashboard.cloud.config import CloudConfig, for_project, from_settings
from dashboard.cloud.errors import CloudError, Outcome
from dashboard.cloud.projects import ProjectConfig
from dashboard.cloud.records import (
    ChangeResult,
    ChangeTarget,
    Image,
    Job,
    Server,
    ServerGroup,
    Session,
    SessionState,
    SubJob,
)
from dashboard.cloud.signing import canonical_query

log = logging.getLogger("dashboard.cloud")

PAGE_SIZE = 100  # ListServers / ListServerGroups / ListSubJobs / Workspace ListImages maximum
IMS_PAGE_SIZE = 500
MARKET_IDS_PER_CALL = 100
CHANGE_IMAGE_MAX_SERVERS = 50
MAINTAIN_MAX_SERVERS = 20
# Retry pacing (backoff, floor, attempts) lives in limits.py beside the limiter and breaker.
BACKOFF_BASE = limits.BACKOFF_BASE
BACKOFF_CAP = limits.BACKOFF_CAP
RETRY_AFTER_CAP = limits.RETRY_AFTER_CAP
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
LOGOFF_MAX_SESSIONS = 999
LOGOFF_MAX_DELAY = 999_999  # seconds
# LogoffUserSession's field limits, as its definition gives them.
MESSAGE_TYPES = range(5)  # 0 info, 1 warn, 2 serious; 3 and 4 allowed, their meaning unpublished
LOGOFF_TEXT_MAX = 255  # message and title
LOGOFF_TRANSACTION_MAX = 31
SESSION_ID_MAX = 64
# ListSessions requires a window on the session start time: a live session older than the
# lookback is not listed; the lookahead absorbs clock skew between us and the cloud.
SESSION_LOOKBACK = timedelta(days=30)
SESSION_LOOKAHEAD = timedelta(days=1)
SESSION_STATES = (*SessionState.LIVE, SessionState.SIGNED_OUT, SessionState.INIT_FAIL)
SESSIONS_BY_SERVER_MAX = 10  # up to this many servers: one lookup per server, else the fleet

SERVER_FILTERS = frozenset(
    {
        "server_group_id",
        "server_name",
        "machine_name",
        "ip_addr",
        "server_id",
        "maintain_status",
        "scaling_auto_create",
    }
)
GROUP_FILTERS = frozenset(
    {
        "server_group_name",
        "server_group_id",
        "app_type",
        "tags",
        "enterprise_project_id",
        "is_secondary_server_group",
    }
)
# Our names → IMS query names; image_type and os_type are translated or renamed.
IMS_FILTERS = {
    "image_type": "__imagetype",
    "os_type": "__os_type",
    "platform": "__platform",
    "architecture": "architecture",
    "image_id": "id",
    "name": "name",
    "status": "status",
    "visibility": "visibility",
    "enterprise_project_id": "enterprise_project_id",
    "min_disk": "min_disk",
}
WORKSPACE_IMAGE_FILTERS = frozenset(
    {"os_type", "image_type", "platform", "architecture", "package_type", "image_id"}
)

Query = list[tuple[str, str]]


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: Mapping[str, str]
    body: Any
    request_id: str


class CloudClient:
    """Typed access to WorkspaceApp, Workspace, IMS and IAM. Safe to share between threads."""

    def __init__(
        self,
        config: CloudConfig,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
        guard: limits.Guard | None = None,
    ) -> None:
        self.config = config
        self._guard = guard or limits.NO_GUARD  # pacing and circuit breaker (limits.py)
        self._session = session or _pooled_session()
        self._sleep = sleep
        self._monotonic = monotonic
        self._random = random
        self._lock = threading.Lock()
        self.calls = 0
        self.calls_by_api: collections.Counter[str] = collections.Counter()
        self._auth = self._make_auth(config)

    def __repr__(self) -> str:
        return f"CloudClient({self.config.workspaceapp_endpoint!r}, auth={self._auth!r})"

    def _make_auth(self, config: CloudConfig) -> Auth:
        if config.uses_aksk:
            return AkSkAuth(config.ak, config.sk, config.project_id, config.security_token)
        if config.iam_user and config.iam_password:
            return TokenAuth(self._issue_token, project_id=config.project_id)
        raise ValueError("no cloud credentials: set an AK/SK pair or an IAM user and password")

    # --- servers ------------------------------------------------------------------------

    # ListServers
    def list_servers_page(
        self, *, offset: int = 0, limit: int = PAGE_SIZE, **filters: object
    ) -> tuple[int, list[Server]]:
        """(total matching, one page of servers)."""
        query = [*_filters(filters, SERVER_FILTERS), ("offset", str(offset)), ("limit", str(limit))]
        url = self._workspaceapp("app-servers")
        parse = wire.servers_page  # straight into records: a sync reads hundreds of these
        return self._call("ListServers", "GET", url, query, None, idempotent=True, parse=parse).body

    def iter_servers(self, **filters: object) -> Iterator[Server]:
        """Every matching server, fetched 100 at a time."""
        yield from self._offset_pages(
            lambda offset: self.list_servers_page(offset=offset, **filters)
        )

    def list_servers(self, **filters: object) -> list[Server]:
        return list(self.iter_servers(**filters))

    # ShowServer
    def show_server(self, server_id: str) -> Server:
        body = self._get("ShowServer", self._workspaceapp(f"app-servers/{_seg(server_id)}"))
        return wire.server(body)

    # --- server groups ------------------------------------------------------------------

    # ListServerGroups
    def _list_server_groups_page(self, offset: int, **filters: object) -> tuple[int, list]:
        query = [
            *_filters(filters, GROUP_FILTERS),
            ("offset", str(offset)),
            ("limit", str(PAGE_SIZE)),
        ]
        body = self._get("ListServerGroups", self._workspaceapp("app-server-groups"), query)
        return _int(body.get("count")), [wire.server_group(item) for item in _items(body, "items")]

    def list_server_groups(self, **filters: object) -> list[ServerGroup]:
        pages = self._offset_pages(lambda offset: self._list_server_groups_page(offset, **filters))
        return list(pages)

    # ShowServerGroup
    def show_server_group(self, group_id: str) -> ServerGroup:
        path = self._workspaceapp(f"app-server-groups/{_seg(group_id)}")
        return wire.server_group(self._get("ShowServerGroup", path))

    # --- images -------------------------------------------------------------------------

    # IMS ListImages (marker paging, no total)
    def list_images(self, **filters: object) -> list[Image]:
        query = _ims_filters(filters)
        url = f"{self.config.ims_endpoint}/v2/cloudimages"
        images: list[Image] = []
        marker = ""
        while True:
            page_query = [*query, ("limit", str(IMS_PAGE_SIZE))]
            if marker:
                page_query.append(("marker", marker))
            page = _items(self._get("ListImages", url, page_query), "images")
            images.extend(wire.ims_image(item) for item in page)
            if len(page) < IMS_PAGE_SIZE:
                return images
            marker = str(page[-1].get("id", ""))

    # Workspace ListImages (offset paging, total_count)
    def list_workspace_images(self, **filters: object) -> list[Image]:
        translated = dict(filters)
        if "image_type" in translated:
            wanted = str(translated["image_type"])
            if wanted not in wire.TYPE_TO_WORKSPACE:
                raise ValueError(f"Workspace ListImages cannot filter by {wanted!r}")
            translated["image_type"] = wire.TYPE_TO_WORKSPACE[wanted]
        base = _filters(translated, WORKSPACE_IMAGE_FILTERS)
        url = f"{self.config.workspace_endpoint}/v2/{quote(self._project_id(), safe='')}/images"

        def page(offset: int) -> tuple[int, list[Image]]:
            query = [*base, ("offset", str(offset)), ("limit", str(PAGE_SIZE))]
            body = self._get("ListWorkspaceImages", url, query)
            images = [wire.workspace_image(item) for item in _items(body, "images")]
            return _int(body.get("total_count")), images

        return list(self._offset_pages(page))

    # Workspace ListMarketImages (≤100 ids per call)
    def list_market_images(self, image_ids: Sequence[str]) -> list[Image]:
        url = f"{self.config.workspace_endpoint}/v2/{quote(self._project_id(), safe='')}"
        url += "/market-images"
        images: list[Image] = []
        for chunk in _chunks(list(dict.fromkeys(image_ids)), MARKET_IDS_PER_CALL):
            body = self._get("ListMarketImages", url, [("image_ids", i) for i in chunk])
            images.extend(wire.market_image(item) for item in _items(body, "images"))
        return images

    # --- changes ------------------------------------------------------------------------

    # BatchChangeServerImage — never re-sent; see the module docstring
    def batch_change_image(self, server_ids: Sequence[str], target: ChangeTarget) -> ChangeResult:
        """Per-server job ids or errors. Raises CloudError whose `outcome` says what happened."""
        ids = list(server_ids)
        if not ids:
            raise ValueError("batch-change-image needs at least one server id")
        if len(ids) > CHANGE_IMAGE_MAX_SERVERS:
            raise ValueError(f"batch-change-image takes at most {CHANGE_IMAGE_MAX_SERVERS} servers")
        body = wire.change_image_body(ids, target)
        url = self._workspaceapp("app-servers/actions/batch-change-image")
        reply = self._call("BatchChangeServerImage", "POST", url, [], body, idempotent=False)
        items = tuple(wire.change_item(item) for item in _items(reply.body, "items"))
        return ChangeResult(items=items, request_id=reply.request_id)

    # BatchChangeServerMaintainMode — idempotent, so retried like a read
    def batch_change_maintain(self, server_ids: Sequence[str], maintain: bool) -> None:
        url = self._workspaceapp("app-servers/actions/batch-maint")
        for chunk in _chunks(list(dict.fromkeys(server_ids)), MAINTAIN_MAX_SERVERS):
            body = {"items": chunk, "maintain_status": maintain}
            self._call("BatchChangeServerMaintainMode", "PATCH", url, [], body, idempotent=True)

    # --- jobs ---------------------------------------------------------------------------

    # ShowJobDetail (v2)
    def show_job(self, job_id: str) -> Job:
        url = f"{self.config.workspaceapp_endpoint}/v2/{quote(self._project_id(), safe='')}"
        return wire.job(self._get("ShowJobDetail", f"{url}/job/{_seg(job_id)}"))

    # ListSubJobs
    def list_sub_jobs(
        self,
        job_type: str = "CHANGE_SERVER_IMAGE",
        *,
        job_id: str | None = None,
        status: str | None = None,
    ) -> list[SubJob]:
        base: Query = [("job_type", job_type)]
        if job_id:
            base.append(("job_id", job_id))
        if status:
            base.append(("status", status))
        url = self._workspaceapp("app-server-sub-jobs")

        def page(offset: int) -> tuple[int, list[SubJob]]:
            query = [*base, ("offset", str(offset)), ("limit", str(PAGE_SIZE))]
            body = self._get("ListSubJobs", url, query)
            return _int(body.get("count")), [wire.sub_job(item) for item in _items(body, "items")]

        return list(self._offset_pages(page))

    # --- user sessions ------------------------------------------------------------------

    # ListSessions (GET /v1/{project_id}/session/list-sessions), every page at limit=100
    def list_sessions(
        self,
        server_ids: Sequence[str] | None = None,
        *,
        states: Sequence[str] = SessionState.LIVE,
    ) -> list[Session]:
        """Sessions in `states` (default: live) on `server_ids`, or on every server.

        ListSessions filters by `machine_name`, not by server id, and its items carry no
        server id: the client resolves servers to machine names (ShowServer each, or the
        whole server list for more than SESSIONS_BY_SERVER_MAX servers), asks per machine or
        pages through everything, and keeps exact matches only. A server that no longer
        exists has no sessions.
        """
        unknown = set(states) - set(SESSION_STATES)
        if unknown:
            raise ValueError(f"unknown session state(s): {', '.join(sorted(unknown))}")
        now = _utcnow()
        base: Query = [
            ("query_begin_time", wire.wire_time(now - SESSION_LOOKBACK)),
            ("query_end_time", wire.wire_time(now + SESSION_LOOKAHEAD)),
        ]
        if states:
            base.append(("session_state", ",".join(states)))
        if server_ids is not None:
            ids = list(dict.fromkeys(server_ids))
            if not ids:
                return []
            if len(ids) <= SESSIONS_BY_SERVER_MAX:
                sessions: list[Session] = []
                for server_id in ids:
                    sessions.extend(self._sessions_on(server_id, base))
                return sessions
        servers = list(self.iter_servers())
        if server_ids is not None:
            wanted = set(server_ids)
            servers = [s for s in servers if s.id in wanted]
        by_machine = {s.machine_name.lower(): s.id for s in servers if s.machine_name}
        by_ip = {ip: s.id for s in servers if not s.machine_name for ip in s.ip_addresses}
        found: list[Session] = []
        for item in self._session_pages(base):
            server_id = by_machine.get(item.machine_name.lower()) or by_ip.get(item.vm_ip, "")
            if server_id or server_ids is None:
                found.append(replace(item, server_id=server_id))
        return found

    def _sessions_on(self, server_id: str, base: Query) -> list[Session]:
        try:
            server = self.show_server(server_id)
        except CloudError as error:
            if error.not_found:  # gone: a 404, or the 400 some APIs answer instead
                return []
            raise
        if server.machine_name:
            query = [*base, ("machine_name", server.machine_name)]
            name = server.machine_name.lower()
            pages = self._session_pages(query)
            return [
                replace(s, server_id=server.id) for s in pages if s.machine_name.lower() == name
            ]
        found: list[Session] = []
        for ip in server.ip_addresses:  # no machine name (yet): match the server's address
            found.extend(
                replace(s, server_id=server.id)
                for s in self._session_pages([*base, ("vm_ip", ip)])
                if s.vm_ip == ip
            )
        return found

    def _session_pages(self, base: Query) -> Iterator[Session]:
        url = self._workspaceapp("session/list-sessions")

        def page(offset: int) -> tuple[int, list[Session]]:
            query = [*base, ("offset", str(offset)), ("limit", str(PAGE_SIZE))]
            body = self._get("ListSessions", url, query)
            return _int(body.get("count")), [wire.session(item) for item in _items(body, "items")]

        return self._offset_pages(page)

    # LogoffUserSession (POST /v1/{project_id}/session/logoff) — idempotent, retried
    def logoff_sessions(
        self,
        session_ids: Sequence[str],
        *,
        delay_seconds: int,
        message: str = "",
        title: str = "",
        message_type: int = 1,
        transaction_id: str = "",
    ) -> None:
        """Show `title`/`message` in each session, then log it off after `delay_seconds`.

        This is also how users are warned: the API has no message-only call. Logging a
        session off twice is harmless, so an ambiguous failure is retried like a read (the
        user may see the message twice). Up to 999 sessions per call.
        """
        ids = list(dict.fromkeys(session_ids))
        _check_logoff(ids, delay_seconds, message_type, message, title, transaction_id)
        url = self._workspaceapp("session/logoff")
        for chunk in _chunks(ids, LOGOFF_MAX_SESSIONS):
            body = wire.logoff_body(
                chunk,
                delay_time=delay_seconds,
                message_type=message_type,
                message=message,
                title=title,
                transaction_id=transaction_id,
            )
            self._call("LogoffUserSession", "POST", url, [], body, idempotent=True)

    # --- IAM ----------------------------------------------------------------------------

    # KeystoneCreateUserTokenByPassword
    def _issue_token(self) -> IssuedToken:
        cfg = self.config
        scope = {"id": cfg.project_id} if cfg.project_id else {"name": cfg.region}
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": cfg.iam_user,
                            "password": cfg.iam_password,
                            "domain": {"name": cfg.iam_domain or cfg.iam_user},
                        }
                    },
                },
                "scope": {"project": scope},
            }
        }
        url = f"{cfg.iam_endpoint}/v3/auth/tokens"
        reply = self._call(
            "KeystoneCreateUserTokenByPassword",
            "POST",
            url,
            [("nocatalog", "true")],
            body,
            idempotent=True,
            authenticate=False,
        )
        token = reply.headers.get("X-Subject-Token", "")
        expires_at, project_id = wire.token_info(reply.body)
        if reply.status != 201 or not token or expires_at is None:
            raise CloudError(
                reply.status,
                message="IAM answered without a usable token",
                request_id=reply.request_id,
                outcome=Outcome.REJECTED,
            )
        return IssuedToken(token, expires_at, project_id)

    # KeystoneListProjects — how the SDK finds the project of a region for AK/SK credentials
    def _find_project(self) -> str:
        """The id of the project named after the region, as the SDK finds it (signed
        `GET {iam}/v3/projects?name=<region>`). Refuses when there is none or several."""
        cfg = self.config
        key = (cfg.iam_endpoint, cfg.ak, cfg.region)
        with _projects_lock:
            if key in _projects:
                return _projects[key]
        variable = "HUAWEICLOUD_SDK_PROJECT_ID (or project_id in CLOUD_PROJECTS_FILE)"
        try:
            body = self._get("KeystoneListProjects", f"{cfg.iam_endpoint}/v3/projects",
                             [("name", cfg.region)])  # fmt: skip
        except CloudError as error:
            error.message = (
                f"finding the project of region {cfg.region!r} at IAM failed ({error.message}); "
                f"set {variable} to skip the lookup"
            )
            raise
        ids = [str(p.get("id", "")) for p in _items(body, "projects") if p.get("id")]
        if len(ids) != 1:
            found = "no project" if not ids else f"{len(ids)} projects ({', '.join(ids)})"
            raise CloudError(
                None,
                error_code="PROJECT_LOOKUP",
                message=f"IAM has {found} named {cfg.region!r} for these keys; set {variable}",
                outcome=Outcome.REJECTED,
            )
        with _projects_lock:
            _projects[key] = ids[0]
        log.info("cloud project of region %s found at IAM", cfg.region)
        return ids[0]

    # --- the connection check (check.py) ------------------------------------------------

    @property
    def auth_mode(self) -> str:
        """How requests are authenticated, in words (no secret)."""
        if isinstance(self._auth, TokenAuth):
            return "IAM token (user and password)"
        if self.config.security_token:
            return "temporary keys (AK/SK and security token)"
        return "AK/SK"

    @property
    def project_id(self) -> str:
        """The project in paths: configured, found at IAM (AK/SK) or the token's (IAM user)."""
        return self._project_id()

    def token_expires_at(self) -> datetime | None:
        """When the IAM token in use expires (fetching one if needed); None with keys."""
        if isinstance(self._auth, TokenAuth):
            return self._auth.expires_at()
        return None

    def probe(self, api: str, url: str, query: Query) -> tuple[datetime | None, Mapping]:
        """One read, sent once (no retry, no pacing), for the connection check: the cloud's
        `Date` header and the JSON body. Raises CloudError as any call does."""
        try:
            reply = self._attempt(api, "GET", url, query, None, True)
        except _Unauthorized as refused:
            raise refused.error from None
        body = reply.body if isinstance(reply.body, Mapping) else {}
        try:
            when = parsedate_to_datetime(reply.headers.get("Date", ""))
        except (TypeError, ValueError):
            return None, body
        return (when if when.tzinfo else when.replace(tzinfo=UTC)), body

    # --- plumbing -----------------------------------------------------------------------

    def _project_id(self) -> str:
        project = self.config.project_id or self._auth.project_id
        if not project and isinstance(self._auth, AkSkAuth):
            project = self._find_project()
            self._auth.use_project(project)
        return project

    def _workspaceapp(self, rest: str) -> str:
        project = quote(self._project_id(), safe="")
        return f"{self.config.workspaceapp_endpoint}/v1/{project}/{rest}"

    def _offset_pages(self, fetch: Callable[[int], tuple[int, list]]) -> Iterator[Any]:
        # Items can shift between pages while the fleet changes; skip ids already yielded.
        seen: set[str] = set()
        offset = 0
        while True:
            total, page = fetch(offset)
            for item in page:
                if item.id not in seen:
                    seen.add(item.id)
                    yield item
            offset += len(page)
            if not page or offset >= total:
                return

    def _get(self, api: str, url: str, query: Query | None = None) -> Mapping[str, Any]:
        reply = self._call(api, "GET", url, query or [], None, idempotent=True)
        return reply.body if isinstance(reply.body, Mapping) else {}

    def _call(
        self,
        api: str,
        method: str,
        url: str,
        query: Query,
        body: object,
        *,
        idempotent: bool,
        authenticate: bool = True,
        parse: Callable[[bytes], Any] | None = None,
    ) -> _Reply:
        """Send with retries (idempotent calls only) and one re-authentication after a 401."""
        deadline = self._monotonic() + self.config.retry_deadline
        attempt = 0
        reauthenticated = False
        while True:
            try:
                return self._guarded(api, method, url, query, body, authenticate, parse)
            except _Unauthorized as refused:
                # A 401 proves the gateway refused the request, so re-sending is safe even
                # for the image change; token credentials get exactly one fresh try.
                if reauthenticated or not self._auth.after_unauthorized(refused.sent):
                    raise refused.error from None
                reauthenticated = True
            except CloudError as error:
                if not (idempotent and error.retryable):
                    raise
                delay = self._delay(attempt, error.retry_after)
                if delay is None or self._monotonic() + delay > deadline:
                    raise
                log.info("cloud %s retry %d in %.2fs after %s", api, attempt + 1, delay, error)
                self._sleep(delay)
                attempt += 1

    def _delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before the next attempt; None after the last attempt or when the
        cloud asks for too long (limits.retry_delay: a floor even for `Retry-After: 0`)."""
        return limits.retry_delay(attempt, retry_after, self._random)

    def _guarded(self, api: str, *args: Any) -> _Reply:
        """One attempt, paced by the shared rate limiter and refused while the breaker is open."""
        self._guard.before(api)
        try:
            reply = self._attempt(api, *args)
        except _Unauthorized as refused:
            self._guard.after(refused.error)
            raise
        except CloudError as error:
            self._guard.after(error)
            raise
        self._guard.after(None)
        return reply

    def _attempt(
        self,
        api: str,
        method: str,
        url: str,
        query: Query,
        body: object,
        authenticate: bool,
        parse: Callable[[bytes], Any] | None = None,
    ) -> _Reply:
        if "//" in urlsplit(url).path:
            # An empty segment (say, a missing project id) reaches the wrong API or none.
            raise AssertionError(f"{api}: empty path segment in {urlsplit(url).path!r}")
        rendered = canonical_query(query)
        full_url = f"{url}?{rendered}" if rendered else url
        data = b"" if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if authenticate:
            headers = self._auth.headers(method, full_url, headers, data)
        self._count(api)
        try:
            response = self._session.request(
                method,
                full_url,
                data=data or None,
                headers=headers,
                timeout=(self.config.connect_timeout, self.config.read_timeout),
                verify=self.config.verify_tls,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise _transport_error(exc) from None
        request_id = response.headers.get("X-Request-Id", "")
        log.debug("cloud %s %s → %d (request %s)", api, method, response.status_code, request_id)
        if response.status_code >= 400:
            error = self._error(response, request_id)
            if response.status_code == 401 and authenticate:
                raise _Unauthorized(error, headers)
            raise error
        return _Reply(response.status_code, response.headers, _json(response, parse), request_id)

    def _count(self, api: str) -> None:
        with self._lock:
            self.calls += 1
            self.calls_by_api[api] += 1

    def _error(self, response: requests.Response, request_id: str) -> CloudError:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        code, message, body_request_id = wire.error_fields(payload)
        status = response.status_code
        if status == 429:
            outcome = Outcome.THROTTLED
        elif status >= 500:
            outcome = Outcome.UNKNOWN
        else:
            outcome = Outcome.REJECTED
        return CloudError(
            status,
            error_code=code or str(status),  # as the SDK: the status stands in for a code
            message=self._scrub(message or response.reason or "error"),
            request_id=request_id or body_request_id,
            retryable=status in RETRYABLE_STATUSES,
            outcome=outcome,
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )

    def _scrub(self, text: str) -> str:
        """Remove any credential a gateway might echo back."""
        cfg = self.config
        for secret in (cfg.sk, cfg.security_token, cfg.iam_password):
            if secret and secret in text:
                text = text.replace(secret, "***")
        token = self._auth.cached_token() if isinstance(self._auth, TokenAuth) else ""
        return text.replace(token, "***") if token else text


class _Unauthorized(Exception):
    def __init__(self, error: CloudError, sent: Mapping[str, str]) -> None:
        super().__init__(str(error))
        self.error = error
        self.sent = sent


def _transport_error(exc: requests.RequestException) -> CloudError:
    """Classify a failure with no HTTP response: was anything sent?"""
    if _never_connected(exc):
        return CloudError(
            None, message=f"could not connect: {type(exc).__name__}", retryable=True,
            outcome=Outcome.NOT_SENT,
        )  # fmt: skip
    if isinstance(exc, requests.Timeout):
        kind = "read timed out"
    elif isinstance(exc, requests.ConnectionError):
        kind = "connection lost"
    else:
        kind = type(exc).__name__
    return CloudError(None, message=kind, retryable=True, outcome=Outcome.UNKNOWN)


def _never_connected(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError):
        return False
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, urllib3.exceptions.MaxRetryError):
        reason = reason.reason
    return isinstance(
        reason,
        urllib3.exceptions.NewConnectionError
        | urllib3.exceptions.NameResolutionError
        | urllib3.exceptions.ConnectTimeoutError,
    )


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _json(response: requests.Response, parse: Callable[[bytes], Any] | None = None) -> Any:
    """The answer's JSON, or what `parse` makes of its bytes; CloudError when it is not JSON."""
    try:
        if parse is not None:
            return parse(response.content or b"{}")
        return response.json() if response.content else {}
    except ValueError:
        raise CloudError(
            response.status_code,
            message="the cloud answered with a body that is not JSON",
            request_id=response.headers.get("X-Request-Id", ""),
            outcome=Outcome.UNKNOWN,
        ) from None


def _filters(filters: Mapping[str, object], allowed: frozenset[str]) -> Query:
    unknown = set(filters) - allowed
    if unknown:
        raise TypeError(f"unknown filter(s): {', '.join(sorted(unknown))}")
    return [(key, _query_value(value)) for key, value in filters.items() if value is not None]


def _ims_filters(filters: Mapping[str, object]) -> Query:
    unknown = set(filters) - set(IMS_FILTERS)
    if unknown:
        raise TypeError(f"unknown filter(s): {', '.join(sorted(unknown))}")
    query: Query = []
    for key, value in filters.items():
        if value is None:
            continue
        if key == "image_type":
            if value not in wire.TYPE_TO_IMS:
                raise ValueError(f"IMS cannot filter by image type {value!r}")
            value = wire.TYPE_TO_IMS[str(value)]
        query.append((IMS_FILTERS[key], _query_value(value)))
    return query


def _query_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _items(body: object, key: str) -> list[Mapping[str, Any]]:
    items = body.get(key) if isinstance(body, Mapping) else None
    return [item for item in items if isinstance(item, Mapping)] if isinstance(items, list) else []


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _seg(value: str) -> str:
    """An id as one path segment (ids are opaque; never let one add a path level)."""
    return quote(value, safe="")


# Connections kept per host: the calls in flight of a submit, a sync and the submit's re-reads
# ahead of its calls share one client (requests' default of 10 made threads wait and warn).
HTTP_POOL = 32


def _pooled_session() -> requests.Session:
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=HTTP_POOL)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _check_logoff(
    ids: list[str], delay: int, message_type: int, message: str, title: str, transaction: str
) -> None:
    """LogoffUserSession's limits, checked before anything is sent (ValueError)."""
    if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= LOGOFF_MAX_DELAY:
        raise ValueError(f"delay_seconds must be a whole number from 0 to {LOGOFF_MAX_DELAY}")
    if isinstance(message_type, bool) or message_type not in MESSAGE_TYPES:
        raise ValueError("message_type must be 0 (info), 1 (warn), 2 (serious), 3 or 4")
    for name, value, most in (
        ("message", message, LOGOFF_TEXT_MAX),
        ("title", title, LOGOFF_TEXT_MAX),
        ("transaction_id", transaction, LOGOFF_TRANSACTION_MAX),
    ):
        if len(value) > most:
            raise ValueError(f"{name} is {len(value)} characters; the cloud takes at most {most}")
    for session_id in ids:
        if not isinstance(session_id, str) or not 1 <= len(session_id) <= SESSION_ID_MAX:
            raise ValueError(
                f"session ids are 1 to {SESSION_ID_MAX} characters: {session_id!r:.80}"
            )


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


_client_lock = threading.Lock()
_clients: dict[str, CloudClient] = {}
# Projects found at IAM, per (IAM endpoint, AK, region), as the SDK caches them.
_projects_lock = threading.Lock()
_projects: dict[tuple[str, str, str], str] = {}


def get_client(project: ProjectConfig | None = None) -> CloudClient:
    """The process-wide client of `project` (the default one when None), rebuilt when its
    configuration changes. Each project has its own pacing and circuit breaker."""
    project = project or projects.default()
    config = for_project(project)
    key = project.guard_key
    with _client_lock:
        client = _clients.get(key)
        if client is None or client.config != config:
            client = _clients[key] = CloudClient(config, guard=limits.process_guard(key))
        return client


def reachable(timeout: float = 1.0) -> bool:
    """True if the WorkspaceApp endpoint accepts a TCP connection (no credentials spent)."""
    parts = urlsplit(from_settings().workspaceapp_endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False
