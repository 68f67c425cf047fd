"""The servers page: refused filter values, the frozen badge, image names per project."""

import re
from html import unescape

import pytest
from django.utils import timezone

from dashboard import inventory, projects
from dashboard.cloud.projects import ProjectConfig
from dashboard.models import Image, Server, ServerGroup

pytestmark = pytest.mark.django_db

UNKNOWN_GROUP = "00000000-dead-beef-0000-000000000000"


@pytest.fixture
def fleet():
    """Two groups on img-new; fin-1, fin-3 and cad-1 drifted; cad-2 stopped; fin-2 frozen."""
    now = timezone.now()
    Image.objects.create(id="img-new", name="win-2026.11", synced_at=now)
    Image.objects.create(id="img-old", name="win-2026.09", synced_at=now)
    fin = ServerGroup.objects.create(id="g-fin", name="finance", image_id="img-new", synced_at=now)
    cad = ServerGroup.objects.create(id="g-cad", name="cad", image_id="img-new", synced_at=now)

    def server(sid, group, image, **extra):
        Server.objects.create(
            id=sid,
            name=sid,
            group=group,
            image_id=image,
            synced_at=now,
            drift=image != group.image_id,
            **extra,
        )

    server("fin-1", fin, "img-old")
    server("fin-2", fin, "img-new", status="FREEZE", frozen=True)
    server("fin-3", fin, "img-old", status="REGISTERED", frozen=True)
    server("cad-1", cad, "img-old")
    server("cad-2", cad, "img-new", status="STOPPED")
    inventory.recount_figures()


def names(response) -> list[str]:
    return [s.name for s in response.context["page"]]


