"""Pause after the canary for sign-off: the rollout holds once its canary wave is done.

The hold is the lifecycle move `hold_for_signoff` (running → paused), with its event on the
timeline and the `signoff_needed` notification; someone resumes the rollout to send the next
waves (or cancels it).
"""

from django.db.models import Exists, OuterRef, Subquery
from django.utils.translation import gettext as _

from dashboard.models import Rollout, RolloutEvent, RolloutWave
from dashboard.rollouts import lifecycle

HOLD = "hold_for_signoff"


def hold_after_canary(rollout: Rollout, wave: RolloutWave) -> bool:
    """Hold the rollout if `wave` is its canary, now done, and sign-off was asked for.

    Returns whether this call held it.
    """
    if not (rollout.canary_signoff and rollout.canary_size and wave.number == 1):
        return False
    if wave.state != RolloutWave.State.DONE:
        return False
    if not rollout.waves.filter(number__gt=1).exists():
        return False  # nothing after the canary: nothing to sign off
    return lifecycle.transition(
        rollout,
        HOLD,
        reason=_("The canary wave is done; the next waves wait for sign-off."),
        canary_servers=wave.size,
    )


def held_for_signoff() -> Exists:
    """The rule of `pending`, for a list of rollouts (annotate with it): paused, and the
    last move of the rollout itself was the hold."""
    # Two levels down from the rollout: its last move, inside the event found to be the hold.
    last_move = RolloutEvent.objects.filter(rollout=OuterRef(OuterRef("pk")), wave__isnull=True)
    return Exists(
        RolloutEvent.objects.filter(
            pk=Subquery(last_move.values("pk")[:1]),
            action=HOLD,
            rollout__state=Rollout.State.PAUSED,
        )
    )


def pending(rollout: Rollout) -> bool:
    """Whether the rollout is paused waiting for sign-off (its last rollout move was the hold)."""
    if rollout.state != Rollout.State.PAUSED:
        return False
    last = RolloutEvent.objects.filter(rollout=rollout, wave__isnull=True).first()
    return last is not None and last.action == HOLD
