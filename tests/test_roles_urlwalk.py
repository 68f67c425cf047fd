"""Every URL, every role, every method: the access policy as one table.

HOW TO EXTEND: a new `path(..., name="x")` in dashboard/urls.py makes
`test_every_url_is_in_the_table` fail until a row for "x" is added to URLS below. A row is

    "url-name": Row(kwargs=..., get=(anon, viewer, operator, approver, admin), post=(...)),

* `kwargs`: a function of the walk's sample data (see `walk_data`) returning the URL kwargs,
  for patterns with parameters (e.g. `lambda d: {"rollout_id": d["rollout"].pk}`).
* `get` / `post`: the expected status for an anonymous visitor, a viewer, an operator, an
  approver and an admin, in that order. An int, or a set of ints where the answer honestly
  depends on the environment (healthz). Leave a method out (None) when the view does not
  accept it: the walk then expects 403 for the anonymous visitor and 405 for everyone
  signed in — so a state-changing view declares `get=None` and is POST-only by construction.

POSTs are sent with an empty body and no CSRF enforcement (CSRF has its own test); each
(url, method, role) case runs on fresh sample data, so one POST cannot influence another.

Roles per project: a second walk (`test_a_project_role_acts_only_in_its_project`) takes every
row about one rollout and a person whose groups grant a role in project A only. On A's
rollout they get what the table says for that role; on B's, what it says for a viewer, and
every refusal is audited naming project B. Nothing to add there for a new rollout URL: the
walk reads this table.
"""

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, path, reverse
from django.utils import timezone

from dashboard import projects
from dashboard.cloud.projects import ProjectConfig
from dashboard.models import AuditEvent, Image, Rollout, RolloutServer, Server, ServerGroup
from tests.conftest import ADMIN_GROUPS, APPROVER_GROUPS, OPERATOR_GROUPS, VIEWER_GROUPS

ROLES = ("anonymous", "viewer", "operator", "approver", "admin")
GROUPS = {
    "viewer": VIEWER_GROUPS,
    "operator": OPERATOR_GROUPS,
    "approver": APPROVER_GROUPS,
    "admin": ADMIN_GROUPS,
}
Expected = tuple[int | set[int], int | set[int], int | set[int], int | set[int], int | set[int]]

# Shorthands for the common shapes, in ROLES order.
READ = (403, 200, 200, 200, 200)  # any role may read


def acts(status: int | set[int], *, by: str) -> Expected:
    """403 for anyone without role `by`; `status` for those holding it (admin holds all)."""
    holders = {
        "viewer": ROLES[1:],
        "operator": ("operator", "admin"),
        "approver": ("approver", "admin"),
    }
    return tuple(status if role in holders[by] else 403 for role in ROLES)  # type: ignore[return-value]


@dataclass(frozen=True)
class Row:
    get: Expected | None = None
    post: Expected | None = None
    kwargs: Callable[[dict], dict] | None = None


def _rollout(d: dict) -> dict:
    return {"rollout_id": d["rollout"].pk}


API_READ = (401, 200, 200, 200, 200)
NOT_ALLOWED = (405,) * 5


def api_acts(*, by: str) -> Expected:
    """401 without a caller, 403 without role `by`; 415 for its holders: the walk posts a form,
    and the API takes JSON only (its own walk posts JSON)."""
    return (401, *acts(415, by=by)[1:])  # type: ignore[return-value]


API_ROWS: dict[str, Row] = {
    "api:api-root": Row(get=(404,) * 5, post=(404,) * 5),
    "api-unknown": Row(get=(404,) * 5, post=(404,) * 5, kwargs=lambda d: {"rest": "nowhere"}),
    "api:openapi": Row(get=API_READ, post=NOT_ALLOWED),
    "api:list_groups": Row(get=API_READ, post=NOT_ALLOWED),
    "api:list_images": Row(get=API_READ, post=NOT_ALLOWED),
    "api:list_servers": Row(get=API_READ, post=NOT_ALLOWED),
    "api:list_rollouts": Row(get=API_READ, post=NOT_ALLOWED),
    "api:list_audit": Row(get=API_READ, post=NOT_ALLOWED),
    "api:create_plan": Row(get=NOT_ALLOWED, post=api_acts(by="operator")),
    "api:read_plan": Row(get=API_READ, post=NOT_ALLOWED, kwargs=_rollout),
    "api:confirm_plan": Row(get=NOT_ALLOWED, post=api_acts(by="operator"), kwargs=_rollout),
    "api:discard_plan": Row(get=NOT_ALLOWED, post=api_acts(by="operator"), kwargs=_rollout),
    "api:read_rollout": Row(get=API_READ, post=NOT_ALLOWED, kwargs=_rollout),
    "api:approve": Row(get=NOT_ALLOWED, post=api_acts(by="approver"), kwargs=_rollout),
    "api:reject": Row(get=NOT_ALLOWED, post=api_acts(by="approver"), kwargs=_rollout),
    "api:pause": Row(get=NOT_ALLOWED, post=api_acts(by="operator"), kwargs=_rollout),
    "api:cancel": Row(get=NOT_ALLOWED, post=api_acts(by="operator"), kwargs=_rollout),
    "api:resume": Row(get=NOT_ALLOWED, post=api_acts(by="operator"), kwargs=_rollout),
    "api:retry": Row(get=NOT_ALLOWED, post=api_acts(by="operator"), kwargs=_rollout),
    "api:revert": Row(get=NOT_ALLOWED, post=api_acts(by="operator"), kwargs=_rollout),
}

