"""Several projects on the pages: every project by default with a project column, `?project=`
narrowing a page (and kept by the links it builds), the switcher, each project's freshness
and figures, and a failing project's pages saying so."""

import re
from datetime import timedelta
from html import unescape

import pytest
from django.utils import timezone

from dashboard import inventory, projects
from dashboard.cloud.projects import ProjectConfig
from dashboard.forms import ServerFilterForm
from dashboard.models import AuditEvent, Image, Server, ServerGroup, SyncRun

pytestmark = pytest.mark.django_db

BEIJING = ProjectConfig(
    name="beijing", region="cn-north-4", label="Beijing offices", ak_env="X", sk_env="Y"
)
SINGAPORE = ProjectConfig(name="singapore", region="ap-southeast-3", ak_env="X", sk_env="Y")


@pytest.fixture
def two_projects(settings):
    settings.CLOUD_PROJECTS = (BEIJING, SINGAPORE)
    return projects.rows()


@pytest.fixture
def fleet(two_projects):
    """Beijing: 3 servers in one group (2 drifted, 1 busy); Singapore: 2 in one group."""
    beijing, singapore = two_projects
    now = timezone.now()
    for project in two_projects:
        Image.objects.create(project=project, id="img-public", name="win-2026.11", synced_at=now)
    Image.objects.create(project=beijing, id="img-bj", name="bj-private", synced_at=now)
    Image.objects.create(project=singapore, id="img-sg", name="sg-private", synced_at=now)
    bj = ServerGroup.objects.create(
        id="g-bj", project=beijing, name="bj-finance", image_id="img-public", synced_at=now
    )
    sg = ServerGroup.objects.create(
        id="g-sg", project=singapore, name="sg-cad", image_id="img-sg", synced_at=now
    )

    def server(sid, group, image, **extra):
        Server.objects.create(
            id=sid,
            project=group.project,
            name=sid,
            group=group,
            image_id=image,
            synced_at=now,
            drift=image != group.image_id,
            **extra,
        )

    server("bj-1", bj, "img-bj", session_count=2)
    server("bj-2", bj, "img-bj", job_status="RUNNING")
    server("bj-3", bj, "img-public")
    server("sg-1", sg, "img-sg", session_count=5)
    server("sg-2", sg, "img-public")
    for project, ago in ((beijing, 3), (singapore, 30)):
        SyncRun.objects.create(
            project=project, state="succeeded", finished_at=now - timedelta(minutes=ago)
        )
    inventory.recount_figures()
    return two_projects


def names(response) -> list[str]:
    return [s.name for s in response.context["page"]]


def text(response) -> str:
    """The page's words as a reader sees them: inline elements join their neighbours."""
    html = re.sub(r"</?(?:time|strong|span|a)\b[^>]*>", "", response.content.decode())
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def column_headers(response) -> list[str]:
    html = response.content.decode()
    return [unescape(re.sub(r"<[^>]+>", "", h)).strip() for h in re.findall(r"<th\b.*?</th>", html)]


# --- every project by default, with a project column -----------------------------------------


@pytest.mark.parametrize("path", ["/servers/", "/groups/", "/images/"])
def test_each_list_shows_every_project_with_a_project_column(viewer_client, fleet, path):
    response = viewer_client.get(path)
    assert "Project" in column_headers(response)
    assert "Beijing offices" in text(response) and "singapore" in text(response)


def test_the_servers_page_lists_both_projects_servers_by_default(viewer_client, fleet):
    assert names(viewer_client.get("/servers/")) == ["bj-1", "bj-2", "bj-3", "sg-1", "sg-2"]


@pytest.mark.parametrize(
    ("path", "context_rows", "expected"),
    [
        ("/servers/", lambda c: [s.name for s in c["page"]], ["sg-1", "sg-2"]),
        ("/groups/", lambda c: [g.name for g in c["groups"]], ["sg-cad"]),
        ("/images/", lambda c: sorted(i.id for i, _n, _g in c["rows"]), ["img-public", "img-sg"]),
    ],
)
def test_the_project_filter_narrows_each_list(viewer_client, fleet, path, context_rows, expected):
    response = viewer_client.get(path, {"project": "singapore"})
    assert context_rows(response.context) == expected


