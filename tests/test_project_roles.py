"""Roles per project, and tokens scoped to one project.

Two projects, alpha and beta. A project's own groups grant a role there only (ops-alpha
operates alpha, leads-alpha approves there); the global groups grant theirs everywhere. A
person with a role in one project sees every project and acts only where the role holds:
the pages offer the buttons only there, and a request elsewhere is an audited 403. A service
token scoped to alpha sees only alpha: beta's rollouts do not exist for it (404), and it cannot
plan beta's servers. Everything goes through the views and the API, as a browser or a
pipeline would.
"""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from dashboard import projects
from dashboard.api import tokens
from dashboard.cloud.projects import ProjectConfig
from dashboard.models import AuditEvent, Image, Rollout, RolloutServer, Server, ServerGroup
from dashboard.roles import can_approve, has_role, holds_anywhere
from tests.api_helpers import API, bearer
from tests.conftest import ADMIN_GROUPS, OPERATOR_GROUPS, VIEWER_GROUPS

pytestmark = pytest.mark.django_db

ALPHA = ProjectConfig(
    name="alpha",
    region="cn-north-4",
    label="Alpha offices",
    ak_env="ALPHA_AK",
    sk_env="ALPHA_SK",
    operator_groups=("ops-alpha",),
    approver_groups=("leads-alpha",),
)
BETA = ProjectConfig(
    name="beta",
    region="ap-southeast-3",
    ak_env="BETA_AK",
    sk_env="BETA_SK",
    operator_groups=("ops-beta",),
)


@pytest.fixture
def fleet(settings) -> dict:
    """Each project: one group of two drifted Windows servers, and a newer image to go to
    (the same public image id in both projects, as a region's public image is)."""
    settings.CLOUD_PROJECTS = (ALPHA, BETA)
    found = {}
    now = timezone.now()
    for project in projects.rows():
        old = Image.objects.create(
            project=project,
            id="img-old",
            name="Win 2022 v6",
            os_type="Windows",
            status="active",
            synced_at=now,
        )
        new = Image.objects.create(
            project=project,
            id="img-new",
            name="Win 2022 v7",
            os_type="Windows",
            status="active",
            synced_at=now,
        )
        group = ServerGroup.objects.create(
            id=f"sg-{project.name}",
            project=project,
            name=f"{project.name} desktops",
            image_id=new.id,
            os_type="Windows",
            synced_at=now,
        )
        servers = [
            Server.objects.create(
                id=f"{project.name}-{n}",
                project=project,
                name=f"{project.name}-0{n}",
                group=group,
                image_id=old.id,
                os_type="Windows",
                status="REGISTERED",
                drift=True,
                synced_at=now,
            )
            for n in (1, 2)
        ]
        found[project.name] = {"project": project, "group": group, "servers": servers}
    return found


def a_rollout(
    fleet: dict, name: str, state: str = "running", by: str = "someone.else", server: int = 0
):
    """A rollout of one server of project `name` (the first, or `server`), in `state`."""
    server = fleet[name]["servers"][server]
    rollout = Rollout.objects.create(
        project=fleet[name]["project"], created_by=by, target_image_id="img-new", state=state
    )
    RolloutServer.objects.create(
        rollout=rollout,
        server_id=server.id,
        server_name=server.name,
        to_image_id="img-new",
        verdict=RolloutServer.Verdict.CHANGE,
        state=RolloutServer.State.PENDING,
    )
    return rollout


@pytest.fixture
def alpha_operator(sso_client) -> Client:
    """Operates project alpha; no global group at all."""
    return sso_client("ann.alpha", ["ops-alpha"])


def plan_fields(*server_ids: str) -> dict:
    return {
        "server": list(server_ids),
        "target_image": "img-new",
        "reason": "CHG-18 per project",
        "preset": "custom",
    }


def refusals(**details):
    query = {f"details__{key}": value for key, value in details.items()}
    return AuditEvent.objects.filter(outcome="refused", **query)


# ---- who holds what --------------------------------------------------------------------