URLS: dict[str, Row] = {
    #                      anonymous  viewer  operator  approver  admin
    "healthz": Row(get=({200, 503},) * 5, post=(405,) * 5),  # public; 503 without a worker
    "sign-out": Row(post=acts(302, by="viewer")),  # to SSO_SIGN_OUT_URL
    "demo-identity": Row(post=acts(404, by="viewer")),  # only the local demo (DEBUG) has it
    # An empty POST names no language: refused with a message (a real choice redirects back).
    "set-language": Row(post=acts(400, by="viewer")),
    "overview": Row(get=READ),
    "groups": Row(get=READ),
    "servers": Row(get=READ),
    "server-detail": Row(get=READ, kwargs=lambda d: {"server_id": d["server"].pk}),
    "images": Row(get=READ),
    "sync": Row(post=acts(302, by="operator")),
    "sync-status": Row(get=READ),
    "rollouts": Row(get=READ),
    "rollout-new": Row(get=acts(200, by="operator"), post=acts(302, by="operator")),  # stored
    "rollout-selection": Row(post=acts(302, by="operator")),  # back to the servers page
    "rollout-plan-create": Row(post=acts(400, by="operator")),  # empty form
    "rollout-plan": Row(get=READ, kwargs=_rollout),
    "rollout-confirm": Row(post=acts(409, by="operator"), kwargs=_rollout),  # no plan token
    "rollout-discard": Row(post=acts(302, by="operator"), kwargs=_rollout),
    "rollout-replan": Row(post=acts(400, by="operator"), kwargs=_rollout),
    "rollout-detail": Row(get=(403, 302, 302, 302, 302), kwargs=_rollout),  # a plan: to its page
    "rollout-poll": Row(get=READ, kwargs=_rollout),
    "rollout-approve": Row(post=acts(302, by="approver"), kwargs=_rollout),
    "rollout-reject": Row(post=acts(302, by="approver"), kwargs=_rollout),
    "rollout-cancel": Row(  # GET: what it stops (a plan cannot be cancelled: to its page)
        get=acts(302, by="operator"), post=acts(302, by="operator"), kwargs=_rollout
    ),
    "rollout-retry": Row(post=acts(302, by="operator"), kwargs=_rollout),
    "rollout-pause": Row(post=acts(302, by="operator"), kwargs=_rollout),
    "rollout-resume": Row(post=acts(302, by="operator"), kwargs=_rollout),
    "rollout-revert": Row(  # GET: choose the servers (a plan has none to revert: back)
        get=acts(302, by="operator"), post=acts(302, by="operator"), kwargs=_rollout
    ),
    "rollout-export": Row(get=READ, kwargs=lambda d: {**_rollout(d), "fmt": "csv"}),
    "audit": Row(get=READ),
    "audit-export": Row(get=READ),
    "cloud-check": Row(get=(403, 403, 403, 403, 200)),  # admins only; probes the cloud
    # Service tokens (admins). The walk has no token: revoking an unknown one is a 404.
    "tokens": Row(get=(403, 403, 403, 403, 200), post=(403, 403, 403, 403, 400)),
    "token-revoke": Row(post=(403, 403, 403, 403, 404), kwargs=lambda d: {"token_id": 10**9}),
    # Every token of one person (the walk's empty form names nobody: nothing to revoke).
    "token-revoke-all": Row(post=(403, 403, 403, 403, 302)),
    # The automation API answers for itself: 401 without a caller, 405 for a method a path does
    # not take (whoever asks), problem documents throughout. tests/test_api_roles.py walks it
    # with service tokens and JSON bodies; this walk posts an empty form through SSO sessions.
    **API_ROWS,
}


def _names(patterns, prefix: str = "") -> list[str]:
    """Every named URL in the resolver, namespaced like `reverse` wants them."""
    names = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            namespace = f"{prefix}{pattern.namespace}:" if pattern.namespace else prefix
            names += _names(pattern.url_patterns, namespace)
        elif isinstance(pattern, URLPattern):
            names.append(f"{prefix}{pattern.name}" if pattern.name else repr(pattern))
    return names


