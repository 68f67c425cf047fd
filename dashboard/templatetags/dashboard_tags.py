"""Small template helpers, available in every template (registered as builtins)."""

import json

from django import template
from django.utils.safestring import SafeString, mark_safe

from dashboard.roles import ROLE_LABELS
from dashboard.templatetags.relative_time import relative_time

register = template.Library()
register.filter("relative_time", relative_time, is_safe=True)


@register.filter
def dict_get(mapping: dict, key):
    """`{{ images|dict_get:server.image_id }}`: a lookup by a variable key."""
    if not mapping:
        return None
    return mapping.get(key)


@register.filter
def role_label(role: str) -> str:
    """`{{ role|role_label }}`: a role's name in the reader's language."""
    return str(ROLE_LABELS.get(role, role))


@register.filter
def split(text: str) -> list[str]:
    return text.split()


@register.filter
def share(summary, state: str) -> float:
    """Percentage of a rollout's servers in `state` (see rollouts.progress.Summary)."""
    return summary.share(state)


@register.filter
def duration(delta) -> str:
    """A timedelta as 1h 02m, 3m 05s or 12s."""
    if delta is None:
        return ""
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


@register.filter
def explain_error(code: str) -> str:
    """A readable explanation of an error code from the cloud or from our own checks."""
    from dashboard.errors_explained import explain

    return explain(code)


@register.filter
def pretty_json(value) -> str:
    """A JSON value as indented text for a <pre> (autoescaped by the template, never marked safe).

    Non-JSON values (dates, ids) are shown through str() rather than failing the page.
    """
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


@register.filter
def aria_sort(current_sort: str, column: str) -> SafeString | str:
    """`<th{{ current_sort|aria_sort:"name" }}>`: tells screen readers which column sorts, how."""
    if current_sort == column:
        return mark_safe(' aria-sort="ascending"')
    if current_sort == f"-{column}":
        return mark_safe(' aria-sort="descending"')
    return ""
