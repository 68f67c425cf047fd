"""A pipeline drives a rollout through the API against the simulator: plan a group's update
with the Careful preset, read the verdicts, confirm, sign off the canary, follow it to the
end. And the four-eyes rule, pause, resume, cancel, retry and revert, as the pages have them."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from dashboard import inventory
from dashboard.cloud.client import CloudClient
from dashboard.cloud.config import from_settings
from dashboard.models import Rollout, RolloutServer, Server
from dashboard.rollouts import engine
from tests.api_helpers import API, plan_body, running_rollout
from tests.conftest import OPERATOR_GROUPS
from tests.sim_fixtures import cloud_settings

pytestmark = pytest.mark.django_db


@pytest.fixture
def sim(simulator_factory, settings):
    sim = simulator_factory(servers=60)
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, **cloud_settings(sim)}
    inventory.sync_now(client=CloudClient(from_settings()))
    return sim


class Clock:
    """Moves the simulator's clock and the dashboard's together (session waits, soaks)."""

    def __init__(self, sim, monkeypatch) -> None:
        self.sim = sim
        self.offset = timedelta(0)
        real_now = timezone.now
        monkeypatch.setattr(timezone, "now", lambda: real_now() + self.offset)

    def advance(self, seconds: float) -> None:
        self.sim.advance(seconds)
        self.offset += timedelta(seconds=seconds)


def post(client: Client, path: str, body=None, **headers):
    return client.post(f"{API}{path}", body or {}, content_type="application/json", headers=headers)


def a_drifted_group() -> str:
    """The group with the most servers that can move to its image now."""
    counts: dict[str, int] = {}
    for server in Server.objects.filter(
        drift=True, frozen=False, gone=False, os_type="Windows"
    ).exclude(job_status__in=["WAITING", "RUNNING"]):
        counts[server.group_id] = counts.get(server.group_id, 0) + 1
    return max(counts, key=counts.__getitem__)


def test_a_pipeline_updates_a_group_with_the_careful_preset_to_the_end(
    sim, operator_token, monkeypatch
):
    clock = Clock(sim, monkeypatch)
    cloud = CloudClient(from_settings())
    group = a_drifted_group()

    made = post(
        operator_token,
        "/plans",
        {"group": group, "target_image": "group", "preset": "careful", "reason": "CHG-77"},
        **{"Idempotency-Key": "pipeline-run-1"},
    )

    assert made.status_code == 201, made.content
    plan = made.json()
    assert plan["safety"]["preset"] == "careful"
    assert plan["safety"]["canary_size"] == 1 and plan["safety"]["canary_signoff"] is True
    assert plan["safety"]["session_policy"] == "wait_logoff"
    assert {row["group_id"] for row in plan["servers"]} == {group}
    assert plan["counts"]["change"] >= 2
    assert plan["waves"][0]["size"] == 1
    verdicts = operator_token.get(f"{API}/plans/{plan['id']}").json()
    assert verdicts["servers"] == plan["servers"]

    confirmed = post(
        operator_token, f"/plans/{plan['id']}/confirm", {"confirm_token": plan["confirm_token"]}
    )
    assert confirmed.status_code == 200 and confirmed.json()["state"] == "queued"

    engine.start(plan["id"], cloud, sleep=lambda s: None)
    signed_off = False
    for _ in range(200):
        rollout = operator_token.get(f"{API}/rollouts/{plan['id']}").json()
        if rollout["final"]:
            break
        if rollout["state"] == "paused" and "resume" in rollout["allowed_actions"]:
            assert post(operator_token, f"/rollouts/{plan['id']}/resume").status_code == 200
            signed_off = True
        clock.advance(60)
        engine.tick(plan["id"], cloud, sleep=lambda s: None)

    assert rollout["final"], rollout["state"]
    assert rollout["state"] in ("succeeded", "failed")
    assert signed_off  # the canary held for a person's (here: the pipeline's) sign-off
    actions = [event["action"] for event in rollout["events"]]
    assert {"confirm", "start", "hold_for_signoff", "resume"} <= set(actions)
    assert rollout["progress"]["done"] == rollout["progress"]["to_change"]
    succeeded = [row for row in rollout["servers"] if row["state"] == "succeeded"]
    assert succeeded and all(row["verified"] for row in succeeded)
    for row in succeeded:
        assert sim.state.servers[row["server_id"]].image_id == row["to_image_id"]


def test_a_protected_group_needs_a_second_caller_to_approve(
    make_token, small_fleet, settings, sso_client
):
    settings.PROTECTED_SERVER_GROUPS = ["*"]
    planner, _ = make_token("admin-bot", "admin")  # an admin may approve, but not its own
    approver, _ = make_token("release-bot", "approver", created_by="bea.admin")
    hidden = post(planner, "/plans", plan_body(reason="CHG-\u202e4321"))
    assert hidden.status_code == 422 and "direction characters" in hidden.content.decode()
    plan = post(planner, "/plans", plan_body()).json()
    waiting = post(
        planner, f"/plans/{plan['id']}/confirm", {"confirm_token": plan["confirm_token"]}
    )
    assert waiting.json()["state"] == "awaiting_approval"

    own = post(planner, f"/rollouts/{plan['id']}/approve")

    assert own.status_code == 403 and own.json()["code"] == "approval.same_person"
    approved = post(approver, f"/rollouts/{plan['id']}/approve")
    assert approved.status_code == 200
    body = approved.json()
    assert (body["state"], body["approved_by"]) == ("queued", "token:release-bot")


def test_an_approver_rejects_a_waiting_rollout_saying_why_and_nothing_is_sent(
    make_token, small_fleet, settings, sso_client
):
    settings.PROTECTED_SERVER_GROUPS = ["*"]
    planner, _ = make_token("admin-bot", "admin")
    approver, _ = make_token("release-bot", "approver", created_by="bea.admin")
    plan = post(planner, "/plans", plan_body()).json()
    waiting = post(
        planner, f"/plans/{plan['id']}/confirm", {"confirm_token": plan["confirm_token"]}
    ).json()
    assert {"approve", "reject", "cancel"} <= set(waiting["allowed_actions"])

    blank = post(approver, f"/rollouts/{plan['id']}/reject", {"reason": "   "})
    assert (blank.status_code, blank.json()["code"]) == (422, "validation.invalid")
    hidden = post(approver, f"/rollouts/{plan['id']}/reject", {"reason": "ok\u202e"})
    assert (hidden.status_code, hidden.json()["code"]) == (422, "validation.invalid")
    assert "direction characters" in hidden.content.decode()
    assert Rollout.objects.get(pk=plan["id"]).state == "awaiting_approval"

    rejected = post(approver, f"/rollouts/{plan['id']}/reject", {"reason": "not in the freeze"})

    assert rejected.status_code == 200, rejected.content
    body = rejected.json()
    assert body["state"] == "cancelled" and "reject" not in body["allowed_actions"]
    assert {row["state"] for row in body["servers"]} == {"cancelled"}
    event = next(e for e in body["events"] if e["action"] == "reject")
    assert (event["actor"], event["reason"]) == ("token:release-bot", "not in the freeze")
    again = post(approver, f"/rollouts/{plan['id']}/reject", {"reason": "twice"})
    assert again.status_code == 409
    assert post(approver, f"/rollouts/{plan['id']}/approve").status_code == 409


def test_a_person_cannot_approve_through_the_api_what_they_planned(
    sso_client, small_fleet, settings
):
    settings.PROTECTED_SERVER_GROUPS = ["*"]
    ada = sso_client("ada.admin", ["dashboard-admins"])
    plan = post(ada, "/plans", plan_body()).json()
    post(ada, f"/plans/{plan['id']}/confirm", {"confirm_token": plan["confirm_token"]})

    refused = post(ada, f"/rollouts/{plan['id']}/approve")

    assert refused.json()["code"] == "approval.same_person"
    assert Rollout.objects.get().state == Rollout.State.AWAITING_APPROVAL


def test_an_admin_cannot_approve_their_own_rollout_through_a_token_they_made(
    sso_client, make_token, small_fleet, settings
):
    settings.PROTECTED_SERVER_GROUPS = ["*"]
    ada = sso_client("ada.admin", ["dashboard-admins"])
    plan = post(ada, "/plans", plan_body()).json()
    post(ada, f"/plans/{plan['id']}/confirm", {"confirm_token": plan["confirm_token"]})
    own_token, _ = make_token("ada-approver", "approver", created_by="Ada.Admin")
    own_admin_token, _ = make_token("ada-admin", "admin", created_by="ada.admin")

    for token in (own_token, own_admin_token):
        refused = post(token, f"/rollouts/{plan['id']}/approve")
        assert refused.status_code == 403 and refused.json()["code"] == "approval.same_person"
    assert Rollout.objects.get().state == Rollout.State.AWAITING_APPROVAL
    someone_else, _ = make_token("bea-approver", "approver", created_by="bea.admin")
    assert post(someone_else, f"/rollouts/{plan['id']}/approve").status_code == 200


def test_a_token_cannot_approve_what_another_token_of_the_same_admin_planned(
    make_token, small_fleet, settings
):
    settings.PROTECTED_SERVER_GROUPS = ["*"]
    planner, _ = make_token("ada-pipeline", "operator", created_by="ada.admin")
    approver, _ = make_token("ada-release", "approver", created_by="ada.admin")
    plan = post(planner, "/plans", plan_body()).json()
    post(planner, f"/plans/{plan['id']}/confirm", {"confirm_token": plan["confirm_token"]})

    refused = post(approver, f"/rollouts/{plan['id']}/approve")

    assert refused.json()["code"] == "approval.same_person"


def test_whoever_confirmed_a_rollout_cannot_approve_it(sso_client, small_fleet, settings):
    settings.PROTECTED_SERVER_GROUPS = ["*"]
    oscar = sso_client("oscar.operator", OPERATOR_GROUPS)
    plan = post(oscar, "/plans", plan_body()).json()
    alice = sso_client("alice.admin", ["dashboard-admins"])
    confirmed = post(
        alice, f"/plans/{plan['id']}/confirm", {"confirm_token": plan["confirm_token"]}
    )
    assert confirmed.json()["state"] == "awaiting_approval"

    refused = post(alice, f"/rollouts/{plan['id']}/approve")

    assert refused.status_code == 403 and refused.json()["code"] == "approval.same_person"
    bea = sso_client("bea.admin", ["dashboard-admins"])
    assert post(bea, f"/rollouts/{plan['id']}/approve").json()["approved_by"] == "bea.admin"


def test_pause_resume_and_cancel_move_the_rollout_as_the_page_buttons_do(operator_token, db):
    rollout = running_rollout()
    paused = post(operator_token, f"/rollouts/{rollout.pk}/pause")
    assert paused.json()["state"] == "paused" and "resume" in paused.json()["allowed_actions"]
    resumed = post(operator_token, f"/rollouts/{rollout.pk}/resume", {"how": "continue"})
    assert resumed.json()["state"] == "running"
    cancelled = post(operator_token, f"/rollouts/{rollout.pk}/cancel")
    assert cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["servers"][0]["state"] == "cancelled"
    actors = {event["actor"] for event in cancelled.json()["events"]}
    assert actors == {"token:deploy-bot"}


def test_an_unknown_way_to_resume_is_a_422(operator_token, db):
    rollout = running_rollout(state="paused")
    response = post(operator_token, f"/rollouts/{rollout.pk}/resume", {"how": "sideways"})
    assert response.status_code == 422
    assert Rollout.objects.get().state == "paused"


def test_retry_plans_the_failed_servers_linked_to_their_rollout(operator_token, small_fleet):
    failed = running_rollout(state="failed")
    failed.servers.update(state=RolloutServer.State.FAILED)

    response = post(operator_token, f"/rollouts/{failed.pk}/retry")

    assert response.status_code == 201, response.content
    plan = response.json()
    assert (plan["kind"], plan["retry_of"], plan["state"]) == ("retry", failed.pk, "planned")
    assert [row["server_id"] for row in plan["servers"]] == ["srv-1"]
    assert Rollout.objects.get(pk=failed.pk).derived.get().pk == plan["id"]


def test_revert_plans_the_previous_images(operator_token, small_fleet):
    done = running_rollout(state="succeeded")
    done.servers.update(previous_image_id="img-old")
    Server.objects.filter(pk="srv-1").update(image_id="img-new")

    response = post(operator_token, f"/rollouts/{done.pk}/revert")

    assert response.status_code == 201, response.content
    plan = response.json()
    assert plan["kind"] == "revert" and plan["servers"][0]["to_image_id"] == "img-old"


def test_nothing_to_revert_is_a_409_and_leaves_no_plan(operator_token, small_fleet):
    done = running_rollout(state="succeeded")  # no previous image recorded
    response = post(operator_token, f"/rollouts/{done.pk}/revert")
    assert response.status_code == 409 and response.json()["code"] == "plan.nothing_to_change"
    assert Rollout.objects.count() == 1


def test_lists_page_by_cursor_and_filter_like_the_servers_page(viewer_token, sim):
    first = viewer_token.get(f"{API}/servers", {"limit": 25, "sort": "-name"}).json()
    assert first["count"] == Server.objects.filter(gone=False).count()
    names = [s["name"] for s in first["items"]]
    assert names == sorted(names, reverse=True) and len(names) == 25
    second = viewer_token.get(
        f"{API}/servers", {"limit": 25, "sort": "-name", "cursor": first["next_cursor"]}
    ).json()
    assert not {s["id"] for s in first["items"]} & {s["id"] for s in second["items"]}
    drifted = viewer_token.get(f"{API}/servers", {"drift": "yes", "limit": 200}).json()
    assert drifted["count"] == Server.objects.filter(gone=False, drift=True).count()
    assert all(s["drift"] for s in drifted["items"])
    groups = viewer_token.get(f"{API}/groups").json()
    assert groups["count"] and groups["items"][0]["servers_live"] >= 0
    assert viewer_token.get(f"{API}/images").json()["count"] > 0
    audit = viewer_token.get(f"{API}/audit", {"action": "rollout."}).json()
    assert audit["count"] == 0


def test_a_session_person_uses_the_api_as_themselves(sso_client, sim):
    otto = sso_client("otto.operator", OPERATOR_GROUPS)
    plan = post(
        otto,
        "/plans",
        {
            "group": a_drifted_group(),
            "target_image": "group",
            "reason": "CHG-8",
            "preset": "standard",
        },
    ).json()
    assert plan["created_by"] == "otto.operator" and plan["safety"]["preset"] == "standard"