def _table_gaps(patterns) -> list[str]:
    names = _names(patterns)
    problems = [f"unnamed pattern {name}" for name in names if name.startswith("<")]
    problems += [f"no row for {name!r}" for name in sorted(set(names) - set(URLS))]
    problems += [f"row for missing URL {name!r}" for name in sorted(set(URLS) - set(names))]
    return problems


def test_every_url_is_in_the_table():
    gaps = _table_gaps(get_resolver("dashboard.urls").url_patterns)
    assert not gaps, f"update URLS in {__name__}: {gaps}"


def test_a_url_missing_from_the_table_is_reported():
    extra = [*get_resolver("dashboard.urls").url_patterns, path("new/", lambda r: None, name="x")]
    assert _table_gaps(extra) == ["no row for 'x'"]


@pytest.fixture
def walk_data(db) -> dict:
    now = timezone.now()
    group = ServerGroup.objects.create(id="sg-1", name="Finance desktops", synced_at=now)
    image = Image.objects.create(id="img-1", name="Win 2022 v7", synced_at=now)
    server = Server.objects.create(
        id="srv-1", name="fin-01", group=group, image_id=image.id, synced_at=now
    )
    rollout = Rollout.objects.create(created_by="someone.else", target_image_id=image.id)
    RolloutServer.objects.create(
        rollout=rollout,
        server_id=server.id,
        server_name=server.name,
        to_image_id=image.id,
        verdict=RolloutServer.Verdict.CHANGE,
    )
    return {"group": group, "image": image, "server": server, "rollout": rollout}


def _client(role: str, sso_client) -> Client:
    if role == "anonymous":
        return Client()
    return sso_client(f"walk.{role}", GROUPS[role])


CASES = [
    pytest.param(name, method, index, id=f"{name}-{method}-{role}")
    for name, row in URLS.items()
    for method in ("GET", "POST")
    for index, role in enumerate(ROLES)
]


@pytest.mark.parametrize(("name", "method", "index"), CASES)
def test_access_matches_the_table(name, method, index, walk_data, sso_client):
    row = URLS[name]
    declared = row.get if method == "GET" else row.post
    if declared is None:
        expected: int | set[int] = 403 if ROLES[index] == "anonymous" else 405
    else:
        expected = declared[index]
    url = reverse(name, kwargs=row.kwargs(walk_data) if row.kwargs else None)
    client = _client(ROLES[index], sso_client)
    response = client.get(url) if method == "GET" else client.post(url, {})
    allowed = expected if isinstance(expected, set) else {expected}
    assert response.status_code in allowed, (
        f"{method} {url} as {ROLES[index]}: got {response.status_code}, table says {expected}"
    )


# --- Roles per project -------------------------------------------------------------------------

ALPHA = ProjectConfig(
    name="alpha",
    region="cn-north-4",
    ak_env="ALPHA_AK",
    sk_env="ALPHA_SK",
    operator_groups=("ops-alpha",),
    approver_groups=("leads-alpha",),
)
BETA = ProjectConfig(name="beta", region="ap-southeast-3", ak_env="BETA_AK", sk_env="BETA_SK")
# Who holds a role in project alpha only, and which column of the table is theirs there.
PROJECT_PEOPLE = {"operator": ["ops-alpha"], "approver": ["leads-alpha"]}


def _project_data(project, suffix: str) -> dict:
    now = timezone.now()
    group = ServerGroup.objects.create(
        id=f"sg-{suffix}", project=project, name=f"Desktops {suffix}", synced_at=now
    )
    image = Image.objects.create(id="img-1", project=project, name="Win 2022 v7", synced_at=now)
    server = Server.objects.create(
        id=f"srv-{suffix}",
        project=project,
        name=f"desk-{suffix}",
        group=group,
        image_id=image.id,
        synced_at=now,
    )
    rollout = Rollout.objects.create(
        project=project, created_by="someone.else", target_image_id=image.id
    )
    RolloutServer.objects.create(
        rollout=rollout,
        server_id=server.id,
        server_name=server.name,
        to_image_id=image.id,
        verdict=RolloutServer.Verdict.CHANGE,
    )
    return {"group": group, "image": image, "server": server, "rollout": rollout}


@pytest.fixture
def two_projects(settings, db) -> dict:
    settings.CLOUD_PROJECTS = (ALPHA, BETA)
    alpha, beta = projects.rows()
    return {"alpha": _project_data(alpha, "a"), "beta": _project_data(beta, "b")}


