"""WorkspaceApp handlers: servers, groups, image changes, maintenance, jobs and sessions."""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from dashboard.simulator import batches, codes, render
from dashboard.simulator.fleet import MARKETPLACE, Server
from dashboard.simulator.http import ApiError, Request, Response, int_param, page, str_param
from dashboard.simulator.http import wks_bad as bad
from dashboard.simulator.sessions import INIT_FAIL, STATES

MAX_OFFSET = 2_147_483_647
MAX_CHANGE_IDS = 50
MAX_MAINT_IDS = 20
BOOL_WORDS = ("true", "false")
OS_TYPES = ("Linux", "Windows", "Other")
IMAGE_TYPES = ("gold", "public", "private", "shared", "other")
WIRE_KIND = {"gold": MARKETPLACE, "public": "public", "private": "private", "shared": "shared"}
MAX_LOGOFF_IDS = 999
MAX_LOGOFF_DELAY = 999_999
MESSAGE_TYPES = (0, 1, 2, 3, 4)  # 0 info, 1 warn, 2 serious (3 and 4: meaning unpublished)
# LogoffUserSession's documented field limits (enforced exactly, never more loosely).
LOGOFF_TEXT_MAX = 255  # message, title
LOGOFF_TRANSACTION_MAX = 31
SESSION_ID_MAX = 64
JOB_STATUSES = ("WAITING", "RUNNING", "SUCCESS", "FAILED", "ABNORMAL", "ROLLBACK", "ABORTING")
SUB_JOB_TYPES = (
    "CREATE_SERVER",
    "DELETE_SERVER",
    "REJOIN_DOMAIN",
    "CHANGE_SERVER_IMAGE",
    "REINSTALL_OS",
    "MIGRATE_SERVER",
    "UPDATE_SERVER_TSVI",
    "UPGRADE_ACCESS_AGENT",
    "SCHEDULED_TASK",
    "UPDATE_FREEZE_STATUS",
)


def _offset_limit(req: Request) -> tuple[int, int]:
    return int_param(req, "offset", 0, 0, MAX_OFFSET), int_param(req, "limit", 10, 1, 100)


def _server_filters(req: Request) -> list[Callable[[Server], bool]]:
    checks: list[Callable[[Server], bool]] = []
    group_id = str_param(req, "server_group_id", 128, min_length=1)
    if group_id is not None:
        checks.append(lambda s: s.group_id == group_id)
    server_id = str_param(req, "server_id", 128)
    if server_id:
        checks.append(lambda s: s.id == server_id)
    name = str_param(req, "server_name", 1024)
    if name:
        checks.append(lambda s: name.lower() in s.name.lower())
    machine = str_param(req, "machine_name", 1024)
    if machine:
        checks.append(lambda s: machine.lower() in s.machine_name.lower())
    ip = str_param(req, "ip_addr", 64)
    if ip:
        checks.append(lambda s: ip in s.ip)
    maint = str_param(req, "maintain_status", 5, BOOL_WORDS)
    if maint is not None:
        checks.append(lambda s: s.maintain_status == (maint == "true"))
    scaling = str_param(req, "scaling_auto_create", 5, BOOL_WORDS)
    if scaling is not None:
        checks.append(lambda s: s.scaling_auto_create == (scaling == "true"))
    return checks


def list_servers(req: Request) -> Response:
    """ListServers: offset/limit paging and the documented filters."""
    offset, limit = _offset_limit(req)
    checks = _server_filters(req)
    state = req.state
    with state.lock:
        now = state.now()
        # The group and id filters pick from the state's indexes; every check still applies.
        pool = state.servers_where(req.param("server_group_id"), req.param("server_id"))
        found = [s for s in pool if all(check(s) for check in checks)] if checks else pool
        # Encoded here, field for field as `render.server` (which ShowServer still uses).
        items = [render.server_json(state, s, now) for s in page(found, offset, limit)]
    return Response(200, render.listing(len(found), items))