def test_a_project_group_lets_a_person_in_as_a_viewer_with_the_role_in_that_project_only(
    fleet, alpha_operator
):
    response = alpha_operator.get("/rollouts/")
    request = response.wsgi_request

    assert response.status_code == 200
    assert request.roles == {"viewer"}
    assert request.project_roles == {"alpha": {"viewer", "operator"}}
    assert has_role(request, "operator", "alpha")
    assert has_role(request, "operator", fleet["alpha"]["project"])
    assert not has_role(request, "operator", "beta")
    assert not has_role(request, "operator")  # no global role
    assert holds_anywhere(request, "operator") and not holds_anywhere(request, "approver")


def test_a_global_group_still_grants_its_role_in_every_project(fleet, sso_client):
    request = sso_client("otto.operator", OPERATOR_GROUPS).get("/rollouts/").wsgi_request
    assert has_role(request, "operator", "alpha") and has_role(request, "operator", "beta")
    assert request.project_roles == {}


def test_groups_of_no_project_and_no_global_role_are_still_refused(fleet, sso_client):
    response = sso_client("olga", ["ops-gamma"]).get("/rollouts/")
    assert response.status_code == 403


def test_can_approve_needs_the_approver_role_in_the_rollouts_project(fleet, sso_client):
    request = sso_client("lee.lead", ["leads-alpha"]).get("/rollouts/").wsgi_request
    assert can_approve(request, a_rollout(fleet, "alpha", "awaiting_approval"))
    assert not can_approve(request, a_rollout(fleet, "beta", "awaiting_approval"))
    own = a_rollout(fleet, "alpha", "awaiting_approval", by="Lee.Lead", server=1)
    assert not can_approve(request, own)  # four eyes, in a project too


# ---- the rollout pages -------------------------------------------------------------------


def test_the_rollout_page_offers_actions_only_in_the_persons_project(fleet, alpha_operator):
    mine = a_rollout(fleet, "alpha")
    theirs = a_rollout(fleet, "beta")

    page = alpha_operator.get(f"/rollouts/{mine.pk}/").content.decode()
    assert f'action="/rollouts/{mine.pk}/pause/"' in page
    assert 'id="cancel-rollout"' in page
    assert "Alpha offices" in page  # the rollout names its project

    page = alpha_operator.get(f"/rollouts/{theirs.pk}/").content.decode()
    assert f'action="/rollouts/{theirs.pk}/pause/"' not in page
    assert 'id="cancel-rollout"' not in page
    assert 'id="rollout-project">beta' in page


def test_acting_on_another_projects_rollout_is_refused_and_audited(fleet, alpha_operator):
    theirs = a_rollout(fleet, "beta")

    response = alpha_operator.post(f"/rollouts/{theirs.pk}/pause/")

    assert response.status_code == 403
    assert Rollout.objects.get(pk=theirs.pk).state == "running"
    event = refusals(code="role.missing", project="beta").get()
    assert (event.actor, event.rollout_id, event.project.name) == ("ann.alpha", theirs.pk, "beta")
    mine = a_rollout(fleet, "alpha")
    assert alpha_operator.post(f"/rollouts/{mine.pk}/pause/").status_code == 302
    assert Rollout.objects.get(pk=mine.pk).state == "paused"


def test_the_approve_button_shows_only_to_an_approver_of_the_rollouts_project(fleet, sso_client):
    lead = sso_client("lee.lead", ["leads-alpha"])
    mine = a_rollout(fleet, "alpha", "awaiting_approval")
    theirs = a_rollout(fleet, "beta", "awaiting_approval")

    assert (
        f'action="/rollouts/{mine.pk}/approve/"'
        in lead.get(f"/rollouts/{mine.pk}/").content.decode()
    )
    page = lead.get(f"/rollouts/{theirs.pk}/").content.decode()
    assert f'action="/rollouts/{theirs.pk}/approve/"' not in page
    assert lead.post(f"/rollouts/{theirs.pk}/approve/").status_code == 403
    assert Rollout.objects.get(pk=theirs.pk).state == "awaiting_approval"
    assert refusals(code="role.missing", project="beta", required_role="approver").exists()


