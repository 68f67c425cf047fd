"""Roles and the checks every view and action goes through.

Roles come from SSO groups and are recomputed on every request by
`dashboard.sso.SSOMiddleware`, in two parts:

* `request.roles`: what the global groups (settings.ROLE_GROUPS) grant. A global role holds in
  EVERY project, as it did before the dashboard served several.
* `request.project_roles`: `{project name: roles}` that a project's own `operator_groups` and
  `approver_groups` (dashboard/cloud/projects.py) grant in THAT project only, with the rights
  each role implies. Holding any project role also lets a person in as a viewer of the whole
  dashboard (`request.roles` then holds `viewer`): they see every project, and act only where
  a role was granted.

So a check names the project of the thing acted on: `has_role(request, OPERATOR, rollout.project)`
is the global role or that project's. `require_role` guards a view with "holds the role
somewhere" (`holds_anywhere`); the view then checks the project of the object it acts on with
`require_in` (an audited 403 otherwise). Admin is global only: no project grants it.

Roles are ordered: each one includes the rights of those before it, except that approving
is its own right (an operator cannot approve; an admin may do everything).
"""

from collections.abc import Callable, Iterable
from functools import wraps
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from dashboard import audit
from dashboard.cloud import projects as configuration
from dashboard.models import ServiceToken

if TYPE_CHECKING:
    from dashboard.models import Project, Rollout

VIEWER, OPERATOR, APPROVER, ADMIN = "viewer", "operator", "approver", "admin"
SERVICE_ACTOR = "token:"  # how a service token appears as an actor (ServiceToken.actor)
ROLES = (VIEWER, OPERATOR, APPROVER, ADMIN)
# The roles a project's own groups can grant (ProjectConfig.operator_groups, approver_groups).
PROJECT_ROLES = (OPERATOR, APPROVER)
# How pages name each role, in the reader's language.
ROLE_LABELS = {
    VIEWER: gettext_lazy("viewer"),
    OPERATOR: gettext_lazy("operator"),
    APPROVER: gettext_lazy("approver"),
    ADMIN: gettext_lazy("admin"),
}

# What each role may do, spelled out so the URL-walk test reads like a policy.
IMPLIED = {
    VIEWER: {VIEWER},
    OPERATOR: {VIEWER, OPERATOR},
    APPROVER: {VIEWER, APPROVER},
    ADMIN: {VIEWER, OPERATOR, APPROVER, ADMIN},
}


def roles_for_groups(groups: Iterable[str]) -> frozenset[str]:
    """The roles the global SSO groups grant (in every project), with the rights each implies."""
    groups = set(groups)
    granted: set[str] = set()
    for role, role_groups in settings.ROLE_GROUPS.items():
        if groups & set(role_groups):
            granted |= IMPLIED[role]
    return frozenset(granted)


def project_roles_for_groups(groups: Iterable[str]) -> dict[str, frozenset[str]]:
    """`{project name: roles}` the configured projects' own groups grant, each in that project
    only (with the rights each role implies). Projects granting nothing are left out."""
    groups = set(groups)
    found: dict[str, frozenset[str]] = {}
    for project in configuration.configured():
        granted: set[str] = set()
        for role in PROJECT_ROLES:
            if groups & set(project.groups_for(role)):
                granted |= IMPLIED[role]
        if granted:
            found[project.name] = frozenset(granted)
    return found


def _project_name(project: "Project | str | None") -> str:
    if project is None or isinstance(project, str):
        return project or ""
    return project.name


def has_role(request: HttpRequest, role: str, project: "Project | str | None" = None) -> bool:
    """Whether this request's identity holds `role` (directly or implied).

    Without `project`: the global role only. With one (a Project row or its name): the global
    role, or the role granted in that project.
    """
    if role in getattr(request, "roles", frozenset()):
        return True
    name = _project_name(project)
    return bool(name) and role in getattr(request, "project_roles", {}).get(name, frozenset())


