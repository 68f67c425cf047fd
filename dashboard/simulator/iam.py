"""IAM (Keystone) handlers: password tokens, token validation and project lookup."""

import json
from datetime import datetime
from typing import Any

from dashboard.simulator import codes
from dashboard.simulator.http import ApiError, Request, Response
from dashboard.simulator.state import TOKEN_TTL, SimCloud, SimState, iso

DOMAIN_ID = "d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0"
USER_ID = "u1u1u1u1u1u1u1u1u1u1u1u1u1u1u1u1"


def _bad_body() -> ApiError:
    return ApiError(400, codes.keystone(400, "The request body is invalid", "Bad Request"))


def _password_identity(body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(user, scope) from a password-auth body; raises the Keystone 400 when malformed."""
    try:
        auth = body["auth"]
        identity = auth["identity"]
        if identity["methods"] != ["password"]:
            raise _bad_body()
        user = identity["password"]["user"]
        scope = auth.get("scope") or {}
    except (KeyError, TypeError):
        raise _bad_body() from None
    if not isinstance(user, dict) or not isinstance(scope, dict):
        raise _bad_body()
    return user, scope


def _credentials_match(state: SimState, user: dict[str, Any]) -> bool:
    config = state.config
    domain = user.get("domain") or {}
    return (
        user.get("name") == config.iam_user
        and user.get("password") == config.iam_password
        and isinstance(domain, dict)
        and domain.get("name", config.iam_domain) == config.iam_domain
    )


def create_token(req: Request) -> Response:
    """KeystoneCreateUserTokenByPassword: 201 with the token in X-Subject-Token, scoped to the
    project the body names by id or name (the default project when it names none)."""
    user, scope = _password_identity(req.json(lambda _m: _bad_body()))
    state = req.state
    if not _credentials_match(state, user):
        raise ApiError(
            401, codes.keystone(401, "The username or password is wrong.", "Unauthorized")
        )
    wanted = scope.get("project") or {}
    scoped = _scoped(state.cloud, wanted) if wanted else state.cloud.default
    if scoped is None:
        raise ApiError(401, codes.keystone(401, "The project is not found.", "Unauthorized"))
    token, issued, expires = scoped.issue_token()
    body = _token_body(scoped, issued, expires)
    return Response(201, body, {"X-Subject-Token": token})


def _scoped(cloud: SimCloud, wanted: Any) -> SimState | None:
    """The project a token scope names (`id`, else `name`), or None."""
    if not isinstance(wanted, dict):
        return None
    if "id" in wanted:
        found = cloud.project(wanted["id"]) if isinstance(wanted["id"], str) else None
        if found is None or wanted.get("name", found.config.region) != found.config.region:
            return None
        return found
    named = cloud.named(wanted.get("name")) if isinstance(wanted.get("name"), str) else []
    return named[0] if named else None


def project_named(
    cloud: SimCloud,
    handler: object,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
) -> SimState | None:
    """The project an IAM request is about (token scope, subject token, looked-up name)."""
    if handler is create_token:
        try:
            scope = json.loads(body)["auth"].get("scope") or {}
        except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
            return None
        return _scoped(cloud, scope.get("project")) if isinstance(scope, dict) else None
    if handler is validate_token:
        return cloud.token_project(headers.get("x-subject-token", ""))
    if handler is list_projects:
        name = next((value for key, value in query if key == "name"), None)
        named = cloud.named(name) if name else []
        return named[0] if named else None
    return None


def validate_token(req: Request) -> Response:
    """KeystoneValidateToken: 200 when the X-Subject-Token is live, else 404."""
    subject = req.headers.get("x-subject-token", "")
    scoped = req.state.cloud.token_project(subject)
    expires = scoped.token_expiry(subject) if scoped is not None else None
    if expires is None:  # unknown, or expired since
        raise ApiError(404, codes.keystone(404, "Could not find token.", "Not Found"))
    body = _token_body(scoped, expires - TOKEN_TTL, expires)
    return Response(200, body, {"X-Subject-Token": subject})


def _token_body(state: SimState, issued: datetime, expires: datetime) -> dict[str, Any]:
    """A token's body as KeystoneCreateUserTokenByPassword and KeystoneValidateToken answer it."""
    project = _project(state)
    domain = {"id": DOMAIN_ID, "name": state.config.iam_domain}
    return {
        "token": {
            "expires_at": iso(expires).replace("Z", "000Z"),
            "issued_at": iso(issued).replace("Z", "000Z"),
            "methods": ["password"],
            "project": {"id": project["id"], "name": project["name"], "domain": domain},
            "user": {
                "id": USER_ID,
                "name": state.config.iam_user,
                "domain": domain,
                "password_expires_at": "",
            },
            "roles": [{"id": "0", "name": "te_admin"}],
            "catalog": [],
        }
    }


def _project(state: SimState) -> dict[str, Any]:
    return {
        "id": state.config.project_id,
        "name": state.config.region,
        "domain_id": DOMAIN_ID,
        "parent_id": DOMAIN_ID,
        "enabled": True,
        "is_domain": False,
        "description": "",
        "links": {"self": f"/v3/projects/{state.config.project_id}"},
    }


def _visible(req: Request) -> list[SimState]:
    """The projects IAM shows the caller, in configured order."""
    cloud = req.state.cloud
    sees = req.caller.sees if req.caller else tuple(cloud.projects)
    return [p for pid, p in cloud.projects.items() if pid in sees]


def list_projects(req: Request) -> Response:
    """KeystoneListProjects (`?name=<region>`, what the SDK calls to find a project id)."""
    name = req.param("name")
    projects = []
    for state in _visible(req):
        if name not in (None, state.config.region):
            continue
        project = _project(state)
        # Knob: an account with no project, or several, under the region's name.
        extra = state.faults.iam_projects - 1
        if extra < 0:
            continue
        projects.append(project)
        projects.extend({**project, "id": f"{n + 1:032x}"} for n in range(extra))
    return Response(200, {"projects": projects, "links": {"self": "/v3/projects"}})


def list_auth_projects(req: Request) -> Response:
    """KeystoneListAuthProjects: every project the caller can see."""
    projects = [_project(state) for state in _visible(req)]
    return Response(200, {"projects": projects, "links": {"self": "/v3/auth/projects"}})
