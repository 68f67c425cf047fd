"""A timeline event's, or a follow-up rollout's, stored reason in the reader's language.

Reasons are stored as worded when the move was made (exports and the API keep them so): by
the domain in the language of the process that moved the rollout, or, for a wave moved with
its rollout, as "rollout <action>". Pages word them again here for whoever reads; a text that
is none of these (a person's own words) is shown as it was stored.
"""

import re
from functools import cache

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext_lazy

from dashboard.models import Rollout
from dashboard.rollouts import engine

# The reasons the rollout domain writes, worded as where they are written (signoff.py,
# planning.py), so one catalog entry serves both.
FIXED = (
    gettext_lazy("The canary wave is done; the next waves wait for sign-off."),
    gettext_lazy("The plan was stale."),
    gettext_lazy("Cancelled on the plan page."),
)

# The same, with a number in them.
NUMBERED = (gettext_lazy("Not confirmed within %(s)d seconds."),)

# A follow-up's reason: its source's, after a prefix worded in the language of who asked for
# it (control.py).
FOLLOW_UPS = (
    gettext_lazy("Retry of #%(id)s: %(reason)s"),
    gettext_lazy("Revert of #%(id)s: %(reason)s"),
)

# A wave moved with its rollout, when the rollout's move had no reason: "rollout <action>".
CASCADED = {
    "pause": gettext_lazy("The rollout was paused."),
    "hold_for_signoff": gettext_lazy("The rollout was held for sign-off."),
    "halt": gettext_lazy("The rollout halted."),
    "resume": gettext_lazy("The rollout was resumed."),
    "cancel": gettext_lazy("The rollout was cancelled."),
    "cancel_in_flight": gettext_lazy("The rollout is being cancelled."),
    "complete": gettext_lazy("The rollout finished."),
    "fail": gettext_lazy("The rollout failed."),
    "finish_cancel": gettext_lazy("The rollout was cancelled."),
}


def event_reason(stored: str, rollout: Rollout) -> str:
    """`stored` (a RolloutEvent's reason) in the reader's language."""
    if not stored:
        return stored
    halted = engine.halted_reason(rollout, stored)
    if halted != stored:
        return halted
    fixed = _fixed_in_every_language().get(stored)
    if fixed is not None:
        return str(fixed)
    for pattern, message in _numbered_in_every_language():
        found = pattern.fullmatch(stored)
        if found:
            return str(message) % {k: int(v) for k, v in found.groupdict().items()}
    action = stored.removeprefix("rollout ") if stored.startswith("rollout ") else ""
    if action in CASCADED:
        return str(CASCADED[action])
    return stored


def rollout_reason(stored: str) -> str:
    """A rollout's reason in the reader's language: a follow-up's prefix ("Retry of #4: …")
    worded again, as often as follow-ups were made of follow-ups; the operator's own words
    as they wrote them."""
    for pattern, message in _follow_ups_in_every_language():
        found = pattern.fullmatch(stored)
        if found:
            inner = rollout_reason(found["reason"])
            return str(message) % {"id": found["id"], "reason": inner}
    return stored


def _every_language():
    for language, _name in settings.LANGUAGES:
        with translation.override(language):
            yield language


@cache
def _fixed_in_every_language() -> dict:
    """Each fixed reason as every offered language words it → the reason."""
    return {str(message): message for _lang in _every_language() for message in FIXED}


@cache
def _numbered_in_every_language() -> tuple:
    """(a pattern matching a numbered reason as one language words it, the reason), for each
    reason and language."""
    patterns = []
    for _lang in _every_language():
        for message in NUMBERED:
            text = re.escape(str(message))
            text = re.sub(r"%\\\(([a-z]+)\\\)d", r"(?P<\1>\\d+)", text)
            patterns.append((re.compile(text), message))
    return tuple(patterns)


@cache
def _follow_ups_in_every_language() -> tuple:
    """(a pattern matching a follow-up's reason as one language words it, the prefix)."""
    patterns = []
    for _lang in _every_language():
        for message in FOLLOW_UPS:
            text = re.escape(str(message))
            text = text.replace(re.escape("%(id)s"), r"(?P<id>\d+)")
            text = text.replace(re.escape("%(reason)s"), r"(?P<reason>.*)")
            patterns.append((re.compile(text, re.S), message))
    return tuple(patterns)
