"""Which rollouts need a second person: the four-eyes policy over protected server groups."""

from collections.abc import Iterable

from django.conf import settings


def needs_second_approval(group_ids_or_names: Iterable[str]) -> bool:
    """Whether a rollout touching these server groups (ids or names) needs an approver.

    PROTECTED_SERVER_GROUPS lists ids or names (matched without regard to case); `*` protects
    every group.
    """
    protected = {item.strip().casefold() for item in settings.PROTECTED_SERVER_GROUPS}
    if not protected:
        return False
    if "*" in protected:
        return True
    return any((item or "").strip().casefold() in protected for item in group_ids_or_names)
