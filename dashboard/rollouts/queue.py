"""The one place the rollout domain puts work on the task queue: starting a confirmed rollout
and the chain of ticks that drives it.

The tasks live here, beside the code that enqueues them, so the domain never imports the
layer above it; `dashboard.tasks` lists them with the other tasks. The engine itself enqueues
nothing: it answers what happened, and these tasks decide what runs next.

The tick chain carries a token stored on the rollout: each tick re-enqueues itself only while
its token is still the current one, so a chain started by recovery replaces a lost one
instead of running beside it.
"""

import uuid
from datetime import timedelta

from django.conf import settings
from django.tasks import task
from django.utils import timezone

from dashboard import projects
from dashboard.models import Rollout
from dashboard.rollouts import engine

# States in which ticks still have work: tracking jobs, advancing waves, finishing.
TICKING = (
    Rollout.State.RUNNING,
    Rollout.State.PAUSED,
    Rollout.State.HALTED,
    Rollout.State.CANCELLING,
)


@task()
def start_rollout(rollout_id: int) -> str:
    """Start a confirmed rollout when its schedule allows, then keep it ticking."""
    step = engine.begin(rollout_id)
    if step.state == Rollout.State.QUEUED and step.retry_in is not None:
        enqueue_start(rollout_id, delay=step.retry_in)
    elif step.state in TICKING:
        enqueue_tick(rollout_id, delay=_seconds(step.retry_in))
    return step.state


@task()
def tick_rollout(rollout_id: int, token: str = "") -> str:
    """One tick; the next one is enqueued while the rollout has work and the chain is current
    (later while the cloud fails, or while a stopped rollout has nothing in flight)."""
    step = engine.step(rollout_id, token=token)
    if step.state in TICKING:
        enqueue_tick(rollout_id, delay=_seconds(step.retry_in), token=token)
    return step.state


def _seconds(wait: timedelta | None) -> float | None:
    return None if wait is None else wait.total_seconds()


def enqueue_start(rollout_id: int, delay: timedelta | None = None) -> None:
    """Enqueue the start (now, or after `delay`). Call it once the transaction commits."""
    job = start_rollout.using(queue_name=_queue(rollout_id))
    if delay is not None:
        job = job.using(run_after=timezone.now() + delay)
    job.enqueue(rollout_id)


def enqueue_tick(rollout_id: int, delay: float | None = None, token: str = "") -> bool:
    """Schedule the next tick. With `token`, only if that chain is still the current one.

    Without a token this starts a new chain, which retires any older one. Returns whether a
    tick was enqueued.
    """
    new_token = uuid.uuid4().hex
    chains = Rollout.objects.filter(pk=rollout_id)
    if token:
        chains = chains.filter(refresh_token=token)
    if not chains.update(refresh_token=new_token):
        return False
    wait = settings.ROLLOUT_REFRESH_SECONDS if delay is None else delay
    job = tick_rollout.using(queue_name=_queue(rollout_id))
    if wait > 0:
        job = job.using(run_after=timezone.now() + timedelta(seconds=wait))
    job.enqueue(rollout_id, new_token)
    return True


def _queue(rollout_id: int) -> str:
    """The rollout's project's queue (see projects.queue_for)."""
    if not settings.CLOUD_PROJECTS:
        return projects.DEFAULT_QUEUE
    project_id = Rollout.objects.filter(pk=rollout_id).values_list("project_id", flat=True).first()
    return projects.queue_for(project_id)
