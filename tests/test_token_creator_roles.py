"""A service token never acts with more than its creator's roles as the SSO last showed them.

An admin makes a token on /tokens/; later the company SSO takes them out of the admins group.
The next time the proxy shows them (any page), their tokens whose role they no longer hold are
revoked at once and audited, and stay revoked if the role comes back. Roles per project count
where a token acts: a token for one project needs its role there (or everywhere). A creator
never seen since this began (a token older than it) keeps their tokens working until seen.
The dashboard remembers each person's roles only when they change: an unchanged person costs
no query. An admin can also revoke every token of one person in one action.

Everything goes through the real SSO header path (tests/conftest.py) and the API's bearer path.
"""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard.api import tokens
from dashboard.cloud.projects import ProjectConfig
from dashboard.models import AuditEvent, SeenRoles, ServiceToken
from tests.api_helpers import API, bearer, plan_body
from tests.conftest import ADMIN_GROUPS, OPERATOR_GROUPS, OUTSIDER_GROUPS, VIEWER_GROUPS

pytestmark = pytest.mark.django_db

LOST = "auth.token_creator_lost_role"


def made_on_page(admin: Client, name: str, role: str, project: str = "") -> Client:
    """A token made by `admin` on /tokens/, as a client sending it."""
    data = {"name": name, "role": role, "expires_in": "30", "project": project}
    response = admin.post("/tokens/", data)
    assert response.status_code == 201, response.content
    return bearer(response.context["issued"].secret)


def regroup(client: Client, groups: list[str]) -> Client:
    """The same browser (same session), the SSO now sending these groups for the person."""
    from django.conf import settings

    from dashboard.sso import meta_key

    client.defaults[meta_key(settings.SSO_GROUPS_HEADER)] = ",".join(groups)
    return client


def plan(token: Client):
    return token.post(f"{API}/plans", plan_body(), content_type="application/json")


def test_a_demoted_admins_token_stops_at_once_on_the_api(sso_client, small_fleet):
    ada = sso_client("ada.admin", ADMIN_GROUPS)
    bot = made_on_page(ada, "deploy-bot", "operator")
    assert plan(bot).status_code == 201
    assert bot.get(f"{API}/audit").status_code == 200

    regroup(ada, VIEWER_GROUPS)
    assert ada.get("/").status_code == 200  # any page: the SSO shows the new groups
    assert ada.get("/tokens/").status_code == 403
    assert ServiceToken.objects.get().revoked_at is not None  # already, before any use

    for refused in (plan(bot), bot.get(f"{API}/audit")):
        assert refused.status_code == 401
        assert refused.json()["code"] == LOST
    token = ServiceToken.objects.get()
    assert token.revoked_at is not None
    assert token.revoked_reason == ServiceToken.CREATOR_LOST_ROLE
    event = AuditEvent.objects.get(action="token.revoke")
    assert (event.actor, event.target, event.groups) == (
        "ada.admin",
        "token:deploy-bot",
        VIEWER_GROUPS,
    )
    assert (event.details["reason"], event.details["role"]) == ("creator_lost_role", "operator")
    page = sso_client("bea.admin", ADMIN_GROUPS).get("/tokens/").content.decode()
    assert "its creator no longer holds the role" in page


def test_a_token_within_the_creators_remaining_role_keeps_working(sso_client, small_fleet):
    ada = sso_client("ada.admin", ADMIN_GROUPS)
    reader = made_on_page(ada, "report-bot", "viewer")
    planner = made_on_page(ada, "deploy-bot", "operator")

    regroup(ada, OPERATOR_GROUPS).get("/")

    assert reader.get(f"{API}/audit").status_code == 200
    assert plan(planner).status_code == 201
    assert not ServiceToken.objects.filter(revoked_at__isnull=False).exists()
    assert not AuditEvent.objects.filter(action="token.revoke").exists()


def test_a_creator_out_of_every_group_is_refused_and_their_tokens_stop(sso_client, small_fleet):
    ada = sso_client("ada.admin", ADMIN_GROUPS)
    bot = made_on_page(ada, "report-bot", "viewer")

    assert regroup(ada, OUTSIDER_GROUPS).get("/").status_code == 403

    assert bot.get(f"{API}/servers").json()["code"] == LOST
    assert SeenRoles.objects.get(username="ada.admin").roles == []


