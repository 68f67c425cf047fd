"""Plan, confirm, submit and track a rollout against the simulator over real HTTP."""

from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from dashboard import inventory
from dashboard.cloud.client import CloudClient
from dashboard.cloud.config import from_settings
from dashboard.models import Rollout, RolloutServer, Server
from dashboard.rollouts import engine
from tests.rollout_helpers import confirm_from_page
from tests.sim_fixtures import cloud_settings

pytestmark = pytest.mark.django_db

CHANGE_PATH = "/app-servers/actions/batch-change-image"


def drifted_group() -> tuple[str, list[str]]:
    """The group with the most drifted servers that can change, and those servers."""
    candidates = Server.objects.filter(
        drift=True, frozen=False, gone=False, os_type="Windows"
    ).exclude(job_status__in=["WAITING", "RUNNING"])
    by_group: dict[str, list[str]] = {}
    for server in candidates:
        by_group.setdefault(server.group_id, []).append(server.id)
    group_id = max(by_group, key=lambda g: len(by_group[g]))
    return group_id, by_group[group_id]


def plan_drifted(client, group_id: str, reason: str = "CHG-1 patches") -> Rollout:
    page = client.get("/rollouts/new/", {"group": group_id, "drift": "yes"})
    assert page.status_code == 200
    form = page.context["form"]
    target = form.initial["target_image"]
    response = client.post(
        "/rollouts/new/plan/",
        {"server": [s.id for s in form.servers], "target_image": target, "reason": reason},
    )
    assert response.status_code == 302, response.content[:2000]
    return Rollout.objects.latest("pk")


def test_the_drifted_servers_of_a_group_go_to_the_group_image(
    synced, operator_client, cloud_client
):
    group_id, expected = drifted_group()
    rollout = plan_drifted(operator_client, group_id)
    assert rollout.state == Rollout.State.PLANNED
    plan_page = operator_client.get(f"/rollouts/new/{rollout.pk}/")
    assert b"will change" in plan_page.content

    response = confirm_from_page(operator_client, rollout)
    assert response.status_code == 302
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.QUEUED
    assert rollout.confirmed_by == "otto.operator"

    engine.start(rollout.pk, cloud_client, sleep=lambda s: None)
    changing = rollout.servers.filter(verdict="change")
    assert set(changing.values_list("server_id", flat=True)) <= set(expected)
    assert all(r.job_id and r.state == "waiting" for r in changing)

    synced.advance(3600)  # every job has finished by now
    assert engine.tick(rollout.pk, cloud_client) in ("succeeded", "failed")
    for row in changing.all():
        assert row.state in ("succeeded", "failed")
        if row.state == "succeeded":
            assert row.verified is True
            assert synced.state.servers[row.server_id].image_id == rollout.target_image_id

    sent = [sid for r in synced.requests("POST", CHANGE_PATH) for sid in r["body"]["server_ids"]]
    assert sorted(sent) == sorted(changing.values_list("server_id", flat=True))


def test_a_replayed_confirm_creates_one_rollout_and_sends_once(
    synced, operator_client, cloud_client
):
    group_id, _ = drifted_group()
    rollout = plan_drifted(operator_client, group_id)
    for _ in range(3):
        confirm_from_page(operator_client, rollout)
    assert Rollout.objects.count() == 1
    engine.start(rollout.pk, cloud_client, sleep=lambda s: None)
    engine.start(rollout.pk, cloud_client, sleep=lambda s: None)  # a replayed task
    sent = [sid for r in synced.requests("POST", CHANGE_PATH) for sid in r["body"]["server_ids"]]
    assert len(sent) == len(set(sent)) == rollout.servers.filter(verdict="change").count()


def test_a_stale_plan_is_refused_and_discarded(synced, operator_client):
    group_id, _ = drifted_group()
    rollout = plan_drifted(operator_client, group_id)
    changed = rollout.servers.filter(verdict="change").first()
    Server.objects.filter(pk=changed.server_id).update(job_status="RUNNING")

    response = confirm_from_page(operator_client, rollout)

    assert response.status_code == 409
    assert changed.server_name.encode() in response.content
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.DISCARDED
    assert not RolloutServer.objects.filter(state="pending").exists()


def test_a_plan_is_stale_when_another_rollout_took_a_server(synced, operator_client):
    group_id, _ = drifted_group()
    first = plan_drifted(operator_client, group_id)
    second = plan_drifted(operator_client, group_id)
    assert confirm_from_page(operator_client, first).status_code == 302
    response = confirm_from_page(operator_client, second)
    assert response.status_code == 409
    second.refresh_from_db()
    assert second.state == Rollout.State.DISCARDED


