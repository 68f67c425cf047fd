"""The plan form as an operator found it in a browser: a refused submit opens with a summary
of every problem (focused, each linked to its field, the custom settings open when one of
them is refused), and Custom says what it does to the users on the servers."""

import re
from html.parser import HTMLParser

import pytest

from dashboard.models import Image, Rollout, Server, ServerGroup
from tests.test_plan_flow_fixes import _group

pytestmark = pytest.mark.django_db

CUSTOM = {"preset": "custom", "reason": "CHG-9 summary"}


def _ids(group: ServerGroup) -> list[str]:
    return list(Server.objects.filter(group=group, gone=False).values_list("id", flat=True))


class _Page(HTMLParser):
    """The error summary (its attributes, heading and items) and every id on the page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.summary: dict | None = None
        self.heading = ""
        self.items: list[tuple[str, str]] = []  # (href or "", text)
        self.details_open: dict[str, bool] = {}
        self._depth = 0  # inside the summary
        self._in = ""  # "h2" or "li" while reading its text
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "details" and a.get("id"):
            self.details_open[a["id"]] = "open" in a
        if a.get("id") == "error-summary":
            self.summary = a
            self._depth = 1
        elif self._depth and tag not in ("input", "br"):
            self._depth += 1
        if self._depth and tag == "h2":
            self._in = "h2"
        if self._depth and tag == "li":
            self._in = "li"
            self.items.append(("", ""))
        if self._depth and tag == "a" and self._in == "li":
            self.items[-1] = (a.get("href", ""), self.items[-1][1])

    def handle_endtag(self, tag):
        if self._depth:
            self._depth -= 1
            if tag in ("h2", "li"):
                self._in = ""

    def handle_data(self, data):
        if self._in == "h2":
            self.heading += data
        elif self._in == "li":
            href, text = self.items[-1]
            self.items[-1] = (href, text + data)


def _refused(client, data: dict) -> _Page:
    response = client.post("/rollouts/new/plan/", data)
    assert response.status_code == 400, response.content.decode()[:2000]
    return _Page(response.content.decode())


def test_a_refused_submit_opens_with_a_focused_summary_linking_each_field(synced, operator_client):
    group = _group()
    first = _Page(operator_client.get("/rollouts/new/", {"group": group.id}).content.decode())
    assert first.summary is None  # nothing refused yet: the page opens at its start
    assert not first.details_open["custom-safety"]

    data = {"server": _ids(group), "target_image": group.image_id, **CUSTOM}
    page = _refused(operator_client, {**data, "canary": "-1", "reason": ""})

    assert page.summary is not None, "no error summary"
    assert page.summary["role"] == "alert"
    assert page.summary["tabindex"] == "-1" and "autofocus" in page.summary
    assert page.heading.strip() == "There is a problem"
    # In the order of the page: the canary (under Custom) before the reason (at the end).
    assert page.items == [
        ("#id_canary", "Give a whole number of servers, 0 or more."),
        ("#id_reason", "Say why (a ticket or a few words)."),
    ]
    assert {"id_canary", "id_reason"} <= page.ids  # each link lands on its field
    assert page.details_open["custom-safety"]  # the refused canary is in view


def test_the_summary_links_a_missing_image_to_the_first_image_offered(synced, operator_client):
    group = _group()
    page = _refused(operator_client, {"server": _ids(group), **CUSTOM})

    assert page.items == [("#id_target_image_0", "Choose the image to move to.")]
    assert "id_target_image_0" in page.ids


def test_the_summary_lists_a_problem_with_the_selection_too(synced, operator_client):
    group = _group()
    ids = _ids(group)
    page = _refused(operator_client, {"server": [*ids, ids[0]], "target_image": group.image_id})

    texts = [text for _href, text in page.items]
    assert texts[0] == f"Servers selected twice: {ids[0]}."  # the whole form's, unlinked
    assert page.items[0][0] == ""
    assert ("#id_reason", "Say why (a ticket or a few words).") in page.items


def test_a_refused_custom_setting_opens_the_custom_settings_under_a_preset(synced, operator_client):
    """The warning message is not one a preset sets: refused, it is said even under Careful,
    and the settings holding it are open."""
    group = _group()
    data = {"server": _ids(group), "target_image": group.image_id, **CUSTOM, "preset": "careful"}
    page = _refused(operator_client, {**data, "logoff_message": "x" * 300})

    assert [href for href, _text in page.items] == ["#id_logoff_message"]
    assert page.details_open["custom-safety"]


def test_a_refused_fresh_plan_opens_with_the_summary(synced, operator_client):
    group = _group()
    data = {"server": _ids(group), "target_image": group.image_id, **CUSTOM}
    response = operator_client.post("/rollouts/new/plan/", data)
    assert response.status_code == 302
    old = Rollout.objects.latest("pk")
    Rollout.objects.filter(pk=old.pk).update(state=Rollout.State.DISCARDED)
    Image.objects.filter(id=group.image_id).update(gone=True)  # no plan can be made

    response = operator_client.post(f"/rollouts/new/{old.pk}/replan/")

    assert response.status_code == 400
    page = _Page(response.content.decode())
    assert page.summary is not None and page.items and page.items[0][0] == ""


def test_custom_says_it_disconnects_users_unless_chosen_otherwise(synced, operator_client):
    """What Custom starts from is what it says: the users' setting starts at "change at once"."""
    group = _group()
    response = operator_client.get("/rollouts/new/", {"group": group.id})
    html = response.content.decode()
    assert (
        "left empty: no canary, every server at once, no error budget; unless chosen otherwise, "
        "servers change at once and their users are disconnected"
    ) in html
    assert response.context["form"]["session_policy"].value() == Rollout.SessionPolicy.NONE


def test_with_nothing_selected_the_summary_links_to_no_missing_field(operator_client):
    page = operator_client.post("/rollouts/new/plan/", {"target_image": "x"})
    assert page.status_code == 400
    html = page.content.decode()
    summary = re.search(r'<div class="error-summary".*?</div>', html, re.S).group(0)
    for target in re.findall(r'href="#([^"]+)"', summary):
        assert f'id="{target}"' in html, target