def test_a_re_promoted_creator_does_not_bring_a_revoked_token_back(sso_client, small_fleet):
    ada = sso_client("ada.admin", ADMIN_GROUPS)
    bot = made_on_page(ada, "deploy-bot", "operator")
    regroup(ada, VIEWER_GROUPS).get("/")
    assert plan(bot).status_code == 401

    assert regroup(ada, ADMIN_GROUPS).get("/tokens/").status_code == 200

    refused = plan(bot)
    assert (refused.status_code, refused.json()["code"]) == (401, LOST)
    assert AuditEvent.objects.filter(action="token.revoke").count() == 1


def test_a_token_older_than_this_works_until_its_creator_is_seen(sso_client, make_token):
    bot, _ = make_token("old-bot", "operator", created_by="old.admin")
    assert bot.get(f"{API}/rollouts").status_code == 200  # never seen: nothing to go by

    sso_client("Old.Admin", VIEWER_GROUPS).get("/")  # the same person, however cased

    assert bot.get(f"{API}/rollouts").json()["code"] == LOST


def test_the_api_checks_the_creators_last_seen_groups_at_each_use(sso_client, make_token, settings):
    """A change the middleware has not acted on (here: the settings, since the creator was
    last seen) stops the token at its next call, revoked and audited there."""
    sso_client("ada.admin", ADMIN_GROUPS).get("/")
    bot, _ = make_token("admin-bot", "admin", created_by="ada.admin")
    assert bot.get(f"{API}/rollouts").status_code == 200

    settings.ROLE_GROUPS = {**settings.ROLE_GROUPS, "admin": ["dashboard-owners"]}

    refused = bot.get(f"{API}/rollouts")
    assert (refused.status_code, refused.json()["code"]) == (401, LOST)
    assert ServiceToken.objects.get().revoked_reason == ServiceToken.CREATOR_LOST_ROLE
    event = AuditEvent.objects.get(action="token.revoke")
    assert (event.actor, event.target) == ("ada.admin", "token:admin-bot")


ALPHA = ProjectConfig(
    name="alpha",
    region="cn-north-4",
    ak_env="ALPHA_AK",
    sk_env="ALPHA_SK",
    operator_groups=("ops-alpha",),
)
BETA = ProjectConfig(name="beta", region="ap-southeast-3", ak_env="BETA_AK", sk_env="BETA_SK")


def test_roles_count_per_project_where_the_token_acts(sso_client, settings):
    settings.CLOUD_PROJECTS = (ALPHA, BETA)
    ada = sso_client("ada.admin", ADMIN_GROUPS)
    alpha_bot = made_on_page(ada, "alpha-bot", "operator", project="alpha")
    beta_bot = made_on_page(ada, "beta-bot", "operator", project="beta")
    fleet_bot = made_on_page(ada, "fleet-bot", "operator")
    reader = made_on_page(ada, "report-bot", "viewer")

    regroup(ada, ["ops-alpha"]).get("/")  # operator of alpha only (and so a viewer)

    assert alpha_bot.get(f"{API}/rollouts").status_code == 200
    assert reader.get(f"{API}/rollouts").status_code == 200
    for bot in (beta_bot, fleet_bot):
        assert bot.get(f"{API}/rollouts").json()["code"] == LOST
    revoked = AuditEvent.objects.filter(action="token.revoke").order_by("target")
    assert [(e.target, e.project.name if e.project else None) for e in revoked] == [
        ("token:beta-bot", "beta"),
        ("token:fleet-bot", None),
    ]
    seen = SeenRoles.objects.get(username="ada.admin")
    assert (seen.groups, seen.roles) == (["ops-alpha"], ["viewer"])
    assert seen.project_roles == {"alpha": ["operator", "viewer"]}


# ---- remembering roles costs nothing while they do not change ------------------------------