def test_a_fresh_plan_is_offered_after_a_stale_one(synced, operator_client):
    group_id, _ = drifted_group()
    rollout = plan_drifted(operator_client, group_id)
    Rollout.objects.filter(pk=rollout.pk).update(state=Rollout.State.DISCARDED)
    response = operator_client.post(f"/rollouts/new/{rollout.pk}/replan/")
    assert response.status_code == 302
    fresh = Rollout.objects.latest("pk")
    assert fresh.pk != rollout.pk and fresh.state == Rollout.State.PLANNED
    assert fresh.servers.count() == rollout.servers.count()


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (["no-such-server"], b"unknown or gone"),
        ([], b"Select at least one server"),
    ],
)
def test_bad_selections_get_a_message_and_store_nothing(synced, operator_client, ids, message):
    image = Server.objects.first().group.image_id
    response = operator_client.post(
        "/rollouts/new/plan/", {"server": ids, "target_image": image, "reason": "x"}
    )
    assert response.status_code == 400
    assert message in response.content
    assert not Rollout.objects.exists()


def test_duplicate_ids_are_refused(synced, operator_client):
    server = Server.objects.filter(drift=True).first()
    response = operator_client.post(
        "/rollouts/new/plan/",
        {"server": [server.id, server.id], "target_image": server.group.image_id, "reason": "x"},
    )
    assert response.status_code == 400
    assert b"selected twice" in response.content
    assert not Rollout.objects.exists()


def test_a_selection_over_the_maximum_is_refused(synced, operator_client, settings):
    settings.ROLLOUT_MAX_SERVERS = 2
    ids = list(Server.objects.values_list("id", flat=True)[:3])
    response = operator_client.post(
        "/rollouts/new/plan/", {"server": ids, "target_image": "x", "reason": "x"}
    )
    assert response.status_code == 400
    assert b"at most 2" in response.content
    assert not Rollout.objects.exists()


def test_an_incompatible_image_is_not_offered_and_is_refused(synced, operator_client):
    server = Server.objects.filter(drift=True, os_type="Windows").first()
    linux = next(i for i in synced.state.images.values() if i.os_type == "Linux")
    page = operator_client.get("/rollouts/new/", {"q": server.id})
    offered = [o.image.id for o in page.context["form"].options]
    assert linux.id not in offered
    response = operator_client.post(
        "/rollouts/new/plan/", {"server": [server.id], "target_image": linux.id, "reason": "x"}
    )
    assert response.status_code == 400
    assert not Rollout.objects.exists()


def test_a_reason_is_required(synced, operator_client):
    server = Server.objects.filter(drift=True).first()
    response = operator_client.post(
        "/rollouts/new/plan/", {"server": [server.id], "target_image": server.group.image_id}
    )
    assert response.status_code == 400
    assert not Rollout.objects.exists()


def test_offered_images_carry_how_many_selected_servers_they_fit(synced, operator_client):
    group_id, _ = drifted_group()
    page = operator_client.get("/rollouts/new/", {"group": group_id})
    options = page.context["form"].options
    assert options
    assert all(0 < o.compatible <= o.selected for o in options)
    assert b"compatible with" in page.content


def test_images_that_change_as_many_servers_are_offered_newest_first(synced, operator_client):
    group_id, _ = drifted_group()
    page = operator_client.get("/rollouts/new/", {"group": group_id})
    form = page.context["form"]
    others = [o for o in form.options if o.image.id != form.recommended]
    by_fit: dict[int, list] = {}
    for option in others:
        by_fit.setdefault(option.compatible, []).append(option.image.created_at)
    assert [o.compatible for o in others] == sorted((o.compatible for o in others), reverse=True)
    assert any(len(dates) > 1 for dates in by_fit.values())  # ties to order
    for dates in by_fit.values():
        assert dates == sorted(dates, reverse=True)
    newest = others[0].image
    assert f"created {newest.created_at:%Y-%m-%d}" in page.content.decode()


def test_a_viewer_cannot_plan_or_confirm(synced, viewer_client, operator_client):
    group_id, _ = drifted_group()
    assert viewer_client.get("/rollouts/new/", {"group": group_id}).status_code == 403
    rollout = plan_drifted(operator_client, group_id)
    assert viewer_client.post(f"/rollouts/new/{rollout.pk}/confirm/").status_code == 403
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.PLANNED


