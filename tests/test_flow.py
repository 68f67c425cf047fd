"""The operator's flow through the views: group first, stored selections, presets and
sign-off, forms people can use, cancel and revert that say what they do, exports, the second
demo identity. The inventory comes from the simulator over real HTTP (a sync)."""

import csv
import io
import json
import re
from html.parser import HTMLParser

import pytest
from django.utils import timezone

from dashboard.models import (
    Rollout,
    RolloutEvent,
    RolloutServer,
    RolloutWave,
    Selection,
    Server,
    ServerGroup,
)
from dashboard.rollouts import lifecycle, signoff
from tests.rollout_helpers import confirm_from_page

pytestmark = pytest.mark.django_db


def _group_with_drift() -> ServerGroup:
    return ServerGroup.objects.filter(servers_drifted__gt=0, os_type="Windows").order_by("name")[0]


def _windows_groups() -> list[ServerGroup]:
    groups = ServerGroup.objects.filter(os_type="Windows", servers_live__gt=0).order_by("name")
    return [g for g in groups if g.image_id][:2]


def _plan(client, data: dict) -> Rollout:
    response = client.post("/rollouts/new/plan/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    return Rollout.objects.latest("pk")


# ---- 1. group first ---------------------------------------------------------------------


def test_a_bare_new_rollout_is_an_empty_state_pointing_to_groups_and_servers(
    synced, operator_client
):
    page = operator_client.get("/rollouts/new/")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="rollout-empty"' in html
    assert 'href="/groups/"' in html and 'href="/servers/"' in html
    assert 'name="target_image"' not in html  # no image is pre-picked for anything
    # A filter that narrows nothing (a sort only) is no selection either.
    assert 'id="rollout-empty"' in operator_client.get("/rollouts/new/?sort=name").content.decode()


def test_a_new_rollout_for_an_unknown_group_names_it(operator_client):
    html = operator_client.get("/rollouts/new/", {"group": "bad"}).content.decode()

    assert 'id="rollout-empty"' in html
    assert "No group with id “bad”." in html


def test_a_new_rollout_for_a_group_that_is_gone_says_so(synced, operator_client):
    group = _group_with_drift()
    ServerGroup.objects.filter(pk=group.pk).update(gone=True)

    html = operator_client.get("/rollouts/new/", {"group": group.id}).content.decode()

    assert 'id="rollout-empty"' in html
    assert f"The group “{group.name}” no longer exists." in html


def test_the_groups_list_offers_update_this_group(synced, operator_client):
    group = _group_with_drift()
    html = operator_client.get("/groups/").content.decode()
    assert f'href="/rollouts/new/?group={group.id}"' in html
    assert "Update this group" in html


def test_update_this_group_marks_the_group_image_recommended_first_and_chosen(
    synced, operator_client
):
    group = _group_with_drift()
    page = operator_client.get("/rollouts/new/", {"group": group.id})
    form = page.context["form"]
    assert form.options[0].image.id == group.image_id
    assert form.initial["target_image"] == group.image_id
    html = page.content.decode()
    assert html.index("Recommended") < html.index(form.options[1].image.name)
    assert f"Update {group.name}" in html


def test_a_selection_across_groups_defaults_to_each_group_image(synced, operator_client):
    first, second = _windows_groups()
    ids = list(
        Server.objects.filter(group__in=[first, second], gone=False).values_list("id", flat=True)
    )
    page = operator_client.post("/rollouts/new/", {"scope": "selected", "server": ids})
    assert page.status_code == 302
    page = operator_client.get(page["Location"])
    form = page.context["form"]
    assert form.per_group and form.initial["target_image"] == "group"
    rollout = _plan(
        operator_client,
        {**_scope(page), "target_image": "group", "preset": "custom", "reason": "CHG-7"},
    )
    targets = {(r.group_id, r.to_image_id) for r in rollout.servers.all() if r.verdict != "blocked"}
    assert targets <= {(first.id, first.image_id), (second.id, second.image_id)}
    assert {g for g, _ in targets} == {first.id, second.id}
    plan_page = operator_client.get(f"/rollouts/new/{rollout.pk}/").content.decode()
    assert 'id="per-group"' in plan_page
    assert first.name in plan_page and second.name in plan_page


def test_one_image_across_groups_needs_an_explicit_confirmation(synced, operator_client):
    first, second = _windows_groups()
    ids = list(
        Server.objects.filter(group__in=[first, second], gone=False).values_list("id", flat=True)
    )
    location = operator_client.post("/rollouts/new/", {"scope": "selected", "server": ids})
    page = operator_client.get(location["Location"])
    data = {**_scope(page), "target_image": first.image_id, "preset": "custom", "reason": "x"}
    refused = operator_client.post("/rollouts/new/plan/", data)
    assert refused.status_code == 400
    html = refused.content.decode()
    assert 'id="id_one_image_for_all_error"' in html
    assert re.search(r'id="id_one_image_for_all"[^>]*aria-invalid="true"', html) or re.search(
        r'aria-invalid="true"[^>]*id="id_one_image_for_all"', html
    )
    rollout = _plan(operator_client, {**data, "one_image_for_all": "on"})
    assert set(
        rollout.servers.exclude(verdict="blocked").values_list("to_image_id", flat=True)
    ) == {first.image_id}
    # The second group's servers that change would drift from their group: said per row.
    for row in rollout.servers.filter(group_id=second.id, verdict="change"):
        assert any(w["code"] == "drift" for w in row.warnings)
    for row in rollout.servers.filter(group_id=first.id, verdict="change"):
        assert not any(w["code"] == "drift" for w in row.warnings)


def _scope(page) -> dict:
    scope = page.context["scope"]
    return dict(scope.fields)


# ---- 2. selections that scale -------------------------------------------------------------


def test_ticks_are_stored_and_survive_paging_and_filter_changes(synced, operator_client):
    first, second = Server.objects.filter(gone=False).order_by("name")[:2]
    for server in (first, second):
        response = operator_client.post(
            "/rollouts/selection/", {"toggle": server.id, "server": server.id}
        )
        assert response.status_code == 302
    # Another filter and another page: the ticks are still there, and the bar counts them.
    other_filter = operator_client.get("/servers/", {"status": "REGISTERED", "sort": "-name"})
    html = other_filter.content.decode()
    assert "2 selected" in html
    assert other_filter.context["selected_ids"] == {first.id, second.id}
    # Unticking one removes only that one.
    operator_client.post("/rollouts/selection/", {"toggle": first.id})
    assert Selection.objects.get().server_ids == [second.id]
    operator_client.post("/rollouts/selection/", {"clear": "1"})
    assert Selection.objects.get().server_ids == []


def test_select_all_matching_takes_every_server_of_the_filter(synced, operator_client):
    group = _group_with_drift()
    response = operator_client.post(
        "/rollouts/selection/", {"all_matching": "1", "filter": f"group={group.id}"}
    )
    assert response.status_code == 302
    expected = set(Server.objects.filter(group=group, gone=False).values_list("id", flat=True))
    assert set(Selection.objects.get().server_ids) == expected
    # Never the whole fleet from an empty filter.
    operator_client.post("/rollouts/selection/", {"clear": "1"})
    operator_client.post("/rollouts/selection/", {"all_matching": "1", "filter": ""})
    assert Selection.objects.get().server_ids == []


def test_the_plan_form_carries_a_selection_id_not_one_field_per_server(synced, operator_client):
    group = _group_with_drift()
    operator_client.post(
        "/rollouts/selection/", {"all_matching": "1", "filter": f"group={group.id}"}
    )
    selection = Selection.objects.get()
    html = operator_client.get(f"/rollouts/new/?selection={selection.pk}").content.decode()
    assert f'name="selection" value="{selection.pk}"' in html
    assert 'name="server"' not in html


def test_someone_elses_selection_is_not_found(synced, operator_client, sso_client):
    group = _group_with_drift()
    operator_client.post(
        "/rollouts/selection/", {"all_matching": "1", "filter": f"group={group.id}"}
    )
    selection = Selection.objects.get()
    other = sso_client("olga.other", ["dashboard-operators"])
    assert other.get(f"/rollouts/new/?selection={selection.pk}").status_code == 404
    response = other.post(
        "/rollouts/new/plan/", {"selection": selection.pk, "target_image": "x", "reason": "x"}
    )
    assert response.status_code == 404


# ---- 3. presets and sign-off ---------------------------------------------------------------


def test_the_careful_preset_sets_canary_signoff_waves_users_and_budget(synced, operator_client):
    group = _group_with_drift()
    page = operator_client.get("/rollouts/new/", {"group": group.id})
    assert page.context["form"].initial["preset"] == "careful"
    rollout = _plan(
        operator_client,
        {
            **_scope(page),
            "target_image": group.image_id,
            "preset": "careful",
            "canary": "junk that Custom would refuse",
            "reason": "CHG-9",
        },
    )
    changing = rollout.servers.filter(verdict="change").count()
    assert rollout.preset == "careful" and rollout.canary_signoff
    assert rollout.canary_size == 1
    assert rollout.failure_budget == 1
    assert rollout.session_policy == Rollout.SessionPolicy.WAIT_LOGOFF
    assert rollout.wave_size == max(1, -(-changing // 10))


def test_custom_uses_the_loose_fields_and_refuses_bad_ones_at_their_field(synced, operator_client):
    group = _group_with_drift()
    page = operator_client.get("/rollouts/new/", {"group": group.id})
    data = {**_scope(page), "target_image": group.image_id, "preset": "custom", "reason": "x"}
    refused = operator_client.post("/rollouts/new/plan/", {**data, "canary": "lots"})
    assert refused.status_code == 400
    html = refused.content.decode()
    field = re.search(r"<input[^>]*name=\"canary\"[^>]*>", html).group(0)
    assert 'aria-invalid="true"' in field and "id_canary_error" in field
    error_at = html.index('id="id_canary_error"')
    assert html.index('name="canary"') < error_at < html.index('name="wave_size"')
    rollout = _plan(operator_client, {**data, "canary": "2", "wave_size": "3"})
    assert (rollout.preset, rollout.canary_size, rollout.wave_size) == ("custom", 2, 3)
    assert not rollout.canary_signoff


def test_the_canary_wave_done_holds_the_rollout_for_signoff_until_resumed(settings, db):
    settings.NOTIFY_WEBHOOK_URL = "http://127.0.0.1:9/hook"
    rollout = Rollout.objects.create(
        created_by="otto", state=Rollout.State.RUNNING, canary_size=1, canary_signoff=True
    )
    canary = RolloutWave.objects.create(rollout=rollout, number=1, size=1, state="done")
    RolloutWave.objects.create(rollout=rollout, number=2, size=3)
    with pytest.MonkeyPatch.context() as patch:
        sent = []
        patch.setattr("dashboard.notify.notify", lambda event, rid: sent.append((event, rid)))
        assert signoff.hold_after_canary(rollout, canary)
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.PAUSED
    assert sent == [("signoff_needed", rollout.pk)]
    event = RolloutEvent.objects.filter(rollout=rollout, wave__isnull=True).first()
    assert event.action == "hold_for_signoff"
    assert signoff.pending(rollout)
    assert lifecycle.allows(rollout, "resume")
    # Without sign-off asked for, or after the last wave, nothing holds.
    assert not signoff.hold_after_canary(rollout, canary)  # already paused
    quiet = Rollout.objects.create(created_by="otto", state="running", canary_size=1)
    wave = RolloutWave.objects.create(rollout=quiet, number=1, size=1, state="done")
    RolloutWave.objects.create(rollout=quiet, number=2, size=1)
    assert not signoff.hold_after_canary(quiet, wave)


def test_the_rollout_page_says_it_waits_for_signoff(operator_client):
    rollout = Rollout.objects.create(
        created_by="otto", state=Rollout.State.RUNNING, canary_size=1, canary_signoff=True
    )
    canary = RolloutWave.objects.create(rollout=rollout, number=1, size=1, state="done")
    RolloutWave.objects.create(rollout=rollout, number=2, size=3)
    signoff.hold_after_canary(rollout, canary)
    html = operator_client.get(f"/rollouts/{rollout.pk}/").content.decode()
    assert 'id="signoff"' in html and "Sign off and continue" in html


# ---- 4. forms people can use ----------------------------------------------------------------


class _Inputs(HTMLParser):
    """Every form control's id and the ids that labels point at (or wrap)."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict] = []
        self.labelled: set[str] = set()
        self._label_depth = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "label":
            self._label_depth += 1
            if a.get("for"):
                self.labelled.add(a["for"])
        if tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit"):
            self.controls.append({**a, "_wrapped": self._label_depth > 0})

    def handle_endtag(self, tag):
        if tag == "label":
            self._label_depth -= 1


def test_every_input_of_the_rollout_form_has_a_label(synced, operator_client):
    group = _group_with_drift()
    parser = _Inputs()
    parser.feed(operator_client.get("/rollouts/new/", {"group": group.id}).content.decode())
    form_controls = [c for c in parser.controls if c.get("name") not in ("q", None)]
    assert form_controls
    unlabelled = [
        c
        for c in form_controls
        if not (c["_wrapped"] or c.get("id") in parser.labelled or c.get("aria-label"))
    ]
    assert unlabelled == []
    assert any(c.get("name") == "reason" and c.get("id") in parser.labelled for c in form_controls)


def test_plan_reasons_are_words_and_blocked_rows_carry_no_disconnect_warning(
    synced, operator_client
):
    group = _group_with_drift()
    linux_or_other = Server.objects.filter(gone=False).exclude(group=group)[:5]
    ids = [
        *Server.objects.filter(group=group).values_list("id", flat=True),
        *[s.id for s in linux_or_other],
    ]
    rollout = _plan(
        operator_client,
        {
            "server": ids,
            "target_image": group.image_id,
            "one_image_for_all": "on",
            "preset": "custom",
            "reason": "x",
        },
    )
    html = operator_client.get(f"/rollouts/new/{rollout.pk}/").content.decode()
    codes = set(RolloutServer.objects.filter(rollout=rollout).values_list("reason_code", flat=True))
    for code in codes - {""}:
        assert f">{code}<" not in html and f" {code} " not in html
    assert ">not_in_maintenance<" not in html and ">active_sessions<" not in html
    for row in rollout.servers.exclude(verdict="change"):
        assert row.warnings == []


def test_cancel_asks_first_and_names_what_it_stops(operator_client):
    rollout = Rollout.objects.create(created_by="otto", state=Rollout.State.RUNNING)
    for i, state in enumerate(["pending", "pending", "running", "succeeded"]):
        RolloutServer.objects.create(
            rollout=rollout,
            server_id=f"s{i}",
            server_name=f"s{i}",
            to_image_id="i",
            verdict="change",
            state=state,
        )
    detail = operator_client.get(f"/rollouts/{rollout.pk}/").content.decode()
    assert f'href="/rollouts/{rollout.pk}/cancel/"' in detail
    assert f'action="/rollouts/{rollout.pk}/cancel/"' not in detail  # no one-click cancel
    page = operator_client.get(f"/rollouts/{rollout.pk}/cancel/").content.decode()
    effects = re.sub(r"<[^>]+>", "", page[page.index('id="cancel-effects"') :])
    assert "2 servers not yet sent will not be sent" in effects
    assert "1 server already changing finishes" in effects
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.RUNNING  # looking changed nothing
    operator_client.post(f"/rollouts/{rollout.pk}/cancel/")
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.CANCELLING
    assert rollout.servers.filter(state="cancelled").count() == 2


# ---- 6. revert -----------------------------------------------------------------------------


def test_revert_names_images_lets_you_pick_and_warns_of_drift(synced, operator_client):
    group = _group_with_drift()
    servers = list(Server.objects.filter(group=group, gone=False, drift=False)[:3])
    old_image = (
        Server.objects.filter(drift=True, group=group).values_list("image_id", flat=True).first()
    )
    rollout = Rollout.objects.create(
        created_by="otto",
        state=Rollout.State.SUCCEEDED,
        target_image_id=group.image_id,
        target_image_name=group.image_name,
    )
    for server in servers:
        RolloutServer.objects.create(
            rollout=rollout,
            server_id=server.id,
            server_name=server.name,
            group_id=group.id,
            group_name=group.name,
            to_image_id=group.image_id,
            verdict="change",
            state="succeeded",
            previous_image_id=old_image,
            finished_at=timezone.now(),
        )
    page = operator_client.get(f"/rollouts/{rollout.pk}/revert/")
    html = page.content.decode()
    from dashboard.models import Image

    assert Image.objects.get(id=old_image).name in html
    assert 'id="revert-drift"' in html and "re-creates drift" in html
    response = operator_client.post(
        f"/rollouts/{rollout.pk}/revert/", {"picked": "1", "server": [servers[0].id]}
    )
    assert response.status_code == 302
    plan = Rollout.objects.latest("pk")
    assert plan.kind == Rollout.Kind.REVERT
    assert list(plan.servers.values_list("server_id", flat=True)) == [servers[0].id]
    row = plan.servers.get()
    assert row.to_image_name == Image.objects.get(id=old_image).name
    if row.verdict == "change":
        assert any(w["code"] == "drift" for w in row.warnings)
    nothing = operator_client.post(f"/rollouts/{rollout.pk}/revert/", {"picked": "1"})
    assert nothing.status_code == 302 and Rollout.objects.latest("pk") == plan


# ---- 7. exports ----------------------------------------------------------------------------


def test_exports_carry_image_names_kind_links_and_utc_times(synced, operator_client):
    group = _group_with_drift()
    page = operator_client.get("/rollouts/new/", {"group": group.id, "drift": "yes"})
    rollout = _plan(
        operator_client,
        {**_scope(page), "target_image": group.image_id, "preset": "custom", "reason": "x"},
    )
    confirm_from_page(operator_client, rollout)
    body = json.loads(operator_client.get(f"/rollouts/{rollout.pk}/export.json").content)
    assert body["kind"] == "plan"
    assert body["url"].endswith(f"/rollouts/{rollout.pk}/")
    assert body["target_image_name"] == group.image_name or body["target_image_name"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", body["created_at"])
    assert all(re.fullmatch(r".+T.+Z", e["at"]) for e in body["events"])
    row = body["servers"][0]
    assert row["to_image_name"] and "from_image_name" in row
    sheet = list(
        csv.DictReader(
            io.StringIO(operator_client.get(f"/rollouts/{rollout.pk}/export.csv").content.decode())
        )
    )
    assert sheet[0]["kind"] == "plan" and sheet[0]["url"].endswith(f"/rollouts/{rollout.pk}/")
    assert "to_image_name" in sheet[0]


# ---- 9. the second demo identity -----------------------------------------------------------


@pytest.fixture
def local_demo(settings):
    """`make run`'s two demo identities (DEBUG on, the first an admin)."""
    settings.DEBUG = True
    settings.DASHBOARD_DEV_USER = "demo"
    settings.DASHBOARD_DEV_GROUPS = ["dashboard-admins"]
    settings.DASHBOARD_DEV_SECOND_USER = "second.approver"
    return settings


def test_the_second_demo_identity_approves_a_protected_rollout(local_demo, client, db):
    rollout = Rollout.objects.create(created_by="demo", state=Rollout.State.AWAITING_APPROVAL)
    page = client.get(f"/rollouts/{rollout.pk}/", REMOTE_ADDR="127.0.0.1").content.decode()
    assert "Approve as second.approver" in page
    assert ">Approve<" not in page  # nobody approves their own rollout
    client.post("/demo/identity/", {"who": "second", "next": f"/rollouts/{rollout.pk}/"})
    page = client.get(f"/rollouts/{rollout.pk}/").content.decode()
    assert "second.approver" in page and ">Approve<" in page
    # One label for the way back, in the header and on the rollout: it names the person.
    assert page.count("Switch back to demo<") == 2 and "first demo person" not in page
    client.post(f"/rollouts/{rollout.pk}/approve/")
    rollout.refresh_from_db()
    assert (rollout.state, rollout.approved_by) == (Rollout.State.QUEUED, "second.approver")


def test_the_second_person_can_reject_with_a_reason_instead(local_demo, client, db):
    from dashboard.models import AuditEvent, RolloutServer

    rollout = Rollout.objects.create(created_by="demo", state=Rollout.State.AWAITING_APPROVAL)
    RolloutServer.objects.create(
        rollout=rollout, server_id="s-1", server_name="s-1", verdict="change", state="pending"
    )
    client.defaults["REMOTE_ADDR"] = "127.0.0.1"
    client.post("/demo/identity/", {"who": "second", "next": f"/rollouts/{rollout.pk}/"})
    page = client.get(f"/rollouts/{rollout.pk}/").content.decode()
    assert 'id="reject-rollout"' in page

    client.post(f"/rollouts/{rollout.pk}/reject/", {"reason": ""})
    assert Rollout.objects.get(pk=rollout.pk).state == Rollout.State.AWAITING_APPROVAL

    answer = client.post(f"/rollouts/{rollout.pk}/reject/", {"reason": "<b>not</b> this week"})
    page = client.get(answer["Location"]).content.decode()

    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.CANCELLED
    assert rollout.servers.get().state == "cancelled"
    assert "&lt;b&gt;not&lt;/b&gt; this week" in page  # on the timeline, escaped
    assert "(rejected)" in page and "(reject)" not in page  # words, not the action's code
    assert "Rejected: nothing of this rollout will be sent." in page
    event = AuditEvent.objects.get(action="rollout.reject")
    assert event.actor == "second.approver"


def test_after_approving_the_second_demo_person_switches_back_from_any_page(local_demo, client, db):
    client.defaults["REMOTE_ADDR"] = "127.0.0.1"
    assert 'id="demo-switch-back"' not in client.get("/servers/").content.decode()
    client.post("/demo/identity/", {"who": "second", "next": "/"})

    page = client.get("/servers/").content.decode()  # a page with no rollout on it
    assert 'id="demo-switch-back"' in page and "second.approver" in page
    client.post("/demo/identity/", {"who": "first", "next": "/servers/"})
    page = client.get("/servers/").content.decode()
    assert 'id="demo-switch-back"' not in page and "second.approver" not in page


def test_signing_out_of_the_local_demo_starts_again_as_its_first_person(local_demo, client, db):
    client.defaults["REMOTE_ADDR"] = "127.0.0.1"
    client.post("/demo/identity/", {"who": "second", "next": "/"})

    signed_out = client.post("/sign-out/")

    assert signed_out["Location"] == "/"  # no proxy to hand over to in the demo
    page = client.get("/", follow=True).content.decode()
    assert "signs you in again as its first person" in page
    assert "second.approver" not in page and 'id="demo-switch-back"' not in page


def test_no_second_identity_outside_the_local_demo(settings, client, db):
    settings.DEBUG = True
    settings.DASHBOARD_DEV_USER = "demo"
    settings.DASHBOARD_DEV_SECOND_USER = "second.approver"
    client.cookies["dashboard_demo_identity"] = "second"
    # Not from loopback: no demo identity at all.
    assert client.get("/", REMOTE_ADDR="10.1.2.3").status_code == 403
    settings.DEBUG = False
    assert client.get("/", REMOTE_ADDR="127.0.0.1").status_code == 403


def test_select_all_matching_is_offered_only_for_a_filter(synced, operator_client):
    group = _group_with_drift()
    unfiltered = operator_client.get("/servers/", {"sort": "name"}).content.decode()
    assert "select-all-matching" not in unfiltered
    html = operator_client.get("/servers/", {"group": group.id}).content.decode()
    assert 'id="select-all-matching"' in html
    assert f'href="/rollouts/new/?group={group.id}"' in html  # the group's own Update


def test_a_retry_of_a_per_group_rollout_keeps_each_server_on_its_group_image(
    synced, operator_client
):
    first, second = _windows_groups()
    ids = list(
        Server.objects.filter(group__in=[first, second], gone=False).values_list("id", flat=True)
    )
    rollout = _plan(
        operator_client,
        {"server": ids, "target_image": "group", "preset": "custom", "reason": "CHG-8"},
    )
    changing = list(rollout.servers.filter(verdict="change"))
    assert changing
    Rollout.objects.filter(pk=rollout.pk).update(state=Rollout.State.FAILED)
    RolloutServer.objects.filter(pk__in=[r.pk for r in changing]).update(state="failed")
    response = operator_client.post(f"/rollouts/{rollout.pk}/retry/")
    assert response.status_code == 302
    retry = Rollout.objects.latest("pk")
    assert retry.retry_of_id == rollout.pk and retry.target_image_id == ""
    wanted = {r.server_id: r.to_image_id for r in changing}
    assert {r.server_id: r.to_image_id for r in retry.servers.all()} == wanted


def test_a_rollout_holds_after_its_canary_against_the_simulator_until_resumed(
    synced, operator_client, cloud_client
):
    from dashboard.rollouts import engine

    group = ServerGroup.objects.filter(os_type="Windows").order_by("-servers_drifted")[0]
    page = operator_client.get("/rollouts/new/", {"group": group.id})
    rollout = _plan(
        operator_client,
        {
            **_scope(page),
            "target_image": group.image_id,
            "preset": "custom",
            "canary": "1",
            "canary_signoff": "on",
            "session_policy": "none",
            "reason": "CHG-11",
        },
    )
    changing = rollout.servers.filter(verdict="change").count()
    assert changing >= 2 and rollout.canary_signoff
    confirm_from_page(operator_client, rollout)
    engine.start(rollout.pk, cloud_client, sleep=lambda s: None)
    synced.advance(3600)  # the canary's job has finished
    engine.tick(rollout.pk, cloud_client)
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.PAUSED
    assert signoff.pending(rollout)
    # Nothing after the canary was sent while it waits.
    assert rollout.servers.exclude(wave=1).filter(verdict="change", job_id="").count() == (
        changing - 1
    )
    html = operator_client.get(f"/rollouts/{rollout.pk}/").content.decode()
    assert "Sign off and continue" in html
    operator_client.post(f"/rollouts/{rollout.pk}/resume/", {"how": "continue"})
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.RUNNING and not signoff.pending(rollout)
    engine.tick(rollout.pk, cloud_client)
    assert rollout.servers.exclude(wave=1).exclude(job_id="").exists()  # the next wave is sent


def test_the_presets_name_their_error_budget_in_the_right_number(synced, operator_client):
    """A budget of one failure reads "1 failure"; a share of the servers keeps the plural."""
    group = ServerGroup.objects.order_by("name").first()
    page = operator_client.get(f"/rollouts/new/?group={group.pk}").content.decode()
    assert "halt after more than 1 failure " in page or "halt after more than 1 failure<" in page
    assert "halt after more than 1 failures" not in page
    assert "halt after more than 5% failures" in page