def text(html: str) -> str:
    """The words a reader sees."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def refusal(html: str) -> str:
    found = re.search(r'<div id="refused-filters" role="alert">.*?</div>', html, re.S)
    return text(found.group(0)) if found else ""


def row_of(html: str, name: str) -> str:
    return next(row for row in re.findall(r"<tr>.*?</tr>", html, re.S) if f">{name}</a>" in row)


# --- 1. a refused filter value is named, the others still apply, nothing fleet-wide ---------


def test_an_unknown_group_is_named_and_the_drift_filter_still_applies(operator_client, fleet):
    response = operator_client.get("/servers/", {"group": UNKNOWN_GROUP, "drift": "yes"})
    html = response.content.decode()
    assert response.status_code == 200
    assert names(response) == ["cad-1", "fin-1", "fin-3"]
    said = refusal(html)
    assert "These filters are not valid and were left out:" in said
    assert f"Group: Select a valid choice. {UNKNOWN_GROUP} is not one of" in said
    # The form shows what was applied: drift, and no group.
    assert '<option value="yes" selected>yes</option>' in html
    assert '<option value="" selected>all groups</option>' in html


@pytest.mark.parametrize(
    "params",
    [
        {"group": UNKNOWN_GROUP, "drift": "yes"},
        {"q": "x" * 201, "drift": "yes"},
        {"status": "bogus", "drift": "yes"},
        {"group": UNKNOWN_GROUP},
    ],
    ids=["unknown group", "long search", "unknown status", "unknown group alone"],
)
def test_a_refused_value_offers_nothing_for_every_matching_server(operator_client, fleet, params):
    html = operator_client.get("/servers/", params).content.decode()
    assert refusal(html)
    assert "Plan for all" not in html
    assert "matching</button>" not in html and "select-all-matching" not in html
    assert "Update this group" not in html
    assert "Plan rollout for selected" in html  # ticked servers are still fine


def test_a_search_over_200_characters_is_refused_and_the_status_filter_kept(operator_client, fleet):
    response = operator_client.get("/servers/", {"q": "x" * 250, "status": "STOPPED"})
    assert names(response) == ["cad-2"]
    said = refusal(response.content.decode())
    assert "Search: Ensure this value has at most 200 characters (it has 250)." in said
    assert 'name="q" id="id_q" value=""' in response.content.decode()


def test_an_unknown_status_is_named(viewer_client, fleet):
    response = viewer_client.get("/servers/", {"status": "bogus", "drift": "yes"})
    assert names(response) == ["cad-1", "fin-1", "fin-3"]
    assert "Status: Select a valid choice. bogus is not one of" in refusal(
        response.content.decode()
    )


def test_a_huge_refused_value_is_cut_in_the_message(viewer_client, fleet):
    html = viewer_client.get("/servers/", {"group": "g" * 5000}).content.decode()
    assert 0 < len(refusal(html)) < 600


def test_the_htmx_fragment_names_the_refused_value_too(operator_client, fleet):
    response = operator_client.get(
        "/servers/", {"status": "bogus", "drift": "yes"}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert "<html" not in html and "Status: Select a valid choice." in refusal(html)
    assert "Plan for all" not in html


def test_the_page_links_keep_the_refused_value_so_every_page_says_so(viewer_client, fleet):
    response = viewer_client.get("/servers/", {"status": "bogus", "drift": "yes"})
    assert response.context["query"] == "status=bogus&drift=yes"


def test_a_valid_filter_still_offers_the_whole_filter(operator_client, fleet):
    html = operator_client.get("/servers/", {"group": "g-fin", "drift": "yes"}).content.decode()
    assert not refusal(html)
    assert "Plan for all 2 matching" in html and "Update this group" in html


def test_the_whole_fleet_is_not_offered_for_a_plan(operator_client, fleet):
    # A rollout never takes the whole fleet: the button would only be refused.
    html = operator_client.get("/servers/").content.decode()
    assert "Plan for all" not in html and "Plan rollout for selected" in html


def test_an_invalid_sort_is_named_and_the_page_sorts_by_name(viewer_client, fleet):
    response = viewer_client.get("/servers/", {"sort": "password"})
    assert names(response) == ["cad-1", "cad-2", "fin-1", "fin-2", "fin-3"]
    assert "Sort: Select a valid choice." in refusal(response.content.decode())
    assert '<input type="hidden" name="sort" value="name">' in response.content.decode()


# --- 3. Back after htmx paging asks the server for the whole page ---------------------------


def test_a_history_restore_request_gets_the_whole_page(operator_client, fleet):
    response = operator_client.get(
        "/servers/",
        {"drift": "yes"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_HISTORY_RESTORE_REQUEST="true",
    )
    html = response.content.decode()
    assert "<html" in html and 'id="selection-bar"' in html
    assert 'hx-history="false"' in html  # so htmx keeps no stale snapshot of it


# --- 4. a frozen server shows "frozen" once -------------------------------------------------


def test_a_frozen_server_shows_frozen_once_in_the_list(viewer_client, fleet):
    html = viewer_client.get("/servers/").content.decode()
    assert text(row_of(html, "fin-2")).count("frozen") == 1
    # Frozen while registered: both words, each once.
    row = text(row_of(html, "fin-3"))
    assert row.count("frozen") == 1 and "registered" in row


def test_a_frozen_server_shows_frozen_once_on_its_page(viewer_client, fleet):
    html = viewer_client.get("/servers/fin-2/").content.decode()
    status = re.search(r"<dt>Status</dt><dd>(.*?)</dd>", html, re.S).group(1)
    assert text(status).count("frozen") == 1


def test_a_server_and_vm_both_frozen_say_so_in_one_word(viewer_client, fleet):
    Server.objects.filter(pk="fin-2").update(vm_status="FREEZE")
    Server.objects.filter(pk="cad-1").update(status="REGISTERED", vm_status="ACTIVE")

    frozen = viewer_client.get("/servers/fin-2/").content.decode()
    running = viewer_client.get("/servers/cad-1/").content.decode()

    status = text(re.search(r"<dt>Status</dt><dd>(.*?)</dd>", frozen, re.S).group(1))
    assert status.startswith("frozen (the server and its VM)") and status.count("frozen") == 1
    assert "registered · VM running" in text(running)


# --- a selection of all matching names its filters --------------------------------------------


def test_a_selection_of_all_matching_names_its_filters_escaped(operator_client, fleet):
    query = "q=fin%3Cb%3E&group=g-fin&drift=yes"
    server = Server.objects.get(pk="fin-1")
    server.name = "fin<b>1"
    server.save()  # and its search text
    operator_client.post("/rollouts/selection/", {"all_matching": "1", "filter": query})

    elsewhere = operator_client.get("/servers/").content.decode()
    named = re.search(r'<span class="muted small" id="selection-filter">(.*?)</span>', elsewhere)
    assert named, "the bar names the filter"
    assert "Search: “fin&lt;b&gt;” · Group: finance · Not on group image: yes" in named.group(1)
    assert f'href="/servers/?{query.replace("&", "&amp;")}"' in named.group(1)

    here = operator_client.get(f"/servers/?{query}").content.decode()
    assert "(all matching the filters shown: Search:" in here


# --- 5. with every project shown, each image is named with its projects ---------------------


@pytest.fixture
def two_projects(settings):
    settings.CLOUD_PROJECTS = (
        ProjectConfig(name="beijing", region="cn-north-4", label="Beijing", ak_env="X", sk_env="Y"),
        ProjectConfig(name="singapore", region="ap-southeast-3", ak_env="X", sk_env="Y"),
    )
    beijing, singapore = projects.rows()
    now = timezone.now()
    # Each project's own image, with the same name; a public image in both.
    Image.objects.create(project=beijing, id="img-bj", name="win-golden", synced_at=now)
    Image.objects.create(project=singapore, id="img-sg", name="win-golden", synced_at=now)
    for project in (beijing, singapore):
        Image.objects.create(project=project, id="img-public", name="win-2026.11", synced_at=now)
    return beijing, singapore


def image_options(html: str) -> list[str]:
    select = re.search(r'<select name="image".*?</select>', html, re.S).group(0)
    return [unescape(label) for label in re.findall(r"<option[^>]*>(.*?)</option>", select)]


def test_all_projects_label_each_image_with_its_projects(viewer_client, two_projects):
    options = image_options(viewer_client.get("/servers/").content.decode())
    assert options == [
        "any image",
        "win-2026.11 (Beijing, singapore)",
        "win-golden (Beijing)",
        "win-golden (singapore)",
    ]


def test_one_project_names_its_images_plainly(viewer_client, two_projects):
    html = viewer_client.get("/servers/", {"project": "singapore"}).content.decode()
    assert image_options(html) == ["any image", "win-2026.11", "win-golden"]