def queries_of(client: Client, path: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return [query["sql"] for query in captured]


def test_an_unchanged_person_costs_one_read_and_no_write(sso_client, monkeypatch):
    vera = sso_client("vera.viewer", VIEWER_GROUPS)
    first = queries_of(vera, "/rollouts/")
    assert any("dashboard_seenroles" in sql for sql in first)  # recorded on first sight

    again = queries_of(vera, "/rollouts/")

    seen = [sql for sql in again if "dashboard_seenroles" in sql]
    assert len(seen) == 1 and seen[0].startswith("SELECT")  # the row decides, by its key
    assert not any("servicetoken" in sql for sql in again)
    assert not any(sql.startswith(("UPDATE", "INSERT")) for sql in again)  # nor the session
    monkeypatch.setattr("dashboard.sso.remember_seen", lambda *args, **kwargs: None)
    assert len(queries_of(vera, "/rollouts/")) == len(again) - 1


def test_a_demotion_seen_on_one_device_stops_tokens_made_on_another(sso_client):
    """Signed in on a laptop as a viewer, promoted, makes an admin token on a phone, demoted,
    and from then on uses only the laptop (whose session saw her as a viewer before)."""
    laptop = sso_client("ada.admin", VIEWER_GROUPS)
    laptop.get("/")
    phone = sso_client("ada.admin", ADMIN_GROUPS)
    phone.get("/")
    bot = made_on_page(phone, "deploy-bot", "admin")
    assert bot.get(f"{API}/audit").status_code == 200

    laptop.get("/")  # the same groups this session saw before: the row has changed since

    assert ServiceToken.objects.get().revoked_at is not None
    assert bot.get(f"{API}/audit").status_code == 401


def test_a_changed_person_is_recorded_once(sso_client):
    otto = sso_client("otto.operator", OPERATOR_GROUPS)
    otto.get("/")
    recorded = SeenRoles.objects.get().recorded_at

    regroup(otto, [*OPERATOR_GROUPS, "finance"]).get("/")  # a new group, the same roles
    changed = SeenRoles.objects.get()
    assert changed.groups == ["dashboard-operators", "finance"] and changed.recorded_at > recorded
    again = [sql for sql in queries_of(otto, "/") if "dashboard_seenroles" in sql]
    assert len(again) == 1 and again[0].startswith("SELECT")  # a read, no write
    # Another browser of theirs finds the row as it is: a read, no write.
    elsewhere = queries_of(sso_client("otto.operator", ["finance", *OPERATOR_GROUPS]), "/")
    assert not any("seenroles" in sql and not sql.startswith("SELECT") for sql in elsewhere)
    assert SeenRoles.objects.get().recorded_at == changed.recorded_at


# ---- revoke every token of one person -------------------------------------------------------


def csrf_of(client: Client) -> str:
    from django.conf import settings

    client.get("/tokens/")
    return client.cookies[settings.CSRF_COOKIE_NAME].value


def test_an_admin_revokes_every_token_of_someone_who_left(sso_client, make_token):
    ada_bots = [make_token(name, "operator", created_by="ada.admin")[0] for name in ("a1", "a2")]
    bea_bot, _ = make_token("b1", "operator", created_by="bea.admin")
    cid = sso_client("cid.admin", ADMIN_GROUPS, enforce_csrf_checks=True)
    assert "ada.admin" in cid.get("/tokens/").context["creators"]

    response = cid.post(
        "/tokens/revoke-all/", {"created_by": "ada.admin", "csrfmiddlewaretoken": csrf_of(cid)}
    )

    assert response.status_code == 302
    for bot in ada_bots:
        assert bot.get(f"{API}/rollouts").json()["code"] == "auth.token_revoked"
    assert bea_bot.get(f"{API}/rollouts").status_code == 200
    events = AuditEvent.objects.filter(action="token.revoke").order_by("target")
    assert [(e.actor, e.target, e.details["all_made_by"]) for e in events] == [
        ("cid.admin", "token:a1", "ada.admin"),
        ("cid.admin", "token:a2", "ada.admin"),
    ]
    assert set(
        ServiceToken.objects.exclude(revoked_by="").values_list("revoked_by", flat=True)
    ) == {"cid.admin"}
    page = cid.get("/tokens/")
    assert page.context["creators"] == ["bea.admin"]
    again = cid.post(
        "/tokens/revoke-all/", {"created_by": "ada.admin", "csrfmiddlewaretoken": csrf_of(cid)}
    )
    assert again.status_code == 302
    assert AuditEvent.objects.filter(action="token.revoke").count() == 2


@pytest.mark.parametrize("groups", [VIEWER_GROUPS, OPERATOR_GROUPS, ["dashboard-approvers"]])
def test_revoking_all_is_refused_to_non_admins(groups, sso_client, make_token):
    bot, _ = make_token("a1", "operator", created_by="ada.admin")
    someone = sso_client("sam.someone", groups)

    response = someone.post("/tokens/revoke-all/", {"created_by": "ada.admin"})

    assert response.status_code == 403
    assert bot.get(f"{API}/rollouts").status_code == 200
    refusal = AuditEvent.objects.get(action="access.denied")
    assert refusal.details["required_role"] == "admin"


def test_revoking_all_needs_the_csrf_token(sso_client, make_token):
    bot, _ = make_token("a1", "operator", created_by="ada.admin")
    cid = sso_client("cid.admin", ADMIN_GROUPS, enforce_csrf_checks=True)
    cid.get("/tokens/")

    response = cid.post("/tokens/revoke-all/", {"created_by": "ada.admin"})

    assert response.status_code == 403
    assert bot.get(f"{API}/rollouts").status_code == 200
    assert ServiceToken.objects.get().revoked_at is None
    assert AuditEvent.objects.filter(action="csrf.refused").exists()


def test_a_revoked_token_is_not_revoked_again_by_its_creators_demotion(sso_client, make_token):
    _, issued = make_token("a1", "operator", created_by="ada.admin")
    tokens.revoke(issued.token, by="cid.admin")

    sso_client("ada.admin", VIEWER_GROUPS).get("/")

    token = ServiceToken.objects.get()
    assert (token.revoked_by, token.revoked_reason) == ("cid.admin", "")
    assert token.revoked_at < timezone.now()
    assert not AuditEvent.objects.filter(action="token.revoke").exists()


# --- a creator never seen again (removed at the proxy) ------------------------------------
UNSEEN = "auth.token_creator_unseen"


def test_a_token_stops_while_its_creator_is_not_seen_and_works_once_they_are(
    sso_client, small_fleet, settings
):
    settings.TOKEN_CREATOR_UNSEEN_DAYS = 30
    ada = sso_client("ada.admin", ADMIN_GROUPS)
    bot = made_on_page(ada, "deploy-bot", "operator")
    assert bot.get(f"{API}/audit").status_code == 200

    # Removed from every dashboard group at the proxy: the dashboard never sees them again.
    away = timezone.now() - timezone.timedelta(days=31)
    SeenRoles.objects.filter(username="ada.admin").update(last_seen_at=away, recorded_at=away)
    refused = bot.get(f"{API}/audit")
    assert (refused.status_code, refused.json()["code"]) == (401, UNSEEN)
    assert ServiceToken.objects.get().revoked_at is None  # suspended, not revoked

    assert ada.get("/").status_code == 200  # back, with the same groups
    assert bot.get(f"{API}/audit").status_code == 200

    settings.TOKEN_CREATOR_UNSEEN_DAYS = 0  # never
    SeenRoles.objects.filter(username="ada.admin").update(last_seen_at=away, recorded_at=away)
    assert bot.get(f"{API}/audit").status_code == 200


def test_being_seen_is_written_at_most_once_an_hour(sso_client):
    ada = sso_client("ada.admin", ADMIN_GROUPS)
    assert ada.get("/").status_code == 200
    first = SeenRoles.objects.get(username="ada.admin").last_seen_at
    assert first is not None
    assert ada.get("/").status_code == 200
    assert SeenRoles.objects.get(username="ada.admin").last_seen_at == first  # no write

    earlier = timezone.now() - timezone.timedelta(hours=2)
    SeenRoles.objects.filter(username="ada.admin").update(last_seen_at=earlier)
    assert ada.get("/").status_code == 200
    assert SeenRoles.objects.get(username="ada.admin").last_seen_at > earlier
