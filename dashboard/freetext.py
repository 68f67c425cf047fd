"""Text a person types for others to read: a rollout's reason, a rejection, a logoff warning.

Such text is shown on pages, in the audit log, in exports and in notifications. Invisible
direction controls (U+202A to U+202E, U+2066 to U+2069) make it read other than it is ("CHG-1234"
typed backwards reads forwards), so it is refused with a message rather than stored.
"""

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

_DIRECTION_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")

HIDDEN_DIRECTION = _(
    "Remove the invisible direction characters (such as U+202E): they make the text read "
    "other than it is."
)


def hides_direction(text: str) -> bool:
    return bool(_DIRECTION_CONTROLS.search(text or ""))


def validate_readable(text: str) -> None:
    """A form field's validator: refuses text holding direction controls."""
    if hides_direction(text):
        raise ValidationError(HIDDEN_DIRECTION, code="direction_controls")
