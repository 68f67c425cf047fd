"""The /_sim/ control endpoints: health, request log, reset, server patches, faults, clock.

No authentication and no faults here; the simulator only listens on loopback. An endpoint acts
on one project: `?project=<id>` (or `"project"` in a JSON body), else the default (first) one.
The clock is shared by every project, and a reset without a project resets them all.
"""

import json
import re
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from dashboard.simulator import render
from dashboard.simulator.http import Response
from dashboard.simulator.state import SimState, iso

PREFIX = "/_sim/"


def handle(state: SimState, method: str, path: str, body: bytes, query: str = "") -> Response:
    """Answer a control request; unknown paths and projects are 404, malformed bodies 400."""
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        return _error(400, "body is not JSON")
    if not isinstance(data, dict):
        return _error(400, "body must be a JSON object")
    named = dict(parse_qsl(query)).get("project") or data.pop("project", None)
    if named is not None and not isinstance(named, str):
        return _error(400, "project must be a project id")
    project = state.cloud.project(named) if named else state.cloud.default
    if project is None:
        return _error(
            404, f"no project {named}; the projects are {', '.join(state.cloud.projects)}"
        )
    server = re.fullmatch(r"/_sim/servers/([^/]+)", path)
    if server:
        return _server(project, method, server.group(1), data)
    if (method, path) == ("POST", f"{PREFIX}reset") and not named:
        state.cloud.reset()
        return _health(project, {})
    route: dict[tuple[str, str], Callable[[SimState, dict[str, Any]], Response]] = {
        ("GET", "health"): _health,
        ("GET", "requests"): lambda s, _d: Response(200, {"requests": s.requests()}),
        ("DELETE", "requests"): _clear_requests,
        ("POST", "reset"): _reset,
        ("GET", "faults"): lambda s, _d: Response(200, s.faults.as_dict()),
        ("POST", "faults"): _faults,
        ("GET", "seed"): lambda s, _d: Response(200, {"fault_seed": s.fault_seed}),
        ("POST", "seed"): _seed,
        ("GET", "clock"): lambda s, _d: Response(200, s.clock.as_dict()),
        ("POST", "clock"): _clock,
        ("GET", "fleet"): _fleet,
    }
    handler = route.get((method, path.removeprefix(PREFIX)))
    if handler is None:
        return _error(404, f"no control endpoint {method} {path}")
    return handler(project, data)


def _error(status: int, message: str) -> Response:
    return Response(status, {"error": message})


def _health(state: SimState, _data: dict[str, Any]) -> Response:
    with state.lock:
        return Response(
            200,
            {
                "status": "ok",
                "servers": len(state.servers),
                "groups": len(state.groups),
                "images": len(state.images),
                "jobs": len(state.jobs),
                "seed": state.config.seed,
                "fault_seed": state.fault_seed,
                "clock": state.clock.as_dict(),
                "project_id": state.config.project_id,
                "region": state.config.region,
                "projects": [
                    {
                        "project_id": p.config.project_id,
                        "region": p.config.region,
                        "servers": len(p.servers),
                    }
                    for p in state.all_projects()
                ],
            },
        )


def _clear_requests(state: SimState, _data: dict[str, Any]) -> Response:
    with state.lock:
        state.request_log.clear()
    return Response(200, {"requests": []})


def _reset(state: SimState, _data: dict[str, Any]) -> Response:
    state.reset()
    return _health(state, {})


def _faults(state: SimState, data: dict[str, Any]) -> Response:
    try:
        return Response(200, state.set_faults(**data))
    except ValueError as error:
        return _error(400, str(error))


def _seed(state: SimState, data: dict[str, Any]) -> Response:
    """Restart the fault and job-failure draws from `seed`, so a fault run can be repeated."""
    seed = data.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        return _error(400, 'seed must be an integer, e.g. {"seed": 42}')
    state.reseed(seed)
    return Response(200, {"fault_seed": state.fault_seed})


def _clock(state: SimState, data: dict[str, Any]) -> Response:
    mode = data.get("mode")
    if mode not in (None, "manual", "real"):
        return _error(400, "mode must be manual or real")
    advance = data.get("advance", 0)
    if isinstance(advance, bool) or not isinstance(advance, int | float) or advance < 0:
        return _error(400, "advance must be a non-negative number of seconds")
    if mode == "real":
        state.set_real_clock()
    elif mode == "manual":
        state.set_manual_clock()
    if advance:
        state.advance(advance)
    return Response(200, state.clock.as_dict())


def _server(state: SimState, method: str, server_id: str, data: dict[str, Any]) -> Response:
    with state.lock:
        if server_id not in state.servers:
            return _error(404, f"no server {server_id}")
        if method == "DELETE":
            state.delete_server(server_id)
            return Response(200, {"deleted": server_id})
        if method == "POST":
            try:
                state.patch_server(server_id, **data)
            except ValueError as error:
                return _error(400, str(error))
        elif method != "GET":
            return _error(405, "use GET, POST or DELETE")
        now = state.now()
        return Response(200, render.server(state, state.servers[server_id], now, detail=True))


def _fleet(state: SimState, _data: dict[str, Any]) -> Response:
    """A summary to find interesting servers and images without paging the cloud API."""
    with state.lock:
        groups = [
            {"id": g.id, "name": g.name, "image_id": g.image_id, "family": g.family}
            for g in state.groups.values()
        ]
        images = [
            {
                "id": i.id,
                "name": i.name,
                "kind": i.kind,
                "os_type": i.os_type,
                "architecture": i.architecture,
                "status": i.status,
                "min_disk": i.min_disk,
                "paid": i.paid,
                "product_code": i.product_code,
                "created_at": iso(i.created_at),
            }
            for i in state.images.values()
        ]
        servers = [
            {"id": s.id, "name": s.name, "group_id": s.group_id, "scenario": s.scenario}
            for s in state.servers.values()
        ]
        scenarios = Counter(s.scenario for s in state.servers.values())
    return Response(
        200, {"groups": groups, "images": images, "servers": servers, "scenarios": scenarios}
    )
