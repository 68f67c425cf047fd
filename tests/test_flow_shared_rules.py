"""The rollout pages and the automation API apply one rule each, from the rollout domain.

Every test runs the same situation through both callers (a person on the pages, a pipeline
on the API) and asserts the same outcome in the database and the audit trail, so a rule
copied into one caller and changed there fails here.
"""

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dashboard.models import AuditEvent, Rollout, RolloutServer, Selection, Server
from dashboard.rollouts import planning
from tests.api_helpers import API, running_rollout

pytestmark = pytest.mark.django_db

CALLERS = ["page", "api"]


@pytest.fixture
def caller(request) -> str:
    """Which caller a test goes through; its client is `clients[caller]`."""
    return request.param


@pytest.fixture
def clients(operator_client: Client, operator_token: Client) -> dict[str, Client]:
    return {"page": operator_client, "api": operator_token}


def api_post(client: Client, path: str, body: dict | None = None):
    return client.post(f"{API}{path}", body or {}, content_type="application/json")


def refusals(action: str) -> list[dict]:
    events = AuditEvent.objects.filter(action=action, outcome="refused").order_by("pk")
    return [event.details for event in events]


def finished_rollout(states: dict[str, str], *, previous: str = "") -> Rollout:
    """A failed rollout whose rows ended in `states` (server id → row state)."""
    rollout = Rollout.objects.create(
        created_by="someone.else",
        target_image_id="img-new",
        target_image_name="Win 2022 v7",
        state=Rollout.State.FAILED,
        reason="CHG-9",
    )
    for server_id, state in states.items():
        RolloutServer.objects.create(
            rollout=rollout,
            server_id=server_id,
            server_name=server_id,
            group_id="sg-1",
            from_image_id="img-old",
            to_image_id="img-new",
            previous_image_id=previous,
            verdict=RolloutServer.Verdict.CHANGE,
            state=state,
        )
    return rollout


@pytest.fixture
def third_server(small_fleet) -> Server:
    return Server.objects.create(
        id="srv-3",
        name="fin-03",
        group=small_fleet["group"],
        image_id="img-old",
        os_type="Windows",
        status="REGISTERED",
        drift=True,
        synced_at=timezone.now(),
    )


def follow_ups(rollout: Rollout) -> list[Rollout]:
    return list(Rollout.objects.filter(retry_of=rollout))


# ---- 1. confirm: a plan with nothing to change is refused ---------------------------------


def confirm(caller: str, client: Client, rollout: Rollout):
    token = planning.confirm_token(rollout)
    if caller == "page":
        return client.post(reverse("rollout-confirm", args=[rollout.pk]), {"confirm_token": token})
    return api_post(client, f"/plans/{rollout.pk}/confirm", {"confirm_token": token})


@pytest.mark.parametrize("caller", CALLERS, indirect=True)
def test_a_plan_with_nothing_to_change_is_refused_and_stays_a_plan(caller, clients, small_fleet):
    plan = Rollout.objects.create(created_by="otto", target_image_id="img-new")
    RolloutServer.objects.create(
        rollout=plan,
        server_id="srv-1",
        server_name="fin-01",
        to_image_id="img-new",
        verdict=RolloutServer.Verdict.SKIP,
    )

    response = confirm(caller, clients[caller], plan)

    assert response.status_code == 409
    if caller == "api":
        assert response.json()["code"] == "plan.nothing_to_change"
    else:
        assert "Nothing in this plan would change" in response.content.decode()
    plan.refresh_from_db()
    assert plan.state == Rollout.State.PLANNED and not plan.confirmed_by
    assert [d["code"] for d in refusals("rollout.confirm")] == [planning.NOTHING_TO_CHANGE]


@pytest.mark.parametrize("caller", CALLERS, indirect=True)
def test_a_replayed_confirm_changes_nothing(caller, clients, small_fleet):
    started = running_rollout(created_by="otto")
    response = confirm(caller, clients[caller], started)
    assert response.status_code in (302, 409)
    started.refresh_from_db()
    assert started.state == Rollout.State.RUNNING and not started.confirmed_by


# ---- 2. retry: the failed and unknown servers ------------------------------------------------


def retry(caller: str, client: Client, rollout: Rollout):
    if caller == "page":
        return client.post(reverse("rollout-retry", args=[rollout.pk]))
    return api_post(client, f"/rollouts/{rollout.pk}/retry")