def test_an_approver_of_a_project_approves_its_rollouts(fleet, sso_client):
    lead = sso_client("lee.lead", ["leads-alpha"])
    mine = a_rollout(fleet, "alpha", "awaiting_approval")

    assert lead.post(f"/rollouts/{mine.pk}/approve/").status_code == 302
    mine.refresh_from_db()
    assert (mine.state, mine.approved_by) == ("queued", "lee.lead")


# ---- planning --------------------------------------------------------------------------


def test_planning_servers_of_a_project_one_does_not_operate_is_refused_and_audited(
    fleet, alpha_operator
):
    response = alpha_operator.post("/rollouts/new/plan/", plan_fields("alpha-1", "beta-1"))

    assert response.status_code == 403
    assert not Rollout.objects.exists()
    assert refusals(code="role.missing", project="beta", required_role="operator").exists()
    response = alpha_operator.post("/rollouts/new/plan/", plan_fields("alpha-1", "alpha-2"))
    assert response.status_code == 302
    assert Rollout.objects.get().project.name == "alpha"


def test_the_new_rollout_page_names_the_projects_one_does_not_operate(fleet, alpha_operator):
    stored = alpha_operator.post("/rollouts/new/", {"server": ["alpha-1", "beta-1"]})
    page = alpha_operator.get(stored["Location"])

    assert page.status_code == 200
    assert any("You do not operate the project beta" in e for e in page.context["errors"])


def test_a_selection_spanning_projects_becomes_one_plan_each_shown_together(fleet, sso_client):
    otto = sso_client("otto.operator", OPERATOR_GROUPS)

    response = otto.post("/rollouts/new/plan/", plan_fields("alpha-1", "alpha-2", "beta-1"))

    assert response.status_code == 302
    plans = list(Rollout.objects.order_by("project__name"))
    assert [p.project.name for p in plans] == ["alpha", "beta"]
    assert plans[0].plan_set and plans[0].plan_set == plans[1].plan_set
    assert [p.servers.count() for p in plans] == [2, 1]
    page = otto.get(response["Location"])
    listed = page.context["plan_set"]
    assert [(s.plan.pk, s.changing) for s in listed] == [(plans[0].pk, 2), (plans[1].pk, 1)]
    html = page.content.decode()
    assert 'id="plan-set"' in html
    for plan in plans:
        assert f'data-plan="{plan.pk}"' in html
    shown = next(p for p in plans if f"/rollouts/new/{p.pk}/" == response["Location"])
    other = next(p for p in plans if p.pk != shown.pk)
    assert f'href="/rollouts/new/{other.pk}/"' in html  # the sibling is one click away


def test_a_plan_page_offers_confirm_only_to_an_operator_of_its_project(fleet, sso_client):
    otto = sso_client("otto.operator", OPERATOR_GROUPS)
    otto.post("/rollouts/new/plan/", plan_fields("alpha-1", "beta-1"))
    alpha_plan = Rollout.objects.get(project__name="alpha")
    beta_plan = Rollout.objects.get(project__name="beta")
    ann = sso_client("ann.alpha", ["ops-alpha"])

    page = ann.get(f"/rollouts/new/{alpha_plan.pk}/").content.decode()
    assert f'action="/rollouts/new/{alpha_plan.pk}/confirm/"' in page
    assert "you do not operate this project" in page  # said of beta's sibling
    page = ann.get(f"/rollouts/new/{beta_plan.pk}/").content.decode()
    assert f'action="/rollouts/new/{beta_plan.pk}/confirm/"' not in page
    assert ann.post(f"/rollouts/new/{beta_plan.pk}/confirm/").status_code == 403
    assert ann.post(f"/rollouts/new/{beta_plan.pk}/discard/").status_code == 403
    assert Rollout.objects.get(pk=beta_plan.pk).state == "planned"


# ---- the rollouts list --------------------------------------------------------------------


def test_the_rollouts_list_has_a_project_column_and_takes_project(fleet, viewer_client):
    alpha = a_rollout(fleet, "alpha")
    beta = a_rollout(fleet, "beta")

    everything = viewer_client.get("/rollouts/")
    assert {r.pk for r in everything.context["page"]} == {alpha.pk, beta.pk}
    assert '<a href="?project=beta">beta</a>' in everything.content.decode()
    only_beta = viewer_client.get("/rollouts/", {"project": "beta"})
    assert [r.pk for r in only_beta.context["page"]] == [beta.pk]
    # Filtering the narrowed list keeps its project.
    assert '<input type="hidden" name="project" value="beta">' in only_beta.content.decode()