def holds_anywhere(request: HttpRequest, role: str) -> bool:
    """Whether the identity holds `role` globally or in at least one project."""
    if role in getattr(request, "roles", frozenset()):
        return True
    return any(role in roles for roles in getattr(request, "project_roles", {}).values())


def projects_with(request: HttpRequest, role: str) -> frozenset[str] | None:
    """The names of the projects where the identity holds `role`; None means every project
    (the role is global)."""
    if role in getattr(request, "roles", frozenset()):
        return None
    granted = getattr(request, "project_roles", {})
    return frozenset(name for name, roles in granted.items() if role in roles)


def _username(request: HttpRequest) -> str:
    user = getattr(request, "user", None)
    return user.get_username() if user is not None and user.is_authenticated else ""


def can_approve(request: HttpRequest, rollout: "Rollout") -> bool:
    """Approver (or admin) in the rollout's project, and a second person (see second_person)."""
    username = _username(request)
    if not username or not has_role(request, APPROVER, rollout.project):
        return False
    return second_person(username, rollout)


def second_person(username: str, rollout: "Rollout") -> bool:
    """Four eyes: whoever approves neither planned nor confirmed the rollout, in person or
    through a service token they made (a token acts as "token:<name>")."""
    authors = set().union(*(_people(name) for name in (rollout.created_by, rollout.confirmed_by)))
    return not _people(username) & authors


def _people(actor: str) -> set[str]:
    """Who an actor answers for, casefolded: a person themself; a service token itself and the
    admin who made it."""
    if not actor:
        return set()
    people = {actor.casefold()}
    if actor.startswith(SERVICE_ACTOR):
        made_by = ServiceToken.objects.filter(name=actor.removeprefix(SERVICE_ACTOR))
        people.update(maker.casefold() for maker in made_by.values_list("created_by", flat=True))
    return people


def refuse(
    request: HttpRequest,
    action: str,
    *,
    role: str = "",
    project: "Project | str | None" = None,
    **details,
) -> None:
    """Write a "refused" audit event and raise PermissionDenied (403).

    For checks inside a view (e.g. `can_approve`) so every refusal is audited the same way.
    The event carries the reason code `role.missing` (or `access.refused` without a role) and
    counts against the client's per-minute ration of refusal rows (audit.refusal). With
    `project`, the role was missing in that project: the event names it.
    """
    code = "role.missing" if role else "access.refused"
    name = _project_name(project)
    if name:
        details["project"] = name
    audit.refusal(request, action, code=code, target=request.path, required_role=role, **details)
    if role and name:
        raise PermissionDenied(
            _("This needs the %(role)s role in the project %(project)s.")
            % {"role": ROLE_LABELS[role], "project": name}
        )
    if role:
        raise PermissionDenied(_("This needs the %(role)s role.") % {"role": ROLE_LABELS[role]})
    raise PermissionDenied(_("Not allowed."))


def require_in(request: HttpRequest, role: str, project: "Project | str", **details) -> None:
    """Refuse (an audited 403) unless the identity holds `role` in `project`: what a view
    calls on the object it acts on, after `require_role` let the person in."""
    if not request.user.is_authenticated or not has_role(request, role, project):
        refuse(
            request, "access.denied", role=role, project=project, method=request.method, **details
        )


def require_role(role: str) -> Callable:
    """View decorator: 403 (and an audit event) unless the identity holds `role` globally or
    in some project. A view acting on one project's object then checks it with `require_in`."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated or not holds_anywhere(request, role):
                refuse(request, "access.denied", role=role, method=request.method)
            return view(request, *args, **kwargs)

        wrapped.required_role = role  # type: ignore[attr-defined]
        return wrapped

    return decorator


def public(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Mark a view as reachable without an identity (only /healthz)."""
    view.public = True  # type: ignore[attr-defined]
    return view