@pytest.mark.parametrize("caller", CALLERS, indirect=True)
def test_a_retry_plans_the_failed_and_unknown_servers(caller, clients, third_server):
    done = finished_rollout({"srv-1": "failed", "srv-2": "succeeded", "srv-3": "unknown"})

    response = retry(caller, clients[caller], done)

    assert response.status_code == (302 if caller == "page" else 201), response.content
    [plan] = follow_ups(done)
    assert plan.kind == Rollout.Kind.RETRY and plan.state == Rollout.State.PLANNED
    assert set(plan.servers.values_list("server_id", flat=True)) == {"srv-1", "srv-3"}
    event = AuditEvent.objects.get(action="rollout.retry", outcome="ok")
    assert event.details["servers"] == 2 and event.rollout_id == plan.pk


@pytest.mark.parametrize("caller", CALLERS, indirect=True)
def test_nothing_failed_is_nothing_to_retry(caller, clients, small_fleet):
    done = finished_rollout({"srv-1": "succeeded", "srv-2": "skipped"})
    response = retry(caller, clients[caller], done)
    if caller == "api":
        assert response.status_code == 409
        assert response.json()["code"] == "plan.nothing_to_change"
        assert response.json()["detail"] == "Nothing to retry: no server failed."
    else:
        assert response.status_code == 302
        page = clients[caller].get(response["Location"]).content.decode()
        assert "Nothing to retry: no server failed." in page
    assert follow_ups(done) == []


@pytest.mark.parametrize("action", ["retry", "revert"])
@pytest.mark.parametrize("caller", CALLERS, indirect=True)
def test_a_running_rollout_has_no_follow_up_plan(caller, clients, small_fleet, action):
    running = running_rollout()
    path = f"/rollouts/{running.pk}/{action}"
    if caller == "page":
        response = clients[caller].post(reverse(f"rollout-{action}", args=[running.pk]))
    else:
        response = api_post(clients[caller], path)
    assert response.status_code == (302 if caller == "page" else 409)
    assert follow_ups(running) == []
    assert [d["state"] for d in refusals(f"rollout.{action}")] == ["running"]


# ---- 3. revert: the succeeded servers, and no empty plan left behind -----------------------


def revert(caller: str, client: Client, rollout: Rollout):
    if caller == "page":
        # A script's POST: no server named, no "picked" marker from the page's list.
        return client.post(reverse("rollout-revert", args=[rollout.pk]))
    return api_post(client, f"/rollouts/{rollout.pk}/revert")


@pytest.mark.parametrize("caller", CALLERS, indirect=True)
def test_a_revert_puts_the_succeeded_servers_back(caller, clients, small_fleet):
    done = finished_rollout({"srv-1": "succeeded", "srv-2": "failed"}, previous="img-old")
    Server.objects.filter(pk="srv-1").update(image_id="img-new")

    response = revert(caller, clients[caller], done)

    assert response.status_code == (302 if caller == "page" else 201), response.content
    [plan] = follow_ups(done)
    assert plan.kind == Rollout.Kind.REVERT
    assert list(plan.servers.values_list("server_id", "to_image_id")) == [("srv-1", "img-old")]
    assert plan.reason == f"Revert of #{done.pk}: CHG-9"
    event = AuditEvent.objects.get(action="rollout.revert", outcome="ok")
    assert event.details["servers"] == 1 and event.details["reverts"] == done.pk


@pytest.mark.parametrize("caller", CALLERS, indirect=True)
def test_no_previous_image_leaves_no_revert_plan(caller, clients, small_fleet):
    done = finished_rollout({"srv-1": "succeeded", "srv-2": "succeeded"}, previous="")
    before = Rollout.objects.count()

    response = revert(caller, clients[caller], done)

    message = "None of these servers has a recorded previous image."
    if caller == "api":
        assert response.status_code == 409
        assert response.json()["code"] == "plan.nothing_to_change"
        assert response.json()["detail"] == message
    else:
        assert response.status_code == 302
        assert message in clients[caller].get(response["Location"]).content.decode()
    assert Rollout.objects.count() == before


# ---- 4. a filter as a selection: the servers it matches, never the whole fleet -------------


def select_by_filter(caller: str, client: Client, query: str, body: dict) -> list[str] | str:
    """The servers the caller took from the filter, or what it said when it refused."""
    if caller == "page":
        response = client.post(reverse("rollout-new"), {"scope": "filter", "filter": query})
        assert response.status_code == 302
        if response["Location"] == reverse("servers"):
            return client.get(response["Location"]).content.decode()
        return Selection.objects.get(created_by="otto.operator").server_ids
    body = {"filter": body, "target_image": "img-new", "reason": "CHG-4", "preset": "custom"}
    response = api_post(client, "/plans", body)
    if response.status_code != 201:
        assert response.status_code == 422
        return response.json()["detail"]
    return [row["server_id"] for row in response.json()["servers"]]