def test_the_plan_groups_servers_into_calls_of_at_most_fifty(synced, operator_client):
    rows = Server.objects.filter(gone=False)
    from dashboard.rollouts import planning

    servers = list(rows.select_related("group"))
    target = planning.image_map()[servers[0].group.image_id]
    rollout = planning.create_plan(
        created_by="t", servers=servers * 1, target=target, images=planning.image_map(), reason="r"
    )
    chunks = {}
    for row in rollout.servers.filter(verdict="change"):
        chunks[row.chunk] = chunks.get(row.chunk, 0) + 1
    assert all(n <= 50 for n in chunks.values())
    assert not rollout.servers.filter(verdict="change", chunk=0).exists()


class FaultyChangeCalls(requests.adapters.HTTPAdapter):
    """Faults on batch-change-image only, at the HTTP boundary; reads pass through.

    `lose_answer`: the call reaches the cloud, then the connection drops (it happened).
    `status`: the call is answered with this status without reaching the cloud.
    """

    def __init__(self, *, lose_answer=False, status=None, times=1, headers=None):
        super().__init__()
        self.lose_answer, self.status, self.times, self.headers = (
            lose_answer,
            status,
            times,
            headers,
        )

    def send(self, request, *args, **kwargs):
        if request.method != "POST" or CHANGE_PATH not in request.url or self.times <= 0:
            return super().send(request, *args, **kwargs)
        self.times -= 1
        if self.lose_answer:
            super().send(request, *args, **kwargs)
            raise requests.ConnectionError("connection reset after the request was sent")
        response = requests.Response()
        response.status_code = self.status
        response.headers.update({"X-Request-Id": "fault", **(self.headers or {})})
        response._content = b'{"error_code": "WKS.00050902", "error_msg": "unavailable"}'
        response.url = request.url
        response.request = request
        return response


def faulty_client(adapter) -> CloudClient:
    session = requests.Session()
    session.mount("http://", adapter)
    return CloudClient(from_settings(), session=session)


def test_an_unknown_outcome_is_reconciled_from_the_server_not_resent(
    synced, operator_client, cloud_client
):
    group_id, _ = drifted_group()
    rollout = plan_drifted(operator_client, group_id)
    confirm_from_page(operator_client, rollout)
    flaky = faulty_client(FaultyChangeCalls(lose_answer=True))

    engine.start(rollout.pk, flaky, sleep=lambda s: None)

    rows = rollout.servers.filter(verdict="change")
    assert set(rows.values_list("state", flat=True)) == {"unknown"}
    engine.tick(rollout.pk, cloud_client)
    for row in rows.all():
        assert row.state in ("waiting", "running")
        assert row.job_id == synced.state.last_job[row.server_id]
    assert len(synced.requests("POST", CHANGE_PATH)) == 1  # never resent


def test_a_5xx_outcome_without_a_job_becomes_not_accepted_after_the_grace(
    synced, operator_client, cloud_client, settings
):
    settings.ROLLOUT_SEND_ATTEMPTS = 1  # resending is tests/test_rollout_reliability.py's
    group_id, _ = drifted_group()
    rollout = plan_drifted(operator_client, group_id)
    confirm_from_page(operator_client, rollout)
    engine.start(rollout.pk, faulty_client(FaultyChangeCalls(status=503)), sleep=lambda s: None)
    rows = rollout.servers.filter(verdict="change")
    assert set(rows.values_list("state", flat=True)) == {"unknown"}

    engine.tick(rollout.pk, cloud_client)
    assert set(rows.values_list("state", flat=True)) == {"unknown"}  # still within the grace

    rows.update(submitted_at=timezone.now() - timedelta(minutes=10))
    engine.tick(rollout.pk, cloud_client)
    assert set(rows.values_list("error_code", flat=True)) == {"NOT_ACCEPTED"}
    assert synced.requests("POST", CHANGE_PATH) == []  # never resent


def test_a_throttled_chunk_is_sent_again_after_the_wait(synced, operator_client, cloud_client):
    group_id, _ = drifted_group()
    rollout = plan_drifted(operator_client, group_id)
    confirm_from_page(operator_client, rollout)
    throttled = FaultyChangeCalls(status=429, headers={"Retry-After": "3"})
    waits = []

    engine.start(rollout.pk, faulty_client(throttled), sleep=waits.append)

    assert waits == [3.0]
    rows = rollout.servers.filter(verdict="change")
    assert set(rows.values_list("state", flat=True)) == {"waiting"}
    accepted = [r for r in synced.requests("POST", CHANGE_PATH) if r["status"] == 200]
    assert len(accepted) == 1


