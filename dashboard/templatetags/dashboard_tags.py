"""Small template helpers, available in every template (registered as builtins)."""

import json

from django import template
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext, pgettext_lazy

from dashboard.models import Image, Rollout, RolloutServer, RolloutWave
from dashboard.roles import OPERATOR, ROLE_LABELS, has_role
from dashboard.templatetags.relative_time import relative_time
from dashboard.wording import separator, word_list

register = template.Library()
register.filter("relative_time", relative_time, is_safe=True)


@register.filter
def operates_in(request, project) -> bool:
    """Whether the person operates `project` (their global role, or the project's own group):
    what a row's "Update this group" and selection boxes are offered by."""
    return request is not None and project is not None and has_role(request, OPERATOR, project)


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


# The cloud's status words (server status, job status and type), as its Chinese console says
# them; a word not listed here is shown as the cloud sent it.
CLOUD_WORDS = {
    "REGISTERED": pgettext_lazy("server status", "registered"),
    "FREEZE": pgettext_lazy("server status", "frozen"),
    "NONE": pgettext_lazy("server status", "not registered"),
    "MAINTAINING": pgettext_lazy("server status", "maintaining"),
    "ABNORMAL": pgettext_lazy("server status", "abnormal"),
    "ACTIVE": pgettext_lazy("server status", "running"),
    "SHUTOFF": pgettext_lazy("server status", "shut down"),
    "STOPPED": pgettext_lazy("server status", "stopped"),
    "WAITING": pgettext_lazy("job status", "waiting"),
    "RUNNING": pgettext_lazy("job status", "running"),
    "SUCCESS": pgettext_lazy("job status", "succeeded"),
    "FAILED": pgettext_lazy("job status", "failed"),
    "CHANGE_SERVER_IMAGE": pgettext_lazy("job type", "change image"),
    "CREATE_SERVER": pgettext_lazy("job type", "create server"),
    "DELETE_SERVER": pgettext_lazy("job type", "delete server"),
    "REBUILD": pgettext_lazy("job type", "rebuild"),
    "REINSTALL_OS": pgettext_lazy("job type", "reinstall OS"),
    "MIGRATE_SERVER": pgettext_lazy("job type", "migrate server"),
    "REJOIN_DOMAIN": pgettext_lazy("job type", "rejoin domain"),
    "UPGRADE_ACCESS_AGENT": pgettext_lazy("job type", "upgrade access agent"),
    "UPDATE_FREEZE_STATUS": pgettext_lazy("job type", "update freeze status"),
}
SYNC_TRIGGERS = {
    "schedule": gettext_lazy("scheduled"),
    "manual": gettext_lazy("manual"),
    "startup": gettext_lazy("at start-up"),
    "rollout": gettext_lazy("after a rollout"),
    "command": gettext_lazy("from the command line"),
}


AUDIT_OUTCOMES = {
    "ok": pgettext_lazy("audit outcome", "ok"),
    "refused": pgettext_lazy("audit outcome", "refused"),
    "error": pgettext_lazy("audit outcome", "error"),
}
WORKER_STATES = {
    "live": pgettext_lazy("worker state", "live"),
    "stopped": pgettext_lazy("worker state", "stopped"),
    "dead": pgettext_lazy("worker state", "dead"),
}


# IMS image states (ListImages `status`).
IMAGE_STATES = {
    "active": pgettext_lazy("image status", "active"),
    "queued": pgettext_lazy("image status", "queued"),
    "saving": pgettext_lazy("image status", "saving"),
    "deleted": pgettext_lazy("image status", "deleted"),
    "killed": pgettext_lazy("image status", "failed"),
}


@register.filter
def image_status(status: str) -> str:
    return str(IMAGE_STATES.get(status, status))


PRESETS = {
    "careful": gettext_lazy("Careful"),
    "standard": gettext_lazy("Standard"),
    "custom": gettext_lazy("Custom"),
}


@register.filter
def actor_label(actor: str) -> str:
    """Who did it: a person's name as it is; the worker (lifecycle.WORKER) named in words."""
    return pgettext("actor", "worker") if actor == "worker" else actor


@register.filter
def row_state(state: str) -> str:
    """`{{ state|row_state }}`: a rollout row's state code as its label, in the reader's words."""
    return str(dict(RolloutServer.State.choices).get(state, state))


@register.filter
def rollout_state(state: str) -> str:
    """A rollout's or a wave's state code as its label (the timeline holds both)."""
    labels = {**dict(RolloutWave.State.choices), **dict(Rollout.State.choices)}
    return str(labels.get(state, state))


# The timeline's actions that say more than the move between two states does; the others
# (pause: running → paused) are said by the states alone.
EVENT_ACTIONS = {
    "request_approval": gettext_lazy("approval asked"),
    "approve": gettext_lazy("approved"),
    "reject": gettext_lazy("rejected"),
    "expire": gettext_lazy("not confirmed in time"),
    "hold_for_signoff": gettext_lazy("held for sign-off"),
    "halt": gettext_lazy("error budget crossed"),
    "restart": gettext_lazy("started again"),
}


@register.filter
def event_action(action: str) -> str:
    """`{{ e.action|event_action }}`: what the action adds to its states, or nothing."""
    return str(EVENT_ACTIONS.get(action, ""))


