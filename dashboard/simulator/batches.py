"""Knob `shared_batch_job`: one job for a whole batch-change-image call, a sub-job per server.

The reference leaves open whether the items of one batch share a job. With the knob on, the
accepted servers of a call get the same `job_id`; each server keeps its own sub-job (its own
clock-driven `Job` inside), and its last-job fields show that sub-job's status under the
shared id. ShowJobDetail of the shared id lists every sub-job and sums their states up.
"""

from datetime import datetime
from typing import Any

from dashboard.simulator.jobs import FAILED, RUNNING, SUCCESS, WAITING, Job
from dashboard.simulator.state import SimState, iso


def share(state: SimState, items: list[dict[str, str]]) -> list[dict[str, str]]:
    """Put every accepted item of one call under one new job id (caller holds the lock)."""
    members = tuple(item["job_id"] for item in items if item["job_id"])
    if not members:
        return items
    batch_id = state.job_ids.take()
    state.batches[batch_id] = members
    for member in members:
        state.batch_of[member] = batch_id
    return [{**item, "job_id": batch_id} if item["job_id"] else item for item in items]


def public_id(state: SimState, job: Job) -> str:
    """The id the cloud shows for `job`: its batch's id when it is part of a shared job."""
    return state.batch_of.get(job.id, job.id)


def members(state: SimState, batch_id: str) -> list[Job]:
    return [state.jobs[j] for j in state.batches.get(batch_id, ()) if j in state.jobs]


def status(jobs: list[Job], now: datetime) -> str:
    states = [job.status(now) for job in jobs]
    if all(s == WAITING for s in states):
        return WAITING
    if any(s in (WAITING, RUNNING) for s in states):
        return RUNNING
    return FAILED if FAILED in states else SUCCESS


def detail(state: SimState, batch_id: str, now: datetime, sub_job: Any) -> dict[str, Any]:
    """ShowJobDetail (v2) of a shared job; `sub_job` renders one member (render.sub_job)."""
    jobs = members(state, batch_id)
    begins = [job.begin_time(now) or job.created for job in jobs]
    ends = [job.end_time(now) for job in jobs]
    overall = status(jobs, now)
    done = overall in (SUCCESS, FAILED)
    return {
        "id": batch_id,
        "job_type": jobs[0].job_type,
        "status": overall,
        "begin_time": iso(min(begins)),
        "end_time": iso(max(e for e in ends if e is not None)) if done else None,
        "sub_jobs_total": len(jobs),
        "sub_jobs": [sub_job(state, job, now) for job in jobs],
    }
