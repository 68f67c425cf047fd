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

A service token never acts with more than its creator's roles as the SSO last showed them
(`SeenRoles`, recorded by the middleware through `remember_seen` when they change): when the
creator is seen without the token's role where the token acts, the token is revoked at once,
audited, and stays revoked whatever roles come back. The API checks again at each use against
the groups last seen (`token_within_creator`), with today's settings. A creator never seen
since this began leaves their tokens working until they are.
"""

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from functools import wraps
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, JSONField, OuterRef, Subquery
from django.db.models.functions import Coalesce, Upper
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from dashboard import audit
from dashboard.cloud import projects as configuration
from dashboard.models import SeenRoles, ServiceToken

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


def for_groups(groups: Iterable[str]) -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    """The global roles and the per-project roles these SSO groups grant, as a request holds
    them (`request.roles`, `request.project_roles`): a role in one project lets a person in
    as a viewer of the whole dashboard. No roles at all: the dashboard refuses the person."""
    groups = tuple(groups)
    roles = roles_for_groups(groups)
    project_roles = project_roles_for_groups(groups)
    if project_roles:
        roles |= {VIEWER}
    return roles, project_roles


# --- what a service token may do: never more than its creator ------------------------------


def seen_signature(
    username: str,
    groups: Iterable[str],
    roles: Iterable[str],
    project_roles: Mapping[str, Iterable[str]],
) -> str:
    """What `remember_seen` compares: the same person with the same groups and roles, in
    whatever order the proxy sent them, has the same signature."""
    payload = [
        username,
        sorted(set(groups)),
        sorted(roles),
        {name: sorted(granted) for name, granted in sorted(project_roles.items())},
    ]
    return hashlib.sha256(json.dumps(payload, ensure_ascii=True).encode()).hexdigest()


SEEN_RESOLUTION = timedelta(hours=1)  # a person's last_seen_at is written at most this often


def remember_seen(
    request: HttpRequest,
    username: str,
    groups: Iterable[str],
    roles: frozenset[str],
    project_roles: Mapping[str, frozenset[str]],
    *,
    signed_in: bool = True,
) -> None:
    """Record the roles the SSO shows `username` with now, if they changed since last recorded,
    and revoke at once (audited) every live token of theirs whose role they no longer hold.

    Decided on the person's one row, not on this session: someone signed in on two devices
    shares it, and the API checks their tokens against it. Unchanged, that costs one read by
    a unique key. `signed_in=False` is a person refused for holding no role: no row is made
    for someone never recorded, but their tokens stop all the same.
    """
    groups = sorted(set(groups))
    signature = seen_signature(username, groups, roles, project_roles)
    rows = SeenRoles.objects.filter(username=username)
    last = Coalesce("last_seen_at", "recorded_at")
    recorded, seen_at = rows.values_list("signature", last).first() or (None, None)
    now = timezone.now()
    if recorded == signature:
        if signed_in and seen_at < now - SEEN_RESOLUTION:
            rows.filter(signature=signature).update(last_seen_at=now)  # at most once an hour
        return
    if recorded is None and not signed_in:
        if ServiceToken.objects.made_by(username).live().exists():
            with transaction.atomic():
                _revoke_beyond(request, username, roles, project_roles)
        return
    fields = {
        "groups": groups,
        "roles": sorted(roles),
        "project_roles": {name: sorted(held) for name, held in sorted(project_roles.items())},
        "signature": signature,
        "recorded_at": now,
        "last_seen_at": now if signed_in else seen_at,
    }
    with transaction.atomic():
        if recorded is not None:
            rows.update(**fields)
        else:
            try:
                with transaction.atomic():
                    SeenRoles.objects.create(username=username, **fields)
            except IntegrityError:  # another request of theirs recorded them first
                rows.update(**fields)
        _revoke_beyond(request, username, roles, project_roles)


def within(token: ServiceToken, roles: frozenset[str], project_roles: Mapping) -> bool:
    """Whether someone holding these roles holds the token's role where the token acts: in
    every project (a token for all projects needs the global role), or in its own project."""
    if token.role in roles:
        return True
    return token.project_id is not None and token.role in project_roles.get(
        token.project.name, frozenset()
    )


def _revoke_beyond(
    request: HttpRequest, username: str, roles: frozenset[str], project_roles: Mapping
) -> None:
    for token in ServiceToken.objects.made_by(username).live().select_related("project"):
        if not within(token, roles, project_roles):
            revoke_for_lost_role(request, token)


def revoke_for_lost_role(request: HttpRequest | None, token: ServiceToken) -> None:
    """Revoke a token whose creator no longer holds its role, and audit it (once)."""
    if token.revoke(by="", reason=ServiceToken.CREATOR_LOST_ROLE):
        audit.record(
            request,
            "token.revoke",
            target=token.actor,
            actor=token.created_by,
            project=token.project,
            reason=ServiceToken.CREATOR_LOST_ROLE,
            role=token.role,
        )


def creator_groups() -> Subquery:
    """Annotate service tokens with the groups their creator was last seen with (None: never
    seen): `ServiceToken.objects.annotate(creator_groups=creator_groups())`."""
    return Subquery(_creators_row().values("groups")[:1], output_field=JSONField())


def creator_seen_at() -> Subquery:
    """Annotate service tokens with when their creator was last seen holding a role (None:
    never seen): `ServiceToken.objects.annotate(creator_seen_at=creator_seen_at())`."""
    seen = _creators_row().values(at=Coalesce("last_seen_at", "recorded_at"))[:1]
    return Subquery(seen, output_field=DateTimeField())


def _creators_row():
    """The SeenRoles row of the annotated token's creator (their name's case aside)."""
    return (
        SeenRoles.objects.annotate(key=Upper("username"))
        .filter(key=Upper(OuterRef("created_by")))
        .order_by("-recorded_at")
    )


def creator_unseen_too_long(token: ServiceToken, now: datetime) -> bool:
    """Whether the token's creator (`creator_seen_at` annotation) has not been seen for
    TOKEN_CREATOR_UNSEEN_DAYS: someone removed from every dashboard group at the company's
    proxy is never seen again, so their role could never be found missing. The token is
    suspended, not revoked: it works again once they are seen holding its role."""
    days = settings.TOKEN_CREATOR_UNSEEN_DAYS
    seen = getattr(token, "creator_seen_at", None)
    return bool(days) and seen is not None and seen < now - timedelta(days=days)


def token_within_creator(token: ServiceToken) -> bool:
    """Whether the token's creator, as last seen (`creator_groups` annotation), still holds the
    token's role where it acts, by today's settings. A creator never seen: yes, until seen."""
    groups = getattr(token, "creator_groups", None)
    if groups is None:
        return True
    return within(token, *for_groups(groups))


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