def show_server(req: Request) -> Response:
    """ShowServer: one server at top level, with addresses."""
    state = req.state
    with state.lock:
        now = state.now()
        server = state.servers.get(req.args["id"])
        if server is None:
            raise ApiError(404, codes.wks(codes.NOT_FOUND, "The server does not exist."))
        return Response(200, render.server(state, server, now, detail=True))


def list_server_groups(req: Request) -> Response:
    """ListServerGroups."""
    offset, limit = _offset_limit(req)
    name = str_param(req, "server_group_name", 1024)
    group_id = str_param(req, "server_group_id", 128)
    app_type = str_param(
        req, "app_type", 32, ("SESSION_DESKTOP_APP", "COMMON_APP"), empty_is_absent=True
    )
    secondary = str_param(req, "is_secondary_server_group", 5, BOOL_WORDS)
    str_param(req, "tags", 1024)
    str_param(req, "enterprise_project_id", 64)
    state = req.state
    with state.lock:
        found = [
            g
            for g in state.groups.values()
            if (not name or name.lower() in g.name.lower())
            and (not group_id or g.id == group_id)
            and (not app_type or g.app_type == app_type)
            and secondary != "true"  # the simulated fleet has no secondary groups
        ]
        items = [render.group(state, g) for g in page(found, offset, limit)]
    return Response(200, {"count": len(found), "items": items})


def show_server_group(req: Request) -> Response:
    """ShowServerGroup."""
    state = req.state
    with state.lock:
        group = state.groups.get(req.args["id"])
        if group is None:
            raise ApiError(404, codes.wks(codes.NOT_FOUND, "The server group does not exist."))
        return Response(200, render.group(state, group, detail=True))


def _change_target(req: Request, body: Any) -> str:
    """Validate the change-image body's common fields; returns the image id."""
    if not isinstance(body, dict):
        raise bad("The request body must be a JSON object.")
    image_id = body.get("image_id")
    if not isinstance(image_id, str) or not 1 <= len(image_id) <= 128:
        raise bad("Invalid parameter image_id: required, 1 to 128 characters.")
    image_type = body.get("image_type")
    if image_type not in IMAGE_TYPES:
        raise bad(f"Invalid parameter image_type: must be one of {', '.join(IMAGE_TYPES)}.")
    if body.get("os_type") not in OS_TYPES:
        raise bad(f"Invalid parameter os_type: must be one of {', '.join(OS_TYPES)}.")
    agent = body.get("update_access_agent")
    if agent is not None and not isinstance(agent, bool):
        raise bad("Invalid parameter update_access_agent: must be a boolean.")
    product_id = body.get("image_product_id")
    if product_id is not None and (
        not isinstance(product_id, str) or not 1 <= len(product_id) <= 128
    ):
        raise bad("Invalid parameter image_product_id: 1 to 128 characters.")
    image = req.state.image(image_id)
    if image is None:
        return image_id  # refused per server (image_unknown), as the compat rules say
    if WIRE_KIND.get(image_type) != image.kind:
        raise bad("Invalid parameter image_type: it does not match the image's type.")
    if body["os_type"] != image.os_type:
        raise bad("Invalid parameter os_type: it does not match the image's OS.")
    if image.kind == MARKETPLACE and product_id != image.product_code:
        raise bad("Invalid parameter image_product_id: required for a marketplace image and "
                  "must be the image's product id.")  # fmt: skip
    return image_id


def batch_change_image(req: Request) -> Response:
    """BatchChangeServerImage: a job per accepted server, an item error per refused one."""
    body = req.json(bad)
    image_id = _change_target(req, body)
    server_ids = body.get("server_ids", [])
    if not isinstance(server_ids, list) or not all(
        isinstance(i, str) and 1 <= len(i) <= 128 for i in server_ids
    ):
        raise bad("Invalid parameter server_ids: a list of 1 to 128 character ids.")
    if len(server_ids) > MAX_CHANGE_IDS:
        raise bad(f"Invalid parameter server_ids: at most {MAX_CHANGE_IDS} servers.")
    with req.state.lock:
        items = req.state.change_images(image_id, server_ids)
        if req.state.faults.shared_batch_job:
            items = batches.share(req.state, items)
    return Response(200, {"items": items})