@register.filter
def session_policy(policy: str) -> str:
    return str(dict(Rollout.SessionPolicy.choices).get(policy, policy))


@register.filter
def image_type(kind: str) -> str:
    return str(dict(Image.Type.choices).get(kind, kind))


@register.filter
def preset_label(name: str) -> str:
    """A safety preset's name (settings.ROLLOUT_PRESETS, or custom) in the reader's language."""
    return str(PRESETS.get(name, name.capitalize() if name else name))


@register.filter
def audit_outcome(outcome: str) -> str:
    return str(AUDIT_OUTCOMES.get(outcome, outcome))


@register.filter
def worker_state(state: str) -> str:
    return str(WORKER_STATES.get(state, state))


@register.filter
def cloud_word(code: str) -> str:
    """`{{ server.status|cloud_word }}`: a cloud status or job word in the reader's language."""
    return str(CLOUD_WORDS.get(code or "", (code or "").lower()))


@register.filter
def sync_trigger(trigger: str) -> str:
    """`{{ run.trigger|sync_trigger }}`: what started an inventory sync."""
    return str(SYNC_TRIGGERS.get(trigger, trigger))


@register.simple_tag
def word_separator() -> str:
    """`{% word_separator %}`: between the parts of a list written out in a template."""
    return separator()


@register.simple_tag
def filter_in_words(query: str) -> str:
    """`{% filter_in_words selection.filter as words %}`: a stored servers filter as the
    servers page's filters read ("Group: finance · Not on group image: yes")."""
    from dashboard.forms import ServerFilterForm  # forms import the rollout domain

    return ServerFilterForm.for_words(query).in_words() if query else ""


@register.filter
def words(items) -> str:
    """`{{ names|words }}`: joined by the reader's language's separator (escaped as text)."""
    return word_list(items)


@register.filter
def words_upto(items, limit: int) -> str:
    """`{{ names|words_upto:6 }}`: the first six joined as `words` does, then "…"."""
    return word_list(items, limit)


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
        return _("%(h)dh %(m)02dm") % {"h": hours, "m": minutes}
    if minutes:
        return _("%(m)dm %(s)02ds") % {"m": minutes, "s": seconds}
    return _("%(s)ds") % {"s": seconds}


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


# Pages that narrow to `?project=`: the switcher keeps their path (and their other filters);
# from any other page (a server, a rollout) it goes to the overview.
PROJECT_PAGES = frozenset(
    {"overview", "groups", "servers", "images", "rollouts", "audit", "cloud-check"}
)
# Where in a list a link points: another project's list starts at its first page.
PAGE_PARAMS = ("project", "cursor", "page")


@register.simple_tag(takes_context=True)
def chosen_project(context: template.Context):
    """`{% chosen_project as project_choice %}`: the page's `?project=` (a ProjectChoice), or
    None where there is no request (an error page)."""
    request = context.get("request")
    if request is None:
        return None
    from dashboard.views.inventory import chosen_project as choose

    return choose(request)


@register.inclusion_tag("inventory/project_switcher.html", takes_context=True)
def project_switcher(context: template.Context) -> dict:
    """The navigation's project switcher: a GET form that works without JavaScript. Shown
    only when several projects are configured (one query for their rows)."""
    from dashboard import projects

    choice = chosen_project(context)
    if choice is None or not choice.several:
        return {"show": False}
    request = context["request"]
    match = request.resolver_match
    here = match is not None and match.url_name in PROJECT_PAGES
    kept = [
        (name, value)
        for name, values in request.GET.lists()
        if name not in PAGE_PARAMS
        for value in values
    ]
    return {
        "show": True,
        "action": request.path if here else reverse("overview"),
        "kept": kept if here else [],
        "projects": projects.rows(),
        "current": choice.project,
    }


# --- Stored texts in the reader's language -------------------------------------------------
# A plan's reasons, its per-server target and a halt's reason are stored as worded when they
# were made (exports and the API keep them so); pages word them again for whoever reads.


@register.filter
def reason_text(stored: str) -> str:
    """A row's stored reason (`reason_message`) in the reader's language."""
    from dashboard.compat import localized

    return localized(stored)


@register.filter
def target_label(rollout: Rollout) -> str:
    """What a rollout moves its servers to: its image's name, or "each group's image" /
    "previous images" in the reader's language."""
    from dashboard.rollouts.planning import target_label as label

    return label(rollout)


@register.filter
def halted_reason(rollout: Rollout) -> str:
    from dashboard.rollouts.engine import halted_reason as reason

    return reason(rollout)


@register.filter
def rollout_reason(stored: str) -> str:
    """A rollout's reason; a retry's or revert's prefix in the reader's language."""
    from dashboard.rollouts.timeline import rollout_reason as reason

    return reason(stored)


@register.filter
def event_reason(stored: str, rollout: Rollout) -> str:
    """A timeline event's reason, worded again in the reader's language when the dashboard
    wrote it (a halt, a hold for sign-off, a discarded plan, a wave moved with its rollout)."""
    from dashboard.rollouts.timeline import event_reason as reason

    return reason(stored, rollout)