def test_an_unknown_project_on_the_rollouts_list_is_said_plainly(fleet, viewer_client):
    a_rollout(fleet, "alpha")
    response = viewer_client.get("/rollouts/", {"project": "gamma"})

    assert response.status_code == 200
    assert "No project is called “gamma”: showing every project." in response.content.decode()
    assert len(response.context["page"]) == 1


# ---- the API: scoped tokens -------------------------------------------------------------


def scoped_token(role: str, project_name: str | None, name: str = "alpha-bot") -> Client:
    issued = tokens.issue(
        name=name,
        role=role,
        expires_at=timezone.now() + timedelta(days=30),
        created_by="ada.admin",
        project=projects.by_name(project_name) if project_name else None,
    )
    return bearer(issued.secret)


def post(client: Client, path: str, body: dict | None = None):
    return client.post(f"{API}{path}", body or {}, content_type="application/json")


def test_a_scoped_token_does_not_see_another_projects_rollouts(fleet):
    mine = a_rollout(fleet, "alpha")
    theirs = a_rollout(fleet, "beta")
    bot = scoped_token("operator", "alpha")

    listed = bot.get(f"{API}/rollouts").json()
    assert [(r["id"], r["project"]) for r in listed["items"]] == [(mine.pk, "alpha")]
    for path in (f"/rollouts/{theirs.pk}", f"/plans/{theirs.pk}"):
        assert bot.get(f"{API}{path}").status_code == 404
    for action in ("pause", "cancel"):
        response = post(bot, f"/rollouts/{theirs.pk}/{action}")
        assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert Rollout.objects.get(pk=theirs.pk).state == "running"
    assert bot.get(f"{API}/rollouts/{mine.pk}").json()["project"] == "alpha"
    assert post(bot, f"/rollouts/{mine.pk}/pause").json()["state"] == "paused"


def test_a_scoped_token_lists_only_its_projects_inventory(fleet):
    bot = scoped_token("viewer", "alpha")
    for kind in ("servers", "groups", "images"):
        items = bot.get(f"{API}/{kind}").json()["items"]
        assert items and {item["project"] for item in items} == {"alpha"}, kind
    assert bot.get(f"{API}/servers", {"project": "beta"}).json()["items"] == []


def test_a_scoped_token_cannot_plan_another_projects_servers(fleet):
    bot = scoped_token("operator", "alpha")
    body = {"target_image": "img-new", "reason": "CHG-19", "preset": "custom"}

    response = post(bot, "/plans", {**body, "servers": ["alpha-1", "beta-1"]})
    assert (response.status_code, response.json()["code"]) == (403, "project.out_of_scope")
    unknown = post(bot, "/plans", {**body, "servers": ["alpha-1", "nowhere-1"]})
    assert unknown.json()["detail"] == response.json()["detail"]  # nothing said of beta
    assert not Rollout.objects.exists()
    assert refusals(code="project.out_of_scope", project="alpha").count() == 2
    # A group of beta is nothing the token can see: an empty selection.
    assert post(bot, "/plans", {**body, "group": "sg-beta"}).status_code == 422
    made = post(bot, "/plans", {**body, "servers": ["alpha-1"]})
    assert made.status_code == 201 and made.json()["project"] == "alpha"


def test_a_token_for_every_project_plans_across_them_one_plan_each(fleet):
    bot = scoped_token("operator", None, name="fleet-bot")
    body = {"target_image": "img-new", "reason": "CHG-19", "preset": "custom"}

    made = post(bot, "/plans", {**body, "servers": ["alpha-1", "beta-1", "beta-2"]}).json()

    other = Rollout.objects.exclude(pk=made["id"]).get()
    assert made["plan_set"] == [{"project": other.project.name, "id": other.pk, "state": "planned"}]
    assert {made["project"], other.project.name} == {"alpha", "beta"}