# Every row about one rollout, each method it declares (the API has its own walk with JSON
# bodies and tokens: tests/test_project_roles.py).
ROLLOUT_CASES = [
    pytest.param(name, method, role, project, id=f"{name}-{method}-{role}-in-{project}")
    for name, row in URLS.items()
    if not name.startswith("api")
    for method, declared in (("GET", row.get), ("POST", row.post))
    if declared is not None and row.kwargs is _rollout
    for role in PROJECT_PEOPLE
    for project in ("alpha", "beta")
]


@pytest.mark.parametrize(("name", "method", "role", "project"), ROLLOUT_CASES)
def test_a_project_role_acts_only_in_its_project(
    name, method, role, project, two_projects, sso_client
):
    row = URLS[name]
    declared = row.get if method == "GET" else row.post
    # In their project, what the role's column says; elsewhere, a viewer's.
    expected = declared[ROLES.index(role if project == "alpha" else "viewer")]
    rollout = two_projects[project]["rollout"]
    url = reverse(name, kwargs={"rollout_id": rollout.pk})
    client = sso_client(f"alpha.{role}", PROJECT_PEOPLE[role])
    response = client.get(url) if method == "GET" else client.post(url, {})
    allowed = expected if isinstance(expected, set) else {expected}
    assert response.status_code in allowed, (
        f"{method} {url} as {role} of alpha on a {project} rollout: got "
        f"{response.status_code}, expected {expected}"
    )
    refusals = AuditEvent.objects.filter(outcome="refused", details__code="role.missing")
    if response.status_code != 403:
        assert not refusals.exists()
        return
    event = refusals.get()
    assert event.actor == f"alpha.{role}"
    if declared[ROLES.index(role)] != 403:
        # Their role would do it in alpha: refused for beta, and the audit says so.
        assert (event.details["project"], event.details["required_role"]) == (project, role)
        assert event.project.name == project  # the trail filters by it
    else:
        assert "project" not in event.details  # a role they hold nowhere


def test_the_project_walk_covers_every_action_on_a_rollout():
    covered = {
        (name, method) for name, method, _role, _project in (c.values for c in ROLLOUT_CASES)
    }
    assert {
        ("rollout-confirm", "POST"),
        ("rollout-discard", "POST"),
        ("rollout-replan", "POST"),
        ("rollout-approve", "POST"),
        ("rollout-reject", "POST"),
        ("rollout-cancel", "GET"),
        ("rollout-cancel", "POST"),
        ("rollout-pause", "POST"),
        ("rollout-resume", "POST"),
        ("rollout-retry", "POST"),
        ("rollout-revert", "GET"),
        ("rollout-revert", "POST"),
    } <= covered


# --- The role helpers views use ------------------------------------------------------------


def test_roles_imply_the_rights_below_them_but_approving_is_separate():
    from dashboard.roles import roles_for_groups

    assert roles_for_groups(OPERATOR_GROUPS) == {"viewer", "operator"}
    assert roles_for_groups(APPROVER_GROUPS) == {"viewer", "approver"}
    assert roles_for_groups(ADMIN_GROUPS) == {"viewer", "operator", "approver", "admin"}
    assert roles_for_groups(["finance"]) == frozenset()


@pytest.mark.parametrize(
    ("role", "own_rollout", "allowed"),
    [
        ("approver", False, True),
        ("admin", False, True),
        ("approver", True, False),  # nobody approves their own rollout
        ("admin", True, False),
        ("operator", False, False),
        ("viewer", False, False),
    ],
)
def test_can_approve_needs_the_role_and_a_second_person(role, own_rollout, allowed, sso_client):
    from dashboard.roles import can_approve

    request = _client(role, sso_client).get("/").wsgi_request
    submitter = f"WALK.{role.upper()}" if own_rollout else "someone.else"  # case does not matter
    rollout = Rollout.objects.create(created_by=submitter, target_image_id="img-1")
    assert can_approve(request, rollout) is allowed


def test_needs_second_approval_follows_protected_server_groups(settings):
    from dashboard.rollouts.policy import needs_second_approval

    settings.PROTECTED_SERVER_GROUPS = ["sg-finance", "Trading Desks"]
    assert needs_second_approval(["sg-other", "sg-finance"])
    assert needs_second_approval(["trading desks"])
    assert not needs_second_approval(["sg-other"])
    settings.PROTECTED_SERVER_GROUPS = []
    assert not needs_second_approval(["sg-finance"])
    settings.PROTECTED_SERVER_GROUPS = ["*"]
    assert needs_second_approval(["anything"])


def test_the_header_names_the_roles_in_rank_order(sso_client, db):
    everything = ["dashboard-approvers", "dashboard-viewers", "dashboard-operators"]
    page = sso_client("rita", everything).get("/").content.decode()
    assert "(viewer, operator, approver)" in page