def change_image(req: Request) -> Response:
    """ChangeServerImage: one server; refusals are request errors here (no item list)."""
    body = req.json(bad)
    image_id = _change_target(req, body)
    server_id = req.args["id"]
    with req.state.lock:
        if server_id not in req.state.servers:
            raise ApiError(404, codes.wks(codes.NOT_FOUND, "The server does not exist."))
        (item,) = req.state.change_images(image_id, [server_id])
    if item["error_code"]:
        status = 409 if item["error_code"] == codes.CONFLICT else 400
        raise ApiError(status, codes.wks(item["error_code"], item["error_message"]))
    return Response(200, {"job_id": item["job_id"]})


def batch_maint(req: Request) -> Response:
    """BatchChangeServerMaintainMode: 1 to 20 unique ids; 200 with no body."""
    body = req.json(bad)
    if not isinstance(body, dict):
        raise bad("The request body must be a JSON object.")
    ids = body.get("items")
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_MAINT_IDS:
        raise bad(f"Invalid parameter items: 1 to {MAX_MAINT_IDS} server ids.")
    if not all(isinstance(i, str) and 1 <= len(i) <= 128 for i in ids) or len(set(ids)) != len(ids):
        raise bad("Invalid parameter items: unique ids of 1 to 128 characters.")
    flag = body.get("maintain_status")
    if not isinstance(flag, bool):
        raise bad("Invalid parameter maintain_status: required boolean.")
    missing = req.state.set_maintenance(ids, flag)
    if missing:
        raise ApiError(404, codes.wks(codes.NOT_FOUND, f"The server {missing[0]} does not exist."))
    return Response(200, None)


def _job(req: Request) -> Any:
    job = req.state.jobs.get(req.args["job_id"])
    if job is None:
        _unknown_job(req)
    return job


def _unknown_job(req: Request) -> None:
    if req.state.faults.unknown_job_as_400:
        # What ShowJobDetail documents: no 404, a 400 with this "invalid request" example.
        raise ApiError(400, codes.wks(codes.JOB_INVALID, "The request message is invalid."))
    raise ApiError(404, codes.wks(codes.NOT_FOUND, "The job does not exist."))


def show_job_detail(req: Request) -> Response:
    """ShowJobDetail (v2); a shared job (knob `shared_batch_job`) lists all its sub-jobs."""
    state = req.state
    with state.lock:
        now = state.now()
        if req.args["job_id"] in state.batches:
            return Response(200, batches.detail(state, req.args["job_id"], now, render.sub_job))
        return Response(200, render.job_detail(state, _job(req), now))


def show_job(req: Request) -> Response:
    """ShowJob (v1)."""
    state = req.state
    with state.lock:
        now = state.now()
        return Response(200, render.job_v1(_job(req), now))


def _sub_jobs(req: Request, job_types: tuple[str, ...]) -> list[Any]:
    status = str_param(req, "status", 32, JOB_STATUSES, empty_is_absent=True)
    job_id = str_param(req, "job_id", 128)
    state = req.state
    now = state.now()
    return [
        job
        for job in state.jobs.values()
        if job.job_type in job_types
        and (not job_id or job_id in (job.id, state.batch_of.get(job.id)))
        and (not status or job.status(now) == status)
    ]


def list_sub_jobs(req: Request) -> Response:
    """ListSubJobs: job_type is required."""
    job_type = str_param(req, "job_type", 64, SUB_JOB_TYPES)
    if job_type is None:
        raise bad("Invalid parameter job_type: required.")
    offset, limit = _offset_limit(req)
    state = req.state
    with state.lock:
        now = state.now()
        found = _sub_jobs(req, (job_type,))
        items = [render.sub_job(state, j, now) for j in page(found, offset, limit)]
    return Response(200, {"count": len(found), "items": items})


def count_sub_jobs(req: Request) -> Response:
    """CountSubJobs: job_type optional, several comma-separated."""
    raw = str_param(req, "job_type", 256)
    types = tuple(t for t in (raw or "").split(",") if t) or SUB_JOB_TYPES
    if any(t not in SUB_JOB_TYPES for t in types):
        raise bad(f"Invalid parameter job_type: must be among {', '.join(SUB_JOB_TYPES)}.")
    with req.state.lock:
        return Response(200, {"count": len(_sub_jobs(req, types))})


