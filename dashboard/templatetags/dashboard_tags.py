"""Small template helpers, available in every template (registered as builtins)."""

from django import template

register = template.Library()


@register.filter
def dict_get(mapping: dict, key):
    """`{{ images|dict_get:server.image_id }}`: a lookup by a variable key."""
    if not mapping:
        return None
    return mapping.get(key)


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
