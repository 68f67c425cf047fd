"""The plan flow as an operator found it in a browser: a fresh plan after servers vanished,
plans that wait for a second person, counts of servers not sent yet, what the image choices
count, the resume menu, retry plans asked for twice, and the types of each group's image.
The inventory comes from the simulator over real HTTP (a sync)."""

import re

import pytest

from dashboard import inventory
from dashboard.models import Image, Rollout, RolloutServer, Selection, Server, ServerGroup
from dashboard.rollouts import planning, progress
from tests.rollout_helpers import confirm_from_page, movable
from tests.test_i18n import compiled  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

CUSTOM = {
    "preset": "custom",
    "canary": "1",
    "wave_size": "2",
    "failure_budget": "3",
    "soak_minutes": "4",
    "reason": "CHG-77 fresh plans",
}


def _group() -> ServerGroup:
    """A Windows group with drifted servers (some change) and others already on its image."""
    groups = ServerGroup.objects.filter(servers_drifted__gt=0, os_type="Windows")
    return max(groups, key=lambda g: g.servers_drifted)


def _tick(client, ids: list[str]) -> Selection:
    """The servers ticked one by one on the servers page: the person's stored selection."""
    for server_id in ids:
        client.post("/rollouts/selection/", {"toggle": server_id, "server": server_id})
    selection = Selection.objects.get()
    assert sorted(selection.server_ids) == sorted(ids)
    return selection


def _select_all(client, group: ServerGroup) -> Selection:
    client.post("/rollouts/selection/", {"all_matching": "1", "filter": f"group={group.id}"})
    return Selection.objects.get()