def test_the_project_filter_combines_with_the_other_filters(viewer_client, fleet):
    assert names(viewer_client.get("/servers/", {"project": "beijing", "drift": "yes"})) == [
        "bj-1",
        "bj-2",
    ]
    assert names(viewer_client.get("/servers/", {"drift": "yes"})) == ["bj-1", "bj-2", "sg-2"]


def test_image_usage_is_counted_per_project(viewer_client, fleet):
    rows = viewer_client.get("/images/").context["rows"]
    usage = {(i.project.name, i.id): (n, [g.name for g in groups]) for i, n, groups in rows}
    assert usage[("beijing", "img-public")] == (1, ["bj-finance"])
    assert usage[("singapore", "img-public")] == (1, [])
    assert usage[("singapore", "img-sg")] == (1, ["sg-cad"])


def test_a_public_image_in_both_projects_is_offered_once_in_the_filter(viewer_client, fleet):
    html = viewer_client.get("/servers/").content.decode()
    assert html.count('<option value="img-public">') == 1


def test_the_server_page_names_its_project(viewer_client, fleet):
    response = viewer_client.get("/servers/sg-2/")
    assert re.search(r"<dt>Project</dt><dd><a [^>]*>singapore</a>", response.content.decode())


# --- the switcher and links that keep ?project= ----------------------------------------------


def switcher(response) -> str:
    found = re.search(
        r'<form [^>]*class="project-switch".*?</form>', response.content.decode(), re.S
    )
    assert found, "no project switcher"
    return found.group(0)


def test_the_switcher_offers_all_projects_and_each_title_with_a_label(viewer_client, fleet):
    form = switcher(viewer_client.get("/groups/", {"project": "beijing"}))
    assert 'method="get"' in form and 'action="/groups/"' in form
    assert '<label for="project-switch">Project</label>' in form
    options = re.findall(r'<option value="([^"]*)"( selected)?>([^<]*)</option>', form)
    assert options == [
        ("", "", "All projects"),
        ("beijing", " selected", "Beijing offices"),
        ("singapore", "", "singapore"),
    ]
    assert '<button type="submit"' in form  # no script needed to switch


def test_the_switcher_keeps_the_filters_and_drops_the_cursor(viewer_client, fleet, monkeypatch):
    import dashboard.views.inventory as views

    monkeypatch.setattr(views, "PAGE_SIZE", 1)
    first = viewer_client.get("/servers/", {"drift": "yes", "project": "beijing"})
    cursor = first.context["page"].next_cursor
    form = switcher(viewer_client.get("/servers/", {"drift": "yes", "project": "beijing",
                                                    "cursor": cursor}))  # fmt: skip
    hidden = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form)
    assert hidden == [("drift", "yes")]


def test_from_a_page_without_a_project_filter_the_switcher_goes_to_the_overview(
    viewer_client, fleet
):
    form = switcher(viewer_client.get("/servers/bj-1/"))
    assert 'action="/"' in form and 'type="hidden"' not in form


def test_the_navigation_keeps_the_chosen_project(viewer_client, fleet):
    html = viewer_client.get("/images/", {"project": "singapore"}).content.decode()
    nav = re.search(r'<nav id="site-nav".*?</nav>', html, re.S).group(0)
    for path in ["/", "/groups/", "/servers/", "/images/", "/rollouts/", "/audit/"]:
        assert f'href="{path}?project=singapore"' in nav, path


def test_pagination_links_keep_the_project(viewer_client, fleet, monkeypatch):
    import dashboard.views.inventory as views

    monkeypatch.setattr(views, "PAGE_SIZE", 1)
    seen, response = [], viewer_client.get("/servers/", {"project": "beijing"})
    while True:
        seen += names(response)
        following = re.search(r'href="(\?[^"]*)"[^>]*>next', response.content.decode())
        if following is None:
            break
        link = unescape(following.group(1))
        assert "project=beijing" in link
        response = viewer_client.get("/servers/" + link)
    assert seen == ["bj-1", "bj-2", "bj-3"]