@pytest.mark.parametrize("caller", CALLERS, indirect=True)
def test_a_filter_selects_the_live_servers_it_matches(caller, clients, small_fleet):
    Server.objects.filter(pk="srv-2").update(gone=True)
    chosen = select_by_filter(caller, clients[caller], "drift=yes", {"drift": "yes"})
    assert chosen == ["srv-1"]


@pytest.mark.parametrize("caller", CALLERS, indirect=True)
def test_a_filter_that_narrows_nothing_selects_nothing(caller, clients, small_fleet):
    said = select_by_filter(caller, clients[caller], "sort=name", {"sort": "name"})
    assert isinstance(said, str)
    assert "Filter the servers first: a rollout never takes them all." in said
    assert not Selection.objects.exists() and not Rollout.objects.exists()


# ---- 5. approve: a second person, never the rollout's own author ---------------------------


def approve(caller: str, client: Client, rollout: Rollout):
    if caller == "page":
        return client.post(reverse("rollout-approve", args=[rollout.pk]))
    return api_post(client, f"/rollouts/{rollout.pk}/approve")


@pytest.mark.parametrize("caller", CALLERS, indirect=True)
def test_nobody_approves_their_own_rollout(caller, admin_client_sso, small_fleet):
    own = running_rollout(created_by="Ada.Admin", state=Rollout.State.AWAITING_APPROVAL)

    response = approve(caller, admin_client_sso, own)

    assert response.status_code == 403
    own.refresh_from_db()
    assert own.state == Rollout.State.AWAITING_APPROVAL and not own.approved_by
    assert [d["why"] for d in refusals("rollout.approve")] == ["submitter cannot approve"]


@pytest.mark.parametrize("caller", CALLERS, indirect=True)
def test_a_second_person_approves(caller, admin_client_sso, small_fleet):
    waiting = running_rollout(created_by="otto", state=Rollout.State.AWAITING_APPROVAL)

    response = approve(caller, admin_client_sso, waiting)

    assert response.status_code == (302 if caller == "page" else 200)
    waiting.refresh_from_db()
    assert (waiting.state, waiting.approved_by) == (Rollout.State.QUEUED, "ada.admin")


# ---- 6. plan: the rollout form stores the plan, whoever submits it -------------------------


@pytest.mark.parametrize("caller", CALLERS, indirect=True)
def test_a_plan_is_stored_and_audited_the_same_way(caller, clients, small_fleet):
    fields = {"target_image": "img-new", "reason": "CHG-6", "preset": "custom", "canary": "1"}
    if caller == "page":
        response = clients[caller].post(
            reverse("rollout-plan-create"), {"filter": "group=sg-1", **fields}
        )
        assert response.status_code == 302, response.content
    else:
        body = {**fields, "group": "sg-1", "safety": {"canary": "1"}}
        del body["canary"]
        response = api_post(clients[caller], "/plans", body)
        assert response.status_code == 201, response.content

    plan = Rollout.objects.get()
    assert (plan.kind, plan.state, plan.target_image_id) == ("plan", "planned", "img-new")
    assert (plan.reason, plan.preset, plan.canary_size) == ("CHG-6", "custom", 1)
    assert set(plan.servers.values_list("server_id", "verdict")) == {
        ("srv-1", "change"),
        ("srv-2", "change"),
    }
    event = AuditEvent.objects.get(action="rollout.plan")
    assert (event.outcome, event.rollout_id) == ("ok", plan.pk)
    assert {k: event.details[k] for k in ("servers", "image", "preset")} == {
        "servers": 2,
        "image": "img-new",
        "preset": "custom",
    }


# ---- 7. resume: the lifecycle decides which state resumes -----------------------------------


@pytest.mark.parametrize("caller", CALLERS, indirect=True)
def test_a_running_rollout_is_not_resumed(caller, clients, small_fleet):
    running = running_rollout()
    if caller == "page":
        url = reverse("rollout-resume", args=[running.pk])
        response = clients[caller].post(url, {"how": "continue"})
    else:
        response = api_post(clients[caller], f"/rollouts/{running.pk}/resume", {"how": "continue"})
    assert response.status_code == (302 if caller == "page" else 409)
    assert [d["state"] for d in refusals("rollout.resume")] == ["running"]
    assert not running.events.filter(action="resume").exists()