def _plan(client, data: dict) -> Rollout:
    response = client.post("/rollouts/new/plan/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    return Rollout.objects.latest("pk")


def _plan_group(client, group: ServerGroup, **extra) -> Rollout:
    selection = _select_all(client, group)
    data = {"selection": selection.pk, "target_image": group.image_id, **CUSTOM, **extra}
    return _plan(client, data)


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# ---- 1. a fresh plan after servers vanished ------------------------------------------------


def _stale_plan(client, synced, cloud_client) -> tuple[Rollout, RolloutServer, RolloutServer]:
    """A plan of a group, then one of its changing servers deleted in the cloud and another
    frozen, the inventory refreshed, and the confirm refused as stale."""
    target, servers = movable(at_least=4)
    ids = [s.id for s in servers]
    data = {"server": ids, "target_image": target.id, "one_image_for_all": "on", **CUSTOM}
    rollout = _plan(client, data)
    deleted, frozen = rollout.servers.filter(verdict="change").order_by("pk")[:2]
    synced.state.delete_server(deleted.server_id)
    synced.state.patch_server(frozen.server_id, freeze=[{"effect": 1, "scene": "ARREAR"}])
    inventory.sync_now(client=cloud_client)
    assert confirm_from_page(client, rollout).status_code == 409
    return rollout, deleted, frozen


def test_a_fresh_plan_leaves_out_a_deleted_server_and_names_it(
    synced, operator_client, cloud_client
):
    old, deleted, frozen = _stale_plan(operator_client, synced, cloud_client)

    response = operator_client.post(f"/rollouts/new/{old.pk}/replan/", follow=True)

    assert response.status_code == 200
    fresh = response.context["rollout"]
    assert fresh.pk != old.pk and fresh.state == Rollout.State.PLANNED
    notices = " ".join(_messages(response))
    assert f"1 server no longer exists and was left out: {deleted.server_name}." in notices
    assert deleted.server_id not in notices
    planned = set(fresh.servers.values_list("server_id", flat=True))
    assert planned == set(old.servers.values_list("server_id", flat=True)) - {deleted.server_id}
    assert fresh.servers.get(server_id=frozen.server_id).verdict == "blocked"


def test_a_fresh_plan_keeps_the_operators_settings(synced, operator_client, cloud_client):
    old, _deleted, _frozen = _stale_plan(operator_client, synced, cloud_client)
    fresh = operator_client.post(f"/rollouts/new/{old.pk}/replan/", follow=True).context["rollout"]
    kept = ("reason", "preset", "canary_size", "wave_size", "failure_budget", "soak_seconds")
    assert [getattr(fresh, f) for f in kept] == ["CHG-77 fresh plans", "custom", 1, 2, 3, 240]


def test_a_selection_holding_a_deleted_server_is_planned_without_it(
    synced, operator_client, cloud_client
):
    group = _group()
    selection = _select_all(operator_client, group)
    gone = Server.objects.get(pk=selection.server_ids[0])
    synced.state.delete_server(gone.pk)
    inventory.sync_now(client=cloud_client)

    page = operator_client.get("/rollouts/new/", {"selection": selection.pk})

    assert page.status_code == 200
    assert page.context["errors"] == []
    assert f"was left out: {gone.name}." in " ".join(_messages(page))
    selection.refresh_from_db()
    assert gone.pk not in selection.server_ids and selection.server_ids
    rollout = _plan(
        operator_client, {"selection": selection.pk, "target_image": group.image_id, **CUSTOM}
    )
    assert not rollout.servers.filter(server_id=gone.pk).exists()


def test_a_gone_server_named_directly_is_refused_by_its_name(synced, operator_client):
    server = Server.objects.filter(drift=True).first()
    Server.objects.filter(pk=server.pk).update(gone=True)
    response = operator_client.post(
        "/rollouts/new/plan/",
        {"server": [server.pk], "target_image": server.group.image_id, "reason": "x"},
    )
    assert response.status_code == 400
    assert f"1 selected server is unknown or gone: {server.name}." in response.content.decode()


def test_the_fresh_form_keeps_the_plans_choices_when_no_plan_can_be_made(synced, operator_client):
    group = _group()
    old = _plan_group(operator_client, group)
    Rollout.objects.filter(pk=old.pk).update(state=Rollout.State.DISCARDED)
    Image.objects.filter(id=group.image_id).update(gone=True)  # no longer offered

    response = operator_client.post(f"/rollouts/new/{old.pk}/replan/")

    assert response.status_code == 400
    form = response.context["form"]
    for name in ("reason", "preset", "canary", "wave_size", "failure_budget", "soak_minutes"):
        assert str(form[name].value()) == CUSTOM[name], name
    html = response.content.decode()
    assert 'value="CHG-77 fresh plans"' in html
    assert re.search(r'value="custom" id="preset-custom" checked', html)


def test_a_discarded_plan_offers_a_fresh_plan_on_its_page(synced, operator_client, cloud_client):
    old, _deleted, _frozen = _stale_plan(operator_client, synced, cloud_client)
    html = operator_client.get(f"/rollouts/new/{old.pk}/").content.decode()
    assert "The plan was stale." in html
    assert f'action="/rollouts/new/{old.pk}/replan/"' in html


# ---- 2. a plan that waits for a second person ----------------------------------------------


def test_the_plan_page_says_a_second_person_must_approve(synced, operator_client, settings):
    settings.PROTECTED_SERVER_GROUPS = ["*"]
    group = _group()
    rollout = _plan_group(operator_client, group)
    html = operator_client.get(f"/rollouts/new/{rollout.pk}/").content.decode()
    assert "A second person must approve this rollout before it starts." in html
    assert "Any approver of this project other than otto.operator can approve it" in html
    assert f"Protected groups: {group.name}." in html
    assert "Confirm and ask for approval: change" in html
    assert "Confirm and start" not in html and "when confirmed" not in html


def test_an_unprotected_plan_still_starts_when_confirmed(synced, operator_client):
    rollout = _plan_group(operator_client, _group())
    html = operator_client.get(f"/rollouts/new/{rollout.pk}/").content.decode()
    assert "Confirm and start: change" in html and "when confirmed" in html
    assert 'id="plan-approval"' not in html


def test_confirming_a_protected_plan_says_it_waits_and_for_whom(synced, operator_client, settings):
    group = _group()
    settings.PROTECTED_SERVER_GROUPS = [group.id]
    rollout = _plan_group(operator_client, group)

    response = confirm_from_page(operator_client, rollout)
    page = operator_client.get(response["Location"])

    assert (
        f"Rollout #{rollout.pk} confirmed. It starts once a second person approves it: "
        "any approver other than otto.operator."
    ) in _messages(page)
    html = page.content.decode()
    assert 'id="approval-wait"' in html
    assert "Waiting for a second person's approval" in html
    assert f"Protected groups: {group.name}." in html


# ---- 3. servers not sent yet are not in progress -------------------------------------------


def _confirmed(client, state: str) -> Rollout:
    rollout = _plan_group(client, _group())
    confirm_from_page(client, rollout)
    Rollout.objects.filter(pk=rollout.pk).update(state=state)
    return rollout


@pytest.mark.parametrize("state", ["paused", "halted", "awaiting_approval"])
def test_servers_not_sent_are_counted_apart_from_those_in_progress(synced, operator_client, state):
    rollout = _confirmed(operator_client, state)
    pending = rollout.servers.filter(state="pending").count()
    assert pending

    html = operator_client.get(f"/rollouts/{rollout.pk}/").content.decode()

    assert "in progress" not in html
    assert f"{pending} not sent yet" in html  # per group
    assert "&amp;state=pending#rollout-servers" in html  # one link away


def test_a_tally_counts_sent_jobs_as_in_progress_and_pending_rows_as_not_sent():
    tally = progress.Tally("wave", 2, {"pending": 3, "submitting": 1, "waiting": 2, "running": 1})
    assert [words for words, _ in tally.parts()] == ["3 in progress", "4 not sent yet"]
    only_pending = progress.Tally("wave", 3, {"pending": 6})
    assert only_pending.parts() == [("6 not sent yet", "pending")]


# ---- 4. what the image choices count -------------------------------------------------------


def test_the_groups_own_image_counts_the_servers_already_on_it(synced, operator_client):
    group = _group()
    page = operator_client.get("/rollouts/new/", {"group": group.id})
    form = page.context["form"]
    first = form.options[0]
    on_it = Server.objects.filter(group=group, gone=False, image_id=group.image_id).count()
    assert first.image.id == group.image_id and first.already == on_it > 0
    assert first.compatible + first.already + first.not_now + first.blocked == first.selected
    html = page.content.decode()
    assert f"{on_it} already on it" in html
    assert f"<strong>{first.compatible}</strong> will change" in html


def test_the_counts_of_an_image_choice_are_joined_the_chinese_way(
    synced, operator_client, settings
):
    from dashboard import translations

    translations.compile_all()
    settings.LOCALE_PATHS = list(settings.LOCALE_PATHS)  # Django drops its cached catalogs
    group = _group()
    english = operator_client.get("/rollouts/new/", {"group": group.id}).content.decode()
    chinese = operator_client.get(
        "/rollouts/new/", {"group": group.id}, headers={"Accept-Language": "zh-CN"}
    ).content.decode()

    assert re.search(r"</strong> will change, \d+ already on it", english)
    assert re.search(r"</strong> 台将更换、\d+ 台已在使用", chinese)
    assert not re.search(r"台将更换, ", chinese)


def test_a_group_whose_servers_are_all_busy_says_why_nothing_is_offered(synced, operator_client):
    group = _group()
    drifted = Server.objects.filter(group=group, gone=False, drift=True)
    busy = drifted.count()
    drifted.update(job_status="RUNNING")  # the rest are already on the group's image
    on_it = Server.objects.filter(group=group, gone=False, image_id=group.image_id).count()

    page = operator_client.get("/rollouts/new/", {"group": group.id})
    html = page.content.decode()

    assert group.image_id not in [o.image.id for o in page.context["form"].options]
    held = re.search(r'<p id="own-image-held">(.*?)</p>', html, re.S).group(1)
    assert f"{on_it} already on it, {busy} busy or unavailable now" in held
    assert "once their job or rollout has ended" in held
    assert "No image is compatible" not in html

    refused = operator_client.post(
        "/rollouts/new/plan/",
        {
            "server": list(drifted.values_list("id", flat=True)),
            "target_image": group.image_id,
            "reason": "x",
        },
    )
    assert refused.status_code == 400
    assert f"No selected server can change now: {busy} busy or unavailable now." in (
        refused.content.decode()
    )
    assert not Rollout.objects.exists()


def test_servers_of_several_groups_all_busy_are_said_busy_not_incompatible(synced, operator_client):
    chosen = []
    for group in ServerGroup.objects.filter(os_type="Windows").exclude(image_id=""):
        server = Server.objects.filter(group=group, gone=False).first()
        if server and group.image_id not in {s.group.image_id for s in chosen}:
            chosen.append(server)
    chosen = chosen[:2]
    assert len(chosen) == 2  # two groups with different images
    Server.objects.filter(pk__in=[s.pk for s in chosen]).update(job_status="RUNNING")
    ids = [s.pk for s in chosen]

    selection = _tick(operator_client, ids)
    page = operator_client.get("/rollouts/new/", {"selection": selection.pk}).content.decode()

    said = re.search(r'<p id="unavailable-now">(.*?)</p>', page, re.S).group(1)
    assert "All 2 servers are busy or unavailable now" in said
    assert "No image is compatible" not in page
    refused = operator_client.post(
        "/rollouts/new/plan/", {"server": ids, "target_image": "group", "reason": "x"}
    )
    assert refused.status_code == 400
    assert "All 2 servers are busy or unavailable now" in refused.content.decode()
    assert not Rollout.objects.exists()


def test_servers_busy_elsewhere_are_not_counted_as_not_compatible(synced, operator_client):
    group = _group()
    drifted = list(
        Server.objects.filter(group=group, gone=False, drift=True).values_list("id", flat=True)
    )
    assert len(drifted) >= 2  # one busy, one still to change: the image is still offered
    Server.objects.filter(id__in=drifted[:1]).update(job_status="RUNNING")

    page = operator_client.get("/rollouts/new/", {"group": group.id})

    own = next(o for o in page.context["form"].options if o.image.id == group.image_id)
    assert own.not_now == 1
    assert own.compatible + own.already + own.not_now + own.blocked == own.selected
    assert "1 busy or unavailable now" in page.content.decode()


# ---- 5. resume menu, retries asked twice, discarding a follow-up, mixed image types -------


def _halted(client, failed: int) -> Rollout:
    rollout = _confirmed(client, Rollout.State.HALTED)
    rows = rollout.servers.filter(state="pending").order_by("pk")[:failed]
    RolloutServer.objects.filter(pk__in=[r.pk for r in rows]).update(state="failed")
    return rollout


def _options(html: str) -> dict[str, str]:
    menu = html.split('name="how"', 1)[1].split("</select>", 1)[0]
    return dict(re.findall(r'<option value="(\w+)"([^>]*)>', menu))


def test_the_resume_menu_does_not_offer_skipping_or_retrying_when_none_failed(
    synced, operator_client
):
    html = operator_client.get(f"/rollouts/{_halted(operator_client, 0).pk}/")
    html = html.content.decode()
    options = _options(html)
    assert "disabled" not in options["continue"]
    assert "disabled" in options["skip_failed"] and "disabled" in options["retry_failed"]
    assert "(no server failed)" in html


def test_the_resume_menu_offers_skipping_and_retrying_after_a_failure(synced, operator_client):
    rollout = _halted(operator_client, 1)
    html = operator_client.get(f"/rollouts/{rollout.pk}/").content.decode()
    options = _options(html)
    assert not any("disabled" in attrs for attrs in options.values())
    said = re.search(r'<span id="halt-next">(.*?)</span>', html, re.S).group(1)
    assert "choose below how to resume" in said and "leaves this one halted" in said


def test_a_viewer_is_not_told_how_to_resume_a_halted_rollout(
    synced, operator_client, viewer_client
):
    rollout = _halted(operator_client, 1)
    html = viewer_client.get(f"/rollouts/{rollout.pk}/").content.decode()
    assert "Halted." in html and 'id="halt-next"' not in html


def test_retry_failed_twice_reuses_the_open_retry_plan(synced, operator_client):
    rollout = _halted(operator_client, 2)
    Rollout.objects.filter(pk=rollout.pk).update(state=Rollout.State.FAILED)
    first = operator_client.post(f"/rollouts/{rollout.pk}/retry/")
    plan = Rollout.objects.latest("pk")
    again = operator_client.post(f"/rollouts/{rollout.pk}/retry/", follow=True)
    assert first["Location"] == again.redirect_chain[0][0] == f"/rollouts/new/{plan.pk}/"
    assert rollout.derived.count() == 1
    assert f"Plan #{plan.pk} already retries these servers" in " ".join(_messages(again))


def test_a_new_retry_plan_once_the_open_one_is_discarded(synced, operator_client):
    rollout = _halted(operator_client, 2)
    Rollout.objects.filter(pk=rollout.pk).update(state=Rollout.State.FAILED)
    operator_client.post(f"/rollouts/{rollout.pk}/retry/")
    plan = Rollout.objects.latest("pk")

    discarded = operator_client.post(f"/rollouts/new/{plan.pk}/discard/")

    assert discarded["Location"] == f"/rollouts/{rollout.pk}/"  # back to its rollout
    page = operator_client.get(f"/rollouts/{rollout.pk}/").content.decode()
    assert f'href="/rollouts/{plan.pk}/"' not in page  # nothing changed: not on the summary
    operator_client.post(f"/rollouts/{rollout.pk}/retry/")
    assert rollout.derived.count() == 2
    fresh = Rollout.objects.latest("pk")
    page = operator_client.get(f"/rollouts/{rollout.pk}/").content.decode()
    assert f'href="/rollouts/{fresh.pk}/"' in page


def test_a_retry_keeps_the_error_budget_and_waves_but_not_the_canary(synced, operator_client):
    rollout = _halted(operator_client, 2)
    Rollout.objects.filter(pk=rollout.pk).update(state=Rollout.State.FAILED, canary_size=1)
    operator_client.post(f"/rollouts/{rollout.pk}/retry/")
    plan = Rollout.objects.latest("pk")
    assert plan.retry_of_id == rollout.pk
    assert plan.failure_budget is not None and plan.failure_budget <= rollout.failure_budget
    assert 0 < plan.wave_size <= rollout.wave_size
    assert plan.canary_size in (None, 0) and plan.scheduled_at is None

    page = operator_client.get(f"/rollouts/new/{plan.pk}/").content.decode()

    assert "no error budget" not in page


def test_a_retry_scales_the_budget_and_waves_to_its_own_size():
    """200 servers with a budget of 20 (10 %) and waves of 50 (25 %): a retry of 15 halts
    after more than 2 failures and goes in waves of 4, not one wave that never halts."""
    rollout = Rollout.objects.create(
        created_by="otto", state="failed", failure_budget=20, wave_size=50, canary_size=5
    )
    RolloutServer.objects.bulk_create(
        RolloutServer(rollout=rollout, server_id=f"s{n}", server_name=f"s{n}", verdict="change")
        for n in range(200)
    )

    safety = planning.Safety.for_retry(rollout)

    assert (safety.failure_budget, safety.wave_size, safety.canary) == ("10%", "25%", "")
    assert planning.resolve_amount(safety.failure_budget, 15) == 2
    assert planning.resolve_amount(safety.wave_size, 15) == 4


def test_retry_while_a_retry_of_the_same_servers_runs_says_they_are_busy(synced, operator_client):
    rollout = _halted(operator_client, 2)
    Rollout.objects.filter(pk=rollout.pk).update(state=Rollout.State.FAILED)
    operator_client.post(f"/rollouts/{rollout.pk}/retry/")
    first_retry = Rollout.objects.latest("pk")
    confirm_from_page(operator_client, first_retry)  # its servers are now in a running rollout
    assert Rollout.objects.get(pk=first_retry.pk).state == "queued"

    again = operator_client.post(f"/rollouts/{rollout.pk}/retry/", follow=True)

    said = again.content.decode()
    assert "All 2 servers are busy or unavailable now" in said
    assert f"Rollouts holding them: #{first_retry.pk}." in said
    assert "no longer compatible" not in said
    assert Rollout.objects.count() == 2  # no third plan


def test_a_plan_without_error_budget_says_what_that_means(synced, operator_client):
    group = _group()
    ids = list(Server.objects.filter(group=group, gone=False).values_list("id", flat=True))
    plan = _plan(
        operator_client,
        {"server": ids, "target_image": group.image_id, **CUSTOM, "failure_budget": ""},
    )
    assert plan.failure_budget is None

    page = operator_client.get(f"/rollouts/new/{plan.pk}/").content.decode()

    assert "no error budget: failures never halt the rollout" in page


def test_a_plan_to_each_groups_image_names_every_type_among_them(synced, operator_client):
    groups = ServerGroup.objects.filter(os_type="Windows", servers_drifted__gt=0).exclude(
        image_id=""
    )
    first, second = sorted(groups, key=lambda g: -g.servers_drifted)[:2]
    assert first.image_id != second.image_id
    # One group's image is a paid Marketplace image (as if bought), the other a private one.
    Image.objects.filter(id=first.image_id).update(image_type="private")
    Image.objects.filter(id=second.image_id).update(image_type="marketplace", product_code="p-1")
    ids = list(
        Server.objects.filter(group__in=[first, second], gone=False).values_list("id", flat=True)
    )
    rollout = _plan(operator_client, {"server": ids, "target_image": "group", **CUSTOM})
    assert rollout.servers.filter(verdict="change", group_id=second.id).exists()
    html = operator_client.get(f"/rollouts/new/{rollout.pk}/").content.decode()
    types = re.search(r'<span id="target-types">(.*?)</span>', html).group(1)
    assert types == "Marketplace, Private"


def test_protected_groups_are_named_whether_the_setting_lists_ids_or_names(settings):
    groups = [("g-1", "office"), ("g-2", "cad"), ("g-3", "Finance")]
    settings.PROTECTED_SERVER_GROUPS = ["g-2", "finance"]
    assert planning.protected_groups(groups) == ["Finance", "cad"]
    settings.PROTECTED_SERVER_GROUPS = []
    assert planning.protected_groups(groups) is None


# ---- limits that caught typos -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("wave_size", "0", "A wave holds at least one server"),
        ("wave_size", "0%", "A wave holds at least one server"),
        ("canary", "99999999", "A canary of 99999999 servers is more than the"),
        ("scheduled_at", "9999-12-31T10:00", "more than 90 days ahead"),
    ],
)
def test_a_setting_that_is_surely_a_typo_is_refused_and_nothing_stored(
    synced, operator_client, field, value, said
):
    group = _group()
    ids = list(Server.objects.filter(group=group, gone=False).values_list("id", flat=True))
    response = operator_client.post(
        "/rollouts/new/plan/",
        {"server": ids, "target_image": group.image_id, **CUSTOM, field: value},
    )
    assert response.status_code == 400
    assert said in response.content.decode()
    assert not Rollout.objects.exists()