def _time_param(req: Request, name: str) -> datetime:
    """A required ListSessions time (`2024-02-27T03:47:51.182Z`)."""
    raw = str_param(req, name, 64)
    if not raw:
        raise bad(f"Invalid parameter {name}: required.")
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise bad(f"Invalid parameter {name}: not a time like 2024-02-27T03:47:51.182Z.") from None
    if moment.tzinfo is None:
        raise bad(f"Invalid parameter {name}: the time needs a zone (Z).")
    return moment


def list_sessions(req: Request) -> Response:
    """ListSessions: a window on the start time is required; filters match exactly."""
    offset, limit = _offset_limit(req)
    begin, end = _time_param(req, "query_begin_time"), _time_param(req, "query_end_time")
    if begin > end:
        raise bad("Invalid parameter query_begin_time: after query_end_time.")
    user = str_param(req, "user_name", 256)
    group_id = str_param(req, "app_server_group_id", 128)
    vm_ip = str_param(req, "vm_ip", 64)
    public_ip = str_param(req, "public_ip", 64)
    machine = str_param(req, "machine_name", 1024)
    raw_states = str_param(req, "session_state", 256)
    states = {part.strip() for part in (raw_states or "").split(",") if part.strip()}
    if any(state not in STATES for state in states):
        raise bad(f"Invalid parameter session_state: must be among {', '.join(STATES)}.")
    success = str_param(req, "is_success", 5, BOOL_WORDS)
    state = req.state
    with state.lock:
        now = state.now()
        found = []
        for u in state.user_sessions():
            s = state.servers.get(u.server_id)
            if not (
                begin <= u.started <= end
                and (not user or u.user_name == user)
                and (not group_id or (s is not None and s.group_id == group_id))
                and (not vm_ip or (s is not None and s.ip == vm_ip))
                and (not public_ip or public_ip == render.SESSION_PUBLIC_IP)
                and (not machine or (s is not None and s.machine_name.lower() == machine.lower()))
                and (not states or u.state in states)
                and (success is None or (u.state != INIT_FAIL) == (success == "true"))
            ):
                continue
            found.append(u)
        items = [render.session_info(state, u, now) for u in page(found, offset, limit)]
    return Response(200, {"count": len(found), "items": items})


def _optional_text(body: dict[str, Any], name: str, max_length: int) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > max_length:
        raise bad(f"Invalid parameter {name}: at most {max_length} characters.")
    return value


def _bounded_int(body: dict[str, Any], name: str, low: int, high: int) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise bad(f"Invalid parameter {name}: required integer from {low} to {high}.")
    return value


def logoff_user_session(req: Request) -> Response:
    """LogoffUserSession: message each session, log it off after `delay_time` seconds.

    Unknown or already ended session ids are ignored (200), so a retry, or a session that
    ended between listing and logoff, never fails the call.
    """
    body = req.json(bad)
    if not isinstance(body, dict):
        raise bad("The request body must be a JSON object.")
    ids = body.get("session_ids")
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_LOGOFF_IDS:
        raise bad(f"Invalid parameter session_ids: 1 to {MAX_LOGOFF_IDS} session ids.")
    if not all(isinstance(i, str) and 1 <= len(i) <= SESSION_ID_MAX for i in ids):
        raise bad(f"Invalid parameter session_ids: ids of 1 to {SESSION_ID_MAX} characters.")
    message_type = _bounded_int(body, "message_type", min(MESSAGE_TYPES), max(MESSAGE_TYPES))
    delay = _bounded_int(body, "delay_time", 0, MAX_LOGOFF_DELAY)
    req.state.logoff(
        ids,
        delay_time=delay,
        message_type=message_type,
        message=_optional_text(body, "message", LOGOFF_TEXT_MAX),
        title=_optional_text(body, "title", LOGOFF_TEXT_MAX),
        transaction_id=_optional_text(body, "transaction_id", LOGOFF_TRANSACTION_MAX),
    )
    return Response(200, None)