def test_sorting_and_filter_links_keep_the_project(viewer_client, fleet):
    html = viewer_client.get("/servers/", {"project": "beijing", "sort": "-name"}).content.decode()
    assert 'href="?project=beijing&amp;sort=name"' in html
    assert '<input type="hidden" name="project" value="beijing">' in html  # the filter form
    assert 'href="/servers/?project=beijing">Clear</a>' in html
    assert 'name="filter" value="project=beijing&amp;sort=-name"' in html


def test_an_htmx_filter_of_a_project_returns_only_its_servers(viewer_client, fleet):
    response = viewer_client.get(
        "/servers/", {"project": "singapore", "q": "1"}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert "<html" not in html and names(response) == ["sg-1"]


def test_a_filter_of_a_project_alone_never_becomes_a_rollout_selection(fleet):
    assert ServerFilterForm.for_fleet({"project": "beijing"}).selection() is None
    assert ServerFilterForm.for_fleet({"project": "beijing", "drift": "yes"}).selection() == [
        "bj-1",
        "bj-2",
    ]


def test_the_api_form_refuses_an_unknown_project_rather_than_widening(fleet):
    form = ServerFilterForm.for_fleet({"project": "mars", "drift": "yes"})
    assert not form.is_valid() and "project" in form.errors


# --- an unknown project -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/servers/", "/groups/", "/images/", "/audit/"])
def test_an_unknown_project_shows_every_project_and_says_so(viewer_client, fleet, path):
    response = viewer_client.get(path, {"project": "mars"})
    assert response.status_code == 200
    assert "No project is called “mars”: showing every project." in text(response)


def test_an_unknown_project_keeps_the_other_filters_and_leaves_the_links(viewer_client, fleet):
    response = viewer_client.get("/servers/", {"project": "mars", "drift": "yes"})
    assert names(response) == ["bj-1", "bj-2", "sg-2"]
    assert "mars" not in response.context["query"]


# --- freshness, figures and a failing project ----------------------------------------------


def test_the_freshness_line_names_the_stalest_project(viewer_client, fleet):
    page = text(viewer_client.get("/groups/"))
    assert "Data from 30 min ago (oldest: singapore)" in page
    assert "Data from 3 min ago" in text(viewer_client.get("/groups/", {"project": "beijing"}))


def test_a_project_never_synced_is_named_as_such(viewer_client, fleet):
    SyncRun.objects.filter(project__name="singapore").delete()
    assert "singapore not synced yet" in text(viewer_client.get("/servers/"))


@pytest.fixture
def singapore_failing(fleet):
    SyncRun.objects.create(
        project=fleet[1],
        state="failed",
        finished_at=timezone.now() - timedelta(minutes=2),
        error="IAM refused the token: APIGW.0301",
    )
    return fleet


def test_the_overview_shows_each_projects_freshness_and_a_failure_as_a_warning(
    viewer_client, singapore_failing
):
    html = viewer_client.get("/").content.decode()
    rows = dict(re.findall(r'<tr data-project="([^"]+)">(.*?)</tr>', html, re.S))
    beijing = " ".join(unescape(re.sub(r"<[^>]+>", " ", rows["beijing"])).split())
    singapore = rows["singapore"]
    assert "synced 3 min ago" in beijing and "failed" not in beijing
    assert '<span class="badge warn">sync failed' in singapore
    assert "IAM refused the token: APIGW.0301" in singapore


@pytest.mark.parametrize("path", ["/servers/", "/groups/", "/images/", "/servers/sg-1/"])
def test_a_failing_projects_pages_say_so(viewer_client, singapore_failing, path):
    page = text(viewer_client.get(path, {"project": "singapore"}))
    assert "singapore: sync failed 2 min ago: IAM refused the token: APIGW.0301" in page


@pytest.mark.parametrize("path", ["/", "/servers/", "/groups/", "/images/"])
def test_the_freshness_badge_names_a_failing_project_on_every_page(
    viewer_client, singapore_failing, path
):
    html = viewer_client.get(path).content.decode()
    badge = html[html.index('id="freshness"') : html.index('data-announce="#freshness"')]
    assert re.search(
        r'<span class="badge warn">singapore: sync failed <time [^>]+>2 min ago', badge
    )


def test_a_healthy_projects_pages_say_nothing_of_the_other_ones_failure(
    viewer_client, singapore_failing
):
    assert "sync failed" not in text(viewer_client.get("/servers/", {"project": "beijing"}))


def test_the_overview_shows_each_projects_stored_figures(viewer_client, fleet):
    response = viewer_client.get("/")
    figures = {f.project.name: (n.servers, n.servers_drifted, n.servers_busy, n.sessions, n.groups)
               for f, n in response.context["project_rows"]}  # fmt: skip
    assert figures == {"beijing": (3, 2, 1, 2, 1), "singapore": (2, 1, 0, 5, 1)}
    assert response.context["totals"]["servers"] == 5
    narrowed = viewer_client.get("/", {"project": "singapore"})
    assert narrowed.context["totals"] == {
        "servers": 2,
        "drift": 1,
        "maintenance": 0,
        "sessions": 5,
        "busy": 0,
    }
    assert narrowed.context["project_rows"] == []


def test_the_overview_figures_are_stored_not_counted(viewer_client, fleet):
    Server.objects.filter(project__name="singapore").delete()  # no recount: figures stay
    rows = viewer_client.get("/").context["project_rows"]
    assert {f.project.name: n.servers for f, n in rows} == {"beijing": 3, "singapore": 2}


# --- sync now -----------------------------------------------------------------------------------


def running() -> list[str]:
    return sorted(SyncRun.objects.filter(state="running").values_list("project__name", flat=True))


def test_refresh_on_a_projects_page_syncs_that_project(operator_client, fleet):
    html = operator_client.get("/servers/", {"project": "beijing"}).content.decode()
    assert '<input type="hidden" name="project" value="beijing">' in html
    operator_client.post("/inventory/sync/", {"project": "beijing", "next": "/servers/"})
    assert running() == ["beijing"]


def test_refresh_of_every_project_syncs_each(operator_client, fleet):
    assert operator_client.post("/inventory/sync/", {"next": "/"}).status_code == 302
    assert running() == ["beijing", "singapore"]
    assert AuditEvent.objects.filter(action="sync.request").count() == 2


def test_refresh_names_its_project_in_the_audit(operator_client, fleet):
    operator_client.post("/inventory/sync/", {"project": "singapore", "next": "/"})
    [event] = AuditEvent.objects.filter(action="sync.request")
    assert event.project.name == "singapore"


@pytest.fixture
def singapore_operator(sso_client, fleet, settings):
    """Sam: a viewer everywhere, and an operator of Singapore through its own group."""
    settings.CLOUD_PROJECTS = (
        BEIJING,
        ProjectConfig(
            name="singapore",
            region="ap-southeast-3",
            ak_env="X",
            sk_env="Y",
            operator_groups=("ops-singapore",),
        ),
    )
    return sso_client("sam", ["dashboard-viewers", "ops-singapore"])


def test_a_project_operator_refreshes_only_the_projects_they_operate(singapore_operator):
    person = singapore_operator

    assert person.post("/inventory/sync/", {"project": "beijing"}).status_code == 403
    assert running() == []
    assert person.post("/inventory/sync/", {"next": "/"}).status_code == 302
    assert running() == ["singapore"]  # every project sam operates, and only those


def test_the_htmx_badge_polls_the_status_of_its_project(operator_client, fleet):
    response = operator_client.post(
        "/inventory/sync/", {"project": "singapore"}, HTTP_HX_REQUEST="true"
    )
    assert 'hx-get="/inventory/sync/status/?project=singapore"' in response.content.decode()
    polled = operator_client.get(
        "/inventory/sync/status/", {"project": "singapore"}, HTTP_HX_REQUEST="true"
    )
    assert polled.status_code == 200 and "refreshing" in polled.content.decode()
    SyncRun.objects.filter(state="running").update(state="succeeded", finished_at=timezone.now())
    done = operator_client.get(
        "/inventory/sync/status/", {"project": "singapore"}, HTTP_HX_REQUEST="true"
    )
    assert done.status_code == 286


# --- audit --------------------------------------------------------------------------------------


def test_the_audit_trail_shows_and_filters_by_project(viewer_client, fleet):
    beijing, singapore = fleet
    AuditEvent.objects.create(actor="otto", action="rollout.plan", project=beijing)
    AuditEvent.objects.create(actor="otto", action="rollout.confirm", project=singapore)
    AuditEvent.objects.create(actor="ada", action="token.issue")
    response = viewer_client.get("/audit/")
    assert "Project" in column_headers(response)
    assert [e.action for e in viewer_client.get("/audit/", {"project": "singapore"}).context[
        "events"]] == ["rollout.confirm"]  # fmt: skip


# --- one project: nothing changes ----------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/servers/", "/groups/", "/images/", "/audit/"])
def test_with_one_project_there_is_no_switcher_and_no_column(viewer_client, path):
    response = viewer_client.get(path)
    assert "project-switch" not in response.content.decode()
    assert "Project" not in column_headers(response)


# --- the connection check of a chosen project -------------------------------------------------


def test_the_connection_check_checks_the_chosen_projects_client(
    simulator_factory, settings, monkeypatch, admin_client_sso
):
    from dashboard.simulator.state import SimProject
    from tests.sim_fixtures import cloud_settings

    bj = SimProject(project_id="b" * 32, region="cn-north-4", ak="BJKEY000000000001", sk="bj")
    sg = SimProject(project_id="5" * 32, region="ap-southeast-3", ak="SGKEY000000000001", sk="sg")
    sim = simulator_factory(projects=(bj, sg))
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, **cloud_settings(sim), "VERIFY_TLS": False}
    for name, value in {"BJ_AK": bj.ak, "BJ_SK": bj.sk, "SG_AK": sg.ak, "SG_SK": sg.sk}.items():
        monkeypatch.setenv(name, value)
    settings.CLOUD_PROJECTS = (
        ProjectConfig(name="beijing", region=bj.region, project_id=bj.project_id,
                      ak_env="BJ_AK", sk_env="BJ_SK"),
        ProjectConfig(name="singapore", region=sg.region, project_id=sg.project_id,
                      ak_env="SG_AK", sk_env="SG_SK"),
    )  # fmt: skip

    response = admin_client_sso.get("/cloud/", {"project": "singapore"})

    report = response.context["report"]
    assert report.ok, report
    assert report.project_id == sg.project_id
    assert sim.state.project(sg.project_id).requests()
    assert not sim.state.project(bj.project_id).requests()
    html = response.content.decode()
    assert '<option value="singapore" selected>singapore (ap-southeast-3)</option>' in html
    default = admin_client_sso.get("/cloud/").context["report"]
    assert default.project_id == bj.project_id


def test_the_connection_check_of_an_unknown_project_checks_the_default_and_says_so(
    admin_client_sso, two_projects
):
    response = admin_client_sso.get("/cloud/", {"project": "mars"})
    assert response.status_code == 200
    assert response.context["checked"].name == "beijing"
    assert "No project is called “mars”: checking Beijing offices" in text(response)


def test_rows_offer_planning_only_in_projects_the_person_operates(singapore_operator):
    person = singapore_operator

    groups = person.get("/groups/").content.decode()
    assert "/rollouts/new/?group=g-sg" in groups
    assert "/rollouts/new/?group=g-bj" not in groups
    servers = person.get("/servers/").content.decode()
    assert 'name="server" value="sg-1"' in servers
    assert 'name="server" value="bj-1"' not in servers


def test_the_overview_of_every_project_names_its_last_sync_as_any_projects(viewer_client, fleet):
    every = viewer_client.get("/").content.decode()
    assert "Latest sync of any project" in every and "Data column above" in every
    one = viewer_client.get("/", {"project": "beijing"}).content.decode()
    assert "<h2>Last sync</h2>" in one and "Latest sync of any project" not in one