def test_a_preset_ignores_a_typo_in_the_custom_fields_it_does_not_use(synced, operator_client):
    group = _group()
    ids = list(Server.objects.filter(group=group, gone=False).values_list("id", flat=True))
    plan = _plan(
        operator_client,
        {
            "server": ids,
            "target_image": group.image_id,
            **CUSTOM,
            "preset": "standard",
            "wave_size": "0",
            "canary": "99999999",
        },
    )
    assert plan.preset == "standard"


def test_the_plan_form_names_the_rollouts_holding_every_selected_server(synced, operator_client):
    rollout = _confirmed(operator_client, Rollout.State.QUEUED)
    ids = list(rollout.servers.filter(state="pending").values_list("server_id", flat=True)[:2])
    assert len(ids) == 2

    Selection.objects.all().delete()
    selection = _tick(operator_client, ids)
    page = operator_client.get("/rollouts/new/", {"selection": selection.pk}).content.decode()

    said = re.search(r'<p id="own-image-held">(.*?)</p>', page, re.S).group(1)
    assert "2 busy or unavailable now" in said
    assert f'Rollouts holding them: <a href="/rollouts/{rollout.pk}/">#{rollout.pk}</a>' in said


@pytest.mark.usefixtures("compiled")  # the catalogs as `make test` builds them
def test_a_retry_asked_in_chinese_reads_in_english_for_an_english_reader(
    synced, operator_client, viewer_client
):
    rollout = _halted(operator_client, 2)
    Rollout.objects.filter(pk=rollout.pk).update(state=Rollout.State.FAILED)
    operator_client.cookies["django_language"] = "zh-hans"
    operator_client.post(f"/rollouts/{rollout.pk}/retry/")
    retry = Rollout.objects.latest("pk")
    assert retry.reason.startswith(f"重试发布 #{rollout.pk}")  # stored as its asker worded it

    english = viewer_client.get(f"/rollouts/{retry.pk}/", follow=True).content.decode()
    assert f"<dd>Retry of #{rollout.pk}: {rollout.reason}</dd>" in english
    listed = viewer_client.get("/rollouts/").content.decode()
    assert f"Retry of #{rollout.pk}: {rollout.reason}" in listed

    viewer_client.cookies["django_language"] = "zh-hans"
    chinese = viewer_client.get(f"/rollouts/{retry.pk}/", follow=True).content.decode()
    assert f"<dd>{retry.reason}</dd>" in chinese
