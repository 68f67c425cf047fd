"""IAM (Keystone) handlers: password tokens, token validation and project lookup."""

from typing import Any

from dashboard.simulator import codes
from dashboard.simulator.http import ApiError, Request, Response
from dashboard.simulator.state import SimState, iso

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
    """KeystoneCreateUserTokenByPassword: 201 with the token in X-Subject-Token."""
    user, scope = _password_identity(req.json(lambda _m: _bad_body()))
    state = req.state
    if not _credentials_match(state, user):
        raise ApiError(
            401, codes.keystone(401, "The username or password is wrong.", "Unauthorized")
        )
    project = _project(state)
    wanted = scope.get("project") or {}
    if wanted and wanted.get("name", project["name"]) != project["name"]:
        raise ApiError(401, codes.keystone(401, "The project is not found.", "Unauthorized"))
    token, issued, expires = state.issue_token()
    body = {
        "token": {
            "expires_at": iso(expires).replace("Z", "000Z"),
            "issued_at": iso(issued).replace("Z", "000Z"),
            "methods": ["password"],
            "project": {
                "id": project["id"],
                "name": project["name"],
                "domain": {"id": DOMAIN_ID, "name": state.config.iam_domain},
            },
            "user": {
                "id": USER_ID,
                "name": state.config.iam_user,
                "domain": {"id": DOMAIN_ID, "name": state.config.iam_domain},
                "password_expires_at": "",
            },
            "roles": [{"id": "0", "name": "te_admin"}],
            "catalog": [],
        }
    }
    return Response(201, body, {"X-Subject-Token": token})


def validate_token(req: Request) -> Response:
    """KeystoneValidateToken: 200 when the X-Subject-Token is live, else 404."""
    subject = req.headers.get("x-subject-token", "")
    if not req.state.token_valid(subject):
        raise ApiError(404, codes.keystone(404, "Could not find token.", "Not Found"))
    project = _project(req.state)
    return Response(200, {"token": {"methods": ["password"], "project": project}})


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


def list_projects(req: Request) -> Response:
    """KeystoneListProjects (`?name=<region>`, what the SDK calls to find a project id)."""
    name = req.param("name")
    project = _project(req.state)
    projects = [project] if name in (None, project["name"]) else []
    # Knob: an account with no project, or several, under the region's name.
    extra = req.state.faults.iam_projects - 1
    if projects and extra < 0:
        projects = []
    for n in range(max(0, extra) if projects else 0):
        projects.append({**project, "id": f"{n + 1:032x}"})
    return Response(200, {"projects": projects, "links": {"self": "/v3/projects"}})


def list_auth_projects(req: Request) -> Response:
    """KeystoneListAuthProjects."""
    return Response(
        200, {"projects": [_project(req.state)], "links": {"self": "/v3/auth/projects"}}
    )