def test_per_server_rejections_are_recorded_on_their_rows(synced, operator_client, cloud_client):
    group_id, _ = drifted_group()
    rollout = plan_drifted(operator_client, group_id)
    confirm_from_page(operator_client, rollout)
    victim = rollout.servers.filter(verdict="change").first()
    synced.state.reject(victim.server_id, "WKS.00129901")

    engine.start(rollout.pk, cloud_client, sleep=lambda s: None)

    victim.refresh_from_db()
    assert victim.state == "failed" and victim.error_code == "WKS.00129901"
    others = rollout.servers.filter(verdict="change").exclude(pk=victim.pk)
    assert set(others.values_list("state", flat=True)) == {"waiting"}


def test_a_server_that_became_busy_is_not_sent(synced, operator_client, cloud_client):
    group_id, _ = drifted_group()
    rollout = plan_drifted(operator_client, group_id)
    confirm_from_page(operator_client, rollout)
    row = rollout.servers.filter(verdict="change").first()
    synced.state.patch_server(row.server_id, image_id=rollout.target_image_id)

    engine.start(rollout.pk, cloud_client, sleep=lambda s: None)

    row.refresh_from_db()
    assert row.state == "skipped"
    sent = [sid for r in synced.requests("POST", CHANGE_PATH) for sid in r["body"]["server_ids"]]
    assert row.server_id not in sent


def test_a_worker_killed_in_its_call_leaves_rows_to_reconcile(
    synced, operator_client, cloud_client, settings
):
    settings.ROLLOUT_SEND_ATTEMPTS = 1
    group_id, _ = drifted_group()
    rollout = plan_drifted(operator_client, group_id)
    confirm_from_page(operator_client, rollout)
    Rollout.objects.filter(pk=rollout.pk).update(state="running")
    # The dead worker marked every row sending, then died in its call (which never arrived).
    rollout.servers.filter(state="pending").update(
        state="sending",
        claim="dead",
        send_attempts=1,
        submitted_at=timezone.now() - timedelta(minutes=10),
    )
    RolloutServer.objects.filter(rollout=rollout, state="sending").update(
        updated_at=timezone.now() - timedelta(minutes=10)
    )

    engine.start(rollout.pk, cloud_client, sleep=lambda s: None)  # the restarted worker
    assert synced.requests("POST", CHANGE_PATH) == []  # it does not resend claimed rows

    engine.tick(rollout.pk, cloud_client)
    rows = rollout.servers.filter(verdict="change")
    assert set(rows.values_list("error_code", flat=True)) == {"NOT_ACCEPTED"}


def test_submission_reads_each_group_once_however_the_chunks_straddle_it(
    simulator_factory, settings
):
    sim = simulator_factory(servers=400)
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, **cloud_settings(sim)}
    client = CloudClient(from_settings())
    inventory.sync_now(client=client)
    from dashboard.rollouts import planning

    images = planning.image_map()
    servers = list(Server.objects.select_related("group").filter(gone=False))
    best = max(planning.target_options(servers, images), key=lambda o: o.compatible)
    rollout = planning.create_plan(
        created_by="otto", servers=servers, target=best.image, images=images, reason="r"
    )
    changing = rollout.servers.filter(verdict="change")
    groups = set(changing.values_list("group_id", flat=True))
    assert changing.count() > 100 and len(groups) > 1
    assert planning.confirm(rollout.pk, "otto").confirmed
    before = len(sim.requests("GET", "/app-servers"))

    engine.start(rollout.pk, client, sleep=lambda s: None)

    reads = sim.requests("GET", "/app-servers")[before:]
    group_pages = {dict(r["query"]).get("server_group_id") for r in reads}
    assert group_pages <= groups
    chunks = changing.values_list("chunk", flat=True).distinct().count()
    calls = len(sim.requests("POST", CHANGE_PATH))
    assert calls == chunks
    assert len(reads) <= sum(-(-Server.objects.filter(group_id=g).count() // 100) for g in groups)


def test_a_fresh_plan_keeps_the_waves_and_budget_of_the_stale_one(synced, operator_client):
    group_id, _ = drifted_group()
    rollout = plan_drifted(operator_client, group_id)
    Rollout.objects.filter(pk=rollout.pk).update(
        state=Rollout.State.DISCARDED, canary_size=1, failure_budget=2, soak_seconds=60
    )
    operator_client.post(f"/rollouts/new/{rollout.pk}/replan/")
    fresh = Rollout.objects.latest("pk")
    assert (fresh.canary_size, fresh.failure_budget, fresh.soak_seconds) == (1, 2, 60)
    assert fresh.waves.first().size == 1
