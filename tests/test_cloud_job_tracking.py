"""Jobs as the documents leave them open: shared by a batch, or unknown and answered 400.

The simulator's knobs `shared_batch_job` and `unknown_job_as_400` set these the hard way;
the dashboard's refresh must track each server right either way.
"""

import pytest
from django.utils import timezone

from dashboard import inventory
from dashboard.cloud.errors import CloudError
from dashboard.cloud.records import ChangeTarget, Job, SubJob
from dashboard.models import Image, Rollout, RolloutServer, Server
from dashboard.rollouts import refresh

pytestmark = pytest.mark.django_db


def _rollout(target: str) -> Rollout:
    return Rollout.objects.create(
        created_by="otto.operator", reason="CHG-1", target_image_id=target,
        target_image_name="target", state="running", started_at=timezone.now(),
    )  # fmt: skip


def _row(rollout: Rollout, server: Server, job_id: str) -> RolloutServer:
    return RolloutServer.objects.create(
        rollout=rollout, server_id=server.id, server_name=server.name, group_id=server.group_id,
        to_image_id=rollout.target_image_id, from_image_id=server.image_id, verdict="change",
        state="waiting", job_id=job_id, submitted_at=timezone.now(),
    )  # fmt: skip


def _drifted_pair(cloud_client) -> tuple[list[Server], Image]:
    inventory.sync_now(client=cloud_client)
    for group_id in Server.objects.values_list("group_id", flat=True).distinct():
        found = list(
            Server.objects.filter(
                group_id=group_id, drift=True, frozen=False, job_status="SUCCESS"
            ).order_by("name")[:2]
        )
        image = Image.objects.get(id=found[0].group.image_id) if found else None
        if len(found) == 2 and image is not None and image.image_type == "private":
            return found, image
    raise AssertionError("the test fleet has no two drifted servers in one group")


@pytest.mark.parametrize("second_fails", [False, True], ids=["one-fails", "both-fail"])
def test_a_job_shared_by_a_batch_is_tracked_server_by_server(
    sim_settings, cloud_client, second_fails: bool
) -> None:
    sim = sim_settings
    sim.state.set_faults(shared_batch_job=True)
    (first, second), image = _drifted_pair(cloud_client)
    target = ChangeTarget(image.id, image.image_type, image.os_type)
    result = cloud_client.batch_change_image([first.id, second.id], target)
    shared = {item.job_id for item in result.items}
    assert len(shared) == 1 and "" not in shared
    (job_id,) = shared
    failures = {first.id: "WKS.00129901"} | ({second.id: "WKS.00211401"} if second_fails else {})
    with sim.state.lock:  # each server's own part of the job fails with its own code
        for member in (sim.state.jobs[j] for j in sim.state.batches[job_id]):
            if member.server_id in failures:
                member.fails, member.error_code = True, failures[member.server_id]
                member.error_message = f"{member.server_name} could not be rebuilt."

    job = cloud_client.show_job(job_id)
    assert {s.resource_id for s in job.sub_jobs} == {first.id, second.id}
    assert job.sub_job_for(second.id).resource_id == second.id

    rollout = _rollout(image.id)
    rows = {s.id: _row(rollout, s, job_id) for s in (first, second)}
    sim.advance(sim.config.job_seconds + 1)
    refresh.track(rollout, cloud_client)

    one, two = (RolloutServer.objects.get(pk=rows[s.id].pk) for s in (first, second))
    assert (one.state, one.error_code) == ("failed", "WKS.00129901")
    assert second.name in two.error_message if second_fails else two.error_message == ""
    if second_fails:
        assert (two.state, two.error_code) == ("failed", "WKS.00211401")
    else:
        assert (two.state, two.verified, two.error_code) == ("succeeded", True, "")
    assert cloud_client.show_job(job_id).status == "FAILED"  # the whole job, for the record


def test_an_unknown_job_answered_400_counts_as_gone_and_stops_nothing(
    sim_settings, cloud_client
) -> None:
    sim = sim_settings
    sim.state.set_faults(unknown_job_as_400=True)
    (server, _other), image = _drifted_pair(cloud_client)
    with pytest.raises(CloudError) as caught:
        cloud_client.show_job("575768277000000001")
    assert (caught.value.status, caught.value.error_code) == (400, "WKS.00149901")
    assert caught.value.not_found

    rollout = _rollout(image.id)
    row = _row(rollout, server, "575768277000000001")  # a job the cloud no longer knows
    refresh.track(rollout, cloud_client)
    row.refresh_from_db()
    assert (row.state, row.error_code) == ("failed", "JOB_VANISHED")


@pytest.mark.parametrize(
    ("status", "gone"),
    [(404, True), (400, True), (409, True), (401, False), (403, False), (429, False),
     (500, False), (None, False)],
)  # fmt: skip
def test_not_found_is_any_refusal_but_authentication_permission_and_throttling(
    status, gone
) -> None:
    assert CloudError(status).not_found is gone


def test_a_job_picks_the_sub_job_of_a_server() -> None:
    subs = (SubJob("s1", "j", resource_id="a"), SubJob("s2", "j", resource_id="b"))
    job = Job("j", sub_jobs=subs)
    assert job.sub_job_for("b") is subs[1]
    assert job.sub_job_for("c") is None