def test_a_scoped_token_reading_a_plan_learns_nothing_of_its_sibling_elsewhere(fleet):
    bot = scoped_token("operator", None, name="fleet-bot")
    body = {"target_image": "img-new", "reason": "CHG-19", "preset": "custom"}
    made = post(bot, "/plans", {**body, "servers": ["alpha-1", "beta-1"]}).json()
    plans = {p.project.name: p for p in Rollout.objects.select_related("project")}
    alpha_only = scoped_token("viewer", "alpha", name="alpha-bot")

    read = alpha_only.get(f"{API}/plans/{plans['alpha'].pk}").json()

    assert made["plan_set"]  # the token for every project sees the sibling
    assert read["plan_set"] == []
    assert alpha_only.get(f"{API}/plans/{plans['beta'].pk}").status_code == 404


def test_api_lists_take_project_and_name_each_rows_project(fleet, viewer_token):
    a_rollout(fleet, "alpha")
    a_rollout(fleet, "beta")
    for kind in ("servers", "groups", "images", "rollouts"):
        everything = viewer_token.get(f"{API}/{kind}").json()["items"]
        assert {item["project"] for item in everything} == {"alpha", "beta"}, kind
        beta = viewer_token.get(f"{API}/{kind}", {"project": "beta"}).json()["items"]
        assert beta and {item["project"] for item in beta} == {"beta"}, kind
        unknown = viewer_token.get(f"{API}/{kind}", {"project": "gamma"})
        assert (unknown.status_code, unknown.json()["code"]) == (422, "validation.invalid")


# ---- the API: people with a role in one project ---------------------------------------------


def test_a_person_acts_through_the_api_only_in_their_project(fleet, alpha_operator):
    mine = a_rollout(fleet, "alpha")
    theirs = a_rollout(fleet, "beta")

    refused = post(alpha_operator, f"/rollouts/{theirs.pk}/pause")
    assert (refused.status_code, refused.json()["code"]) == (403, "role.missing")
    assert refusals(code="role.missing", project="beta", via="api").exists()
    assert alpha_operator.get(f"{API}/rollouts/{theirs.pk}").status_code == 200  # seen
    assert post(alpha_operator, f"/rollouts/{mine.pk}/pause").json()["state"] == "paused"
    body = {"target_image": "img-new", "reason": "x", "preset": "custom", "servers": ["beta-1"]}
    planned = post(alpha_operator, "/plans", body)
    assert (planned.status_code, planned.json()["code"]) == (403, "role.missing")
    assert not Rollout.objects.filter(project__name="beta", state="planned").exists()


# ---- the tokens page ----------------------------------------------------------------------


def test_an_admin_makes_a_token_for_one_project_and_the_list_shows_its_scope(fleet, sso_client):
    admin = sso_client("ada.admin", ADMIN_GROUPS)
    base = {"role": "operator", "expires_in": "30"}

    assert (
        admin.post("/tokens/", {**base, "name": "alpha-bot", "project": "alpha"}).status_code == 201
    )
    assert admin.post("/tokens/", {**base, "name": "all-bot", "project": ""}).status_code == 201
    refused = admin.post("/tokens/", {**base, "name": "gamma-bot", "project": "gamma"})
    assert refused.status_code == 400

    scopes = dict(
        (t.name, t.project.name if t.project else None)
        for t in admin.get("/tokens/").context["tokens"]
    )
    assert scopes == {"alpha-bot": "alpha", "all-bot": None}
    page = admin.get("/tokens/").content.decode()
    assert 'data-scope="alpha">Alpha offices' in page
    assert 'data-scope="*"><span class="muted">all projects' in page
    event = AuditEvent.objects.filter(action="token.create", target="token:alpha-bot").get()
    assert event.details["scope"] == "alpha"


def test_a_viewer_of_every_project_is_no_operator_anywhere(fleet, sso_client):
    vera = sso_client("vera.viewer", VIEWER_GROUPS)
    mine = a_rollout(fleet, "alpha")
    assert 'id="cancel-rollout"' not in vera.get(f"/rollouts/{mine.pk}/").content.decode()
    assert vera.post(f"/rollouts/{mine.pk}/pause/").status_code == 403
