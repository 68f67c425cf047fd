"""Forms: the single source of truth for what may be submitted."""

import datetime as dt
import uuid
from datetime import UTC, datetime, timedelta

from django import forms
from django.conf import settings
from django.db.models import DateTimeField, F, Q, QuerySet, Value
from django.db.models.functions import Coalesce
from django.forms.utils import flatatt
from django.http import QueryDict
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy, ngettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from dashboard import audit, compat, freetext, keyset, projects
from dashboard.models import AuditEvent, Image, Project, Rollout, Server, ServerGroup
from dashboard.rollouts import planning
from dashboard.wording import word_list

ANY = pgettext_lazy("filter", "any")
YES_NO = [("", ANY), ("yes", _("yes")), ("no", _("no"))]
JOB_STATUSES = [
    ("", ANY),
    ("WAITING", pgettext_lazy("job status", "waiting")),
    ("RUNNING", pgettext_lazy("job status", "running")),
    ("busy", _("waiting or running (busy)")),
    ("SUCCESS", pgettext_lazy("job status", "succeeded")),
    ("FAILED", pgettext_lazy("job status", "failed")),
    ("none", _("no job")),
]
STATUSES = [
    ("", ANY),
    ("REGISTERED", pgettext_lazy("server status", "registered")),
    ("MAINTAINING", pgettext_lazy("server status", "maintaining")),
    ("STOPPED", pgettext_lazy("server status", "stopped")),
    ("FREEZE", pgettext_lazy("server status", "frozen")),
    ("UNREGISTER", pgettext_lazy("server status", "unregistered")),
    ("NONE", pgettext_lazy("server status", "abnormal")),
]
# Sort name → the key the servers page is ordered (and keyset-paged) by, with `id` after it.
# Keys never compare NULL: no group sorts as "", no job as the earliest time.
NO_JOB = datetime(1970, 1, 1, tzinfo=UTC)
SORT_KEYS = {
    "name": (F("name"), str),
    "group": (Coalesce("group__name", Value("")), str),
    "image": (F("image_id"), str),
    "status": (F("status"), str),
    "sessions": (F("session_count"), int),
    "job": (Coalesce("job_time", Value(NO_JOB), output_field=DateTimeField()), datetime),
}
SORTS = [s for name in SORT_KEYS for s in (name, f"-{name}")]


class PlainSelect(forms.Select):
    """A <select> built in Python rather than one widget template per option.

    The servers page has a hundred options (every group and image); rendering each through
    the option template cost more than all of the page's queries together.
    """

    def render(self, name, value, attrs=None, renderer=None) -> str:
        chosen = "" if value is None else str(value)
        options = format_html_join(
            "",
            '<option value="{}"{}>{}</option>',
            ((v, " selected" if str(v) == chosen else "", label) for v, label in self.choices),
        )
        attrs = flatatt(self.build_attrs(self.attrs, attrs))
        return format_html('<select name="{}"{}>{}</select>', name, attrs, options)


class ServerFilterForm(forms.Form):
    """Search, filters and sort for the servers page. Unknown values are simply ignored."""

    q = forms.CharField(required=False, max_length=200, label=_("Search"))
    group = forms.ChoiceField(required=False, label=_("Group"))
    image = forms.ChoiceField(required=False, label=_("Current image"))
    status = forms.ChoiceField(required=False, choices=STATUSES, label=_("Status"))
    maintenance = forms.ChoiceField(required=False, choices=YES_NO, label=_("Maintenance mode"))
    sessions = forms.ChoiceField(required=False, choices=YES_NO, label=_("Has sessions"))
    drift = forms.ChoiceField(required=False, choices=YES_NO, label=_("Not on group image"))
    job_status = forms.ChoiceField(required=False, choices=JOB_STATUSES, label=_("Last job"))
    sort = forms.ChoiceField(required=False, choices=[(k, k) for k in SORTS], label=_("Sort"))
    # A configured project's name (?project=beijing); cleaned to its row, or None for all.
    project = forms.ChoiceField(required=False, label=_("Project"))

    def __init__(self, *args, groups: list[ServerGroup], images: list[Image], **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            if isinstance(field, forms.ChoiceField):
                field.widget = PlainSelect(choices=field.choices)
        self.fields["group"].choices = [("", _("all groups"))] + [(g.id, g.name) for g in groups]
        self.fields["image"].choices = [("", _("any image")), *_image_choices(images)]
        self.fields["project"].choices = [("", _("all projects"))] + [
            (c.name, c.title) for c in projects.configured()
        ]

    def clean_project(self) -> Project | None:
        return projects.by_name(self.cleaned_data["project"])

    def filter(self, servers: QuerySet[Server]) -> QuerySet[Server]:
        """Apply the valid filters; an invalid form filters nothing but keeps `gone` out.

        The rows carry their `sort_key` and are ordered by (sort_key, id), both one way.
        """
        ordering = self.ordering()
        servers = self._matching(servers.filter(gone=False))
        servers = servers.annotate(sort_key=SORT_KEYS[ordering.name.lstrip("-")][0])
        return servers.order_by(*ordering.order_by())

    def ordering(self) -> keyset.Ordering:
        sort = (self.is_valid() and self.cleaned_data["sort"]) or "name"
        return keyset.Ordering(
            sort, SORT_KEYS[sort.lstrip("-")][1], descending=sort.startswith("-")
        )

    def _matching(self, servers: QuerySet[Server]) -> QuerySet[Server]:
        if not self.is_valid():
            return servers
        data = self.cleaned_data
        if q := data["q"].strip():
            # One lowercase column (name, machine name, addresses) the sync fills.
            servers = servers.filter(Q(search_text__contains=q.lower()) | Q(id=q))
        if data["project"] is not None:
            servers = servers.filter(project=data["project"])
        if data["group"]:
            servers = servers.filter(group_id=data["group"])
        if data["image"]:
            servers = servers.filter(image_id=data["image"])
        if data["status"]:
            servers = servers.filter(status=data["status"])
        servers = _yes_no(servers, data["maintenance"], Q(maintain_status=True))
        servers = _yes_no(servers, data["sessions"], Q(session_count__gt=0))
        servers = _yes_no(servers, data["drift"], Q(drift=True))
        if data["job_status"] == "none":
            servers = servers.filter(job_status="")
        elif data["job_status"] == "busy":  # what the overview counts as busy
            servers = servers.filter(job_status__in=compat.BUSY_JOB_STATES)
        elif data["job_status"]:
            servers = servers.filter(job_status=data["job_status"])
        return servers

    def active_filters(self) -> dict[str, str]:
        """The filters that narrow the servers within a project. The project alone narrows
        nothing a rollout may take: each project is a whole fleet of its own."""
        if not self.is_valid():
            return {}
        return {k: v for k, v in self.cleaned_data.items() if v and k not in ("sort", "project")}

    def in_words(self) -> str:
        """The filters as the servers page shows them ("Group: finance · Not on group image:
        yes"), the project too: what a selection of "all matching" was made with."""
        if not self.is_valid():
            return ""
        parts = []
        for name, value in self.cleaned_data.items():
            raw = self.data.get(name, "")
            if not value or name == "sort":
                continue
            field = self.fields[name]
            shown = f"“{value}”" if name == "q" else str(dict(field.choices).get(raw, raw))
            parts.append(f"{field.label}: {shown}")
        return " · ".join(parts)

    @classmethod
    def for_words(cls, query: str) -> "ServerFilterForm":
        """The form bound to a stored filter, knowing only the group and image it names."""
        data = QueryDict(query)
        return cls(
            data,
            groups=list(ServerGroup.objects.filter(pk=data.get("group", ""))),
            images=list(Image.objects.filter(id=data.get("image", "")).select_related("project")),
        )

    # Said by the pages and the API when a filter would select the whole fleet.
    NOTHING_FILTERED = gettext_lazy("Filter the servers first: a rollout never takes them all.")

    @classmethod
    def for_fleet(cls, data) -> "ServerFilterForm":
        """The form bound to `data`, offering the live groups and every image."""
        return cls(
            data,
            groups=list(ServerGroup.objects.filter(gone=False)),
            images=list(Image.objects.select_related("project")),
        )

    def selection(self) -> list[str] | None:
        """The ids of the live servers the filter matches, as a rollout's selection: one more
        than a rollout holds, so the rollout form can say the selection is too large. None
        when the filter narrows nothing: a rollout never takes the whole fleet."""
        if not self.active_filters():
            return None
        ids = self.filter(Server.objects.all()).values_list("id", flat=True)
        return list(ids[: settings.ROLLOUT_MAX_SERVERS + 1])


def _image_choices(images: list[Image]) -> list[tuple[str, str]]:
    """Each image id once. With images of several projects each is labelled with the
    projects that have it: two projects' own images often share a name, while a public
    image has the same id (and a row) in each project of a region."""
    names: dict[str, str] = {}
    holders: dict[str, list[str]] = {}
    for image in images:
        names.setdefault(image.id, image.name)
        holders.setdefault(image.id, []).append(str(image.project_id))
    if len({image.project_id for image in images}) < 2:
        return list(names.items())
    titles = {str(image.project_id): image.project.title for image in images}
    return [
        (
            image_id,
            _("%(image)s (%(projects)s)")
            % {"image": name, "projects": word_list(titles[p] for p in holders[image_id])},
        )
        for image_id, name in names.items()
    ]


def _yes_no(servers: QuerySet[Server], answer: str, condition: Q) -> QuerySet[Server]:
    if answer == "yes":
        return servers.filter(condition)
    if answer == "no":
        return servers.exclude(condition)
    return servers


CUSTOM = "custom"
MAX_SCHEDULE_DAYS = 90  # a start time further ahead is a typo more often than a plan
# The loose safety fields a preset sets (and Custom leaves to the person planning).
PRESET_FIELDS = (
    "canary",
    "canary_signoff",
    "wave_size",
    "soak_minutes",
    "failure_budget",
    "session_policy",
    "session_wait_minutes",
    "logoff_delay_minutes",
)


def preset_choices() -> list[tuple[str, str]]:
    presets = settings.ROLLOUT_PRESETS
    return [*((name, p["label"]) for name, p in presets.items()), (CUSTOM, _("Custom"))]


def describe_preset(preset: dict) -> str:
    """ "Canary 1, then sign-off · waves of 10% · …" in words, for the preset's choice."""
    parts = []
    if preset.get("canary"):
        if preset.get("canary_signoff"):
            parts.append(_("canary of %(n)s, paused for sign-off") % {"n": preset["canary"]})
        else:
            parts.append(_("canary of %(n)s") % {"n": preset["canary"]})
    if preset.get("wave_size"):
        parts.append(_("waves of %(n)s") % {"n": preset["wave_size"]})
    else:
        parts.append(str(_("one wave")))
    if minutes := preset.get("soak_minutes"):
        parts.append(_("%(n)s min soak between waves") % {"n": minutes})
    policy = dict(Rollout.SessionPolicy.choices).get(preset.get("session_policy", "none"), "")
    parts.append(_("users: %(policy)s") % {"policy": policy})
    if budget := str(preset.get("failure_budget") or ""):
        if budget.isdigit():  # a count: "1 failure", "2 failures"
            text = ngettext(
                "halt after more than %(n)s failure",
                "halt after more than %(n)s failures",
                int(budget),
            )
        else:  # a share of the servers, e.g. "5%"
            text = _("halt after more than %(n)s failures")
        parts.append(text % {"n": budget})
    return " · ".join(parts)


class RolloutForm(forms.Form):
    """Which image, which safety, and why, for a selection of servers.

    The view resolves the selection (a stored Selection or a servers-page filter) to server
    ids; the form resolves them to live servers, offers only images compatible with at least
    one of them (the group's image first, marked Recommended), and refuses tampered, duplicate,
    unknown, empty or oversized selections with a message (nothing is stored then). A
    selection spanning groups goes to each server's own group's image unless one image is
    chosen explicitly, and confirmed for all the groups.
    """

    target_image = forms.ChoiceField(
        label=_("Target image"), error_messages={"required": _("Choose the image to move to.")}
    )
    one_image_for_all = forms.BooleanField(
        required=False, label=_("Yes, put the servers of every selected group on this one image")
    )
    reason = forms.CharField(
        max_length=500,
        label=_("Reason or ticket"),
        help_text=_("Shown on the rollout, in the audit log and in notifications."),
        widget=forms.TextInput(attrs={"placeholder": _("e.g. CHG-1234 November patches")}),
        error_messages={"required": _("Say why (a ticket or a few words).")},
        validators=[freetext.validate_readable],
    )
    update_access_agent = forms.BooleanField(
        required=False, label=_("Also upgrade the access agent")
    )
    use_maintenance = forms.BooleanField(
        required=False, label=_("Put servers into maintenance mode first (cleared after success)")
    )
    # Left out (a script posting the loose fields), it is Custom.
    preset = forms.ChoiceField(label=_("Safety"), required=False, widget=forms.RadioSelect)
    # Safety under Custom: waves, sign-off, error budget, users first, schedule.
    canary = forms.CharField(
        required=False,
        max_length=8,
        label=_("Canary wave"),
        help_text=_("Servers (e.g. 2) or a share (e.g. 5%); empty: no canary."),
    )
    canary_signoff = forms.BooleanField(
        required=False,
        label=_("Pause after the canary for sign-off"),
        help_text=_("The rollout holds once the canary is done, until someone resumes it."),
    )
    wave_size = forms.CharField(
        required=False,
        max_length=8,
        label=_("Then waves of"),
        help_text=_("Servers or a share; empty: all the rest at once."),
    )
    soak_minutes = forms.IntegerField(
        required=False, min_value=0, max_value=24 * 60, label=_("Soak after each wave (min)")
    )
    failure_budget = forms.CharField(
        required=False,
        max_length=8,
        label=_("Error budget"),
        help_text=_("Failures (e.g. 3) or a share (e.g. 10%) that halt the rollout; empty: none."),
    )
    session_policy = forms.ChoiceField(
        required=False,
        choices=Rollout.SessionPolicy.choices,
        initial=Rollout.SessionPolicy.NONE,
        label=_("Users on the servers"),
    )
    canary_session_policy = forms.ChoiceField(
        required=False,
        choices=[("", _("as the other waves")), *Rollout.SessionPolicy.choices],
        label=_("Users on the canary wave"),
    )
    session_wait_minutes = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=24 * 60,
        initial=15,
        label=_("Wait for sessions up to (min)"),
    )
    logoff_delay_minutes = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=24 * 60,
        initial=5,
        label=_("Then log off after a warning of (min)"),
    )
    logoff_message = forms.CharField(
        required=False,
        max_length=255,
        label=_("Warning message"),
        validators=[freetext.validate_readable],
    )
    scheduled_at = forms.DateTimeField(
        required=False,
        label=_("Start at"),
        help_text=_("Empty: as soon as confirmed."),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    start_below_sessions = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=1_000_000,  # the column is a 32-bit integer; no fleet has more sessions
        label=_("Only start while active sessions are below"),
    )

    def __init__(self, *args, server_ids: list[str], max_servers: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_servers = max_servers
        self.raw_ids = [i.strip() for i in server_ids if isinstance(i, str) and i.strip()]
        self.servers = planning.selected_servers(self.raw_ids, max_servers)
        # Images are a project's own: a selection in one project chooses among that project's;
        # one spanning several among the images every one of them has (a region's public
        # image), besides each group's image.
        self.projects = list(planning.by_project(self.servers))
        self.images = planning.image_map(*self.projects)
        self.group_images = planning.group_images(self.servers)
        self.groups = sorted({s.group.name for s in self.servers if s.group})
        options = planning.target_options(self.servers, self.images)
        # The group's image first, marked Recommended (one group), then the most compatible.
        self.recommended = next(iter(self.group_images)) if len(self.group_images) == 1 else ""
        self.options = sorted(options, key=lambda o: o.image.id != self.recommended)
        # The group's image not offered: no selected server can change to it now. Said why.
        self.own_image_held = None
        if self.recommended and not any(o.image.id == self.recommended for o in self.options):
            self.own_image_held = planning.image_option(self.servers, self.images, self.recommended)
        # Nothing to offer: how many of the servers are only held back for now.
        self.unavailable_now = planning.unavailable_now(self.servers) if not options else 0
        # Each server to its own group's image: for groups with different images, and for a
        # selection spanning projects with no image in common (one plan per project, each to
        # its own project's images). Not when every server is held back for now: said instead.
        across_projects = len(self.projects) > 1 and bool(self.group_images) and not options
        self.per_group = (len(self.group_images) > 1 or across_projects) and (
            self.unavailable_now < len(self.servers)
        )
        choices = [(o.image.id, o.label) for o in self.options]
        if self.per_group:
            choices.insert(0, (planning.GROUP_IMAGES, _("Each server to its own group's image")))
        self.fields["target_image"].choices = choices
        self.fields["preset"].choices = preset_choices()
        self.presets = [
            (name, label, describe_preset(settings.ROLLOUT_PRESETS[name]))
            for name, label in preset_choices()
            if name != CUSTOM
        ]
        if not self.is_bound:
            self.initial.setdefault("preset", settings.ROLLOUT_DEFAULT_PRESET)
            if self.per_group:
                self.initial.setdefault("target_image", planning.GROUP_IMAGES)
            elif any(o.image.id == self.recommended for o in self.options):
                self.initial.setdefault("target_image", self.recommended)

    @staticmethod
    def initial_of(rollout: Rollout) -> dict:
        """What a plan was made with, as this form's initial values: a fresh plan of the same
        change starts from the operator's choices, not from the defaults."""
        safety = planning.Safety.of(rollout)
        when = safety.scheduled_at
        return {
            "target_image": rollout.target_image_id or planning.GROUP_IMAGES,
            "one_image_for_all": bool(rollout.target_image_id),
            "reason": rollout.reason,
            "update_access_agent": rollout.update_access_agent,
            "use_maintenance": rollout.use_maintenance,
            "preset": rollout.preset or CUSTOM,
            "canary": safety.canary,
            "canary_signoff": safety.canary_signoff,
            "wave_size": safety.wave_size,
            "soak_minutes": safety.soak_seconds // 60,
            "failure_budget": safety.failure_budget,
            "session_policy": safety.session_policy,
            "canary_session_policy": safety.canary_session_policy,
            "session_wait_minutes": safety.session_wait_seconds // 60,
            "logoff_delay_minutes": safety.logoff_delay_seconds // 60,
            "logoff_message": safety.logoff_message,
            # A start time now past would only be refused: left empty, to be chosen again.
            "scheduled_at": when if when and when > timezone.now() else None,
            "start_below_sessions": safety.start_below_sessions,
        }

    def _unavailable_now_message(self) -> str:
        n, total = self.unavailable_now, len(self.servers)
        if n == total:
            return planning.held_back_message(self.servers)
        return ngettext(
            "No image is compatible with the selected servers: %(n)d of %(total)d is busy or "
            "unavailable now, and no image suits the others.",
            "No image is compatible with the selected servers: %(n)d of %(total)d are busy or "
            "unavailable now, and no image suits the others.",
            n,
        ) % {"n": n, "total": total}

    @cached_property
    def holding(self) -> list[int]:
        """The rollouts holding selected servers, when the group's image is held back by
        servers busy now (named beside it, so the operator can go and look)."""
        held = self.own_image_held
        return planning.rollouts_holding(self.servers) if held and held.not_now else []

    @property
    def unavailable_now_text(self) -> str:
        """What the form says when nothing can be offered and some servers are held back."""
        return self._unavailable_now_message() if self.unavailable_now else ""

    def selection_errors(self) -> list[str]:
        """Problems with the selection itself (planning.selection_errors), checked first."""
        return planning.selection_errors(self.raw_ids, self.servers, self.max_servers)

    def clean(self):
        cleaned = super().clean()
        for message in self.selection_errors():
            self.add_error(None, message)
        if not self.options and not self.selection_errors() and len(self.projects) < 2:
            held = self.own_image_held
            if held is not None and held.selected > held.blocked:
                self.add_error(
                    None,
                    _("No selected server can change now: %(counts)s.")
                    % {"counts": held.held_back},
                )
            elif self.unavailable_now:
                self.add_error(None, self._unavailable_now_message())
            else:
                self.add_error(None, _("No image is compatible with any of the selected servers."))
        target = cleaned.get("target_image")
        if (
            self.per_group
            and target
            and target != planning.GROUP_IMAGES
            and not cleaned.get("one_image_for_all")
        ):
            self.add_error(
                "one_image_for_all",
                ngettext(
                    "The selection spans %(n)d group with different images; confirm that it "
                    "should get this one image, or choose “each server to its own group's image”.",
                    "The selection spans %(n)d groups with different images; confirm that all "
                    "of them should get this one image, or choose “each server to its own "
                    "group's image”.",
                    len(self.groups),
                )
                % {"n": len(self.groups)},
            )
        if target and target != planning.GROUP_IMAGES and not self.errors:
            self._check_target_in_every_project(target)
        preset = cleaned.get("preset") or CUSTOM
        cleaned["preset"] = preset
        if preset != CUSTOM:
            # A preset decides the loose fields; whatever they held is not used.
            for name in PRESET_FIELDS:
                self.errors.pop(name, None)
                cleaned[name] = settings.ROLLOUT_PRESETS[preset].get(name, cleaned.get(name))
            cleaned["canary_session_policy"] = ""
        else:
            self._check_canary_fits(cleaned.get("canary") or "")
        return cleaned

    def _check_canary_fits(self, canary: str) -> None:
        """A canary of more servers than are selected would be every one of them: no canary."""
        if canary.endswith("%") or not canary or not self.servers:
            return
        if int(canary) > len(self.servers):
            self.add_error(
                "canary",
                _(
                    "A canary of %(canary)s servers is more than the %(n)d selected: choose "
                    "fewer, or leave it empty for no canary."
                )
                % {"canary": canary, "n": len(self.servers)},
            )

    def _check_target_in_every_project(self, image_id: str) -> None:
        """One image for all across projects only if every project has it (a public image of
        one region); else each group's image is the way to update several projects at once."""
        split = planning.by_project(self.servers)
        if len(split) < 2:
            return
        having = set(
            Image.objects.filter(id=image_id, project_id__in=split).values_list(
                "project_id", flat=True
            )
        )
        missing = [pid for pid in split if pid not in having]
        if missing:
            names = word_list(
                sorted(Project.objects.filter(pk__in=missing).values_list("name", flat=True))
            )
            self.add_error(
                "target_image",
                _(
                    "The selection spans several projects and this image is not in %(projects)s. "
                    "Choose “each server to its own group's image”, or select servers of one "
                    "project."
                )
                % {"projects": names},
            )

    def clean_canary(self) -> str:
        return _amount(self.cleaned_data["canary"])

    def clean_wave_size(self) -> str:
        size = _amount(self.cleaned_data["wave_size"])
        if size and planning.resolve_amount(size, 100) == 0:
            raise forms.ValidationError(
                _("A wave holds at least one server; leave it empty for all the rest at once.")
            )
        return size

    def clean_failure_budget(self) -> str:
        return _amount(self.cleaned_data["failure_budget"])

    def clean_scheduled_at(self):
        when = self.cleaned_data["scheduled_at"]
        if when and when < timezone.now():
            raise forms.ValidationError(_("The start time is in the past."))
        if when and when > timezone.now() + timedelta(days=MAX_SCHEDULE_DAYS):
            raise forms.ValidationError(
                _("The start time is more than %(days)d days ahead: plan nearer the time.")
                % {"days": MAX_SCHEDULE_DAYS}
            )
        return when

    def create_plan(self, *, created_by: str, retry_of: Rollout | None = None) -> Rollout:
        """Store the plan this valid form describes (the plan page and POST /plans alike).

        A selection that spans projects becomes one plan per project, sharing a `plan_set`:
        the first is returned, and its page shows the others beside it.
        """
        data = self.cleaned_data
        split = planning.by_project(self.servers)
        order = {pk: n for n, pk in enumerate(p.pk for p in projects.rows())}
        split = dict(sorted(split.items(), key=lambda item: order.get(item[0], len(order))))
        plan_set = uuid.uuid4().hex if len(split) > 1 else ""
        per_group = data["target_image"] == planning.GROUP_IMAGES
        plans = []
        for project_id, servers in split.items() or [(None, self.servers)]:
            images = planning.image_map(project_id) if len(split) > 1 else self.images
            chosen = self.target()
            plans.append(
                planning.create_plan(
                    created_by=created_by,
                    servers=servers,
                    target=images.get(chosen.id) if chosen else None,
                    targets=planning.group_targets(servers, images) if per_group else None,
                    images=images,
                    reason=data["reason"],
                    update_access_agent=data["update_access_agent"],
                    use_maintenance=data["use_maintenance"],
                    retry_of=retry_of,
                    kind=Rollout.Kind.RETRY if retry_of else Rollout.Kind.PLAN,
                    safety=self.safety(),
                    preset=data["preset"],
                    plan_set=plan_set,
                )
            )
        return plans[0]

    def audit_details(self, rollout: Rollout) -> dict:
        """What the audit trail says about a plan made from this form."""
        image = rollout.target_image_id or self.cleaned_data["target_image"]
        return {"servers": len(self.servers), "image": image, "preset": rollout.preset}

    def target(self) -> Image | None:
        """The one image for every server, or None for each server's group image."""
        chosen = self.cleaned_data["target_image"]
        return None if chosen == planning.GROUP_IMAGES else self.images[chosen]

    def targets(self) -> dict[str, Image | None] | None:
        """Server id → its group's image, when that is the choice; else None."""
        if self.cleaned_data["target_image"] != planning.GROUP_IMAGES:
            return None
        return planning.group_targets(self.servers, self.images)

    def safety(self) -> planning.Safety:
        data = self.cleaned_data
        return planning.Safety(
            canary=data["canary"] or "",
            wave_size=data["wave_size"] or "",
            soak_seconds=(data["soak_minutes"] or 0) * 60,
            failure_budget=data["failure_budget"] or "",
            session_policy=data["session_policy"] or Rollout.SessionPolicy.NONE,
            canary_session_policy=data["canary_session_policy"],
            session_wait_seconds=_minutes(data["session_wait_minutes"], 15),
            logoff_delay_seconds=_minutes(data["logoff_delay_minutes"], 5),
            logoff_message=data["logoff_message"],
            scheduled_at=data["scheduled_at"],
            start_below_sessions=data["start_below_sessions"],
            canary_signoff=bool(data["canary_signoff"]) and bool(data["canary"]),
        )


def _minutes(value: int | None, default: int) -> int:
    return (default if value is None else value) * 60


def _amount(value: str) -> str:
    """A count ("5") or a share ("10%"); refuse anything else with a clear message."""
    value = value.strip()
    try:
        planning.resolve_amount(value, 100)
    except ValueError:
        if value.endswith("%") and _is_number(value[:-1]):
            raise forms.ValidationError(
                _("A percentage goes from 0% to 100% of the servers.")
            ) from None
        if _is_number(value):
            raise forms.ValidationError(_("Give a whole number of servers, 0 or more.")) from None
        raise forms.ValidationError(
            _("Give a number of servers (5) or a percentage (10%).")
        ) from None
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---- the audit trail's filters (the audit page and the API's GET /audit) ----------------

OUTCOME_CHOICES = [
    ("", pgettext_lazy("audit outcome", "any")),
    (audit.OK, pgettext_lazy("audit outcome", "ok")),
    (audit.REFUSED, pgettext_lazy("audit outcome", "refused")),
    (audit.ERROR, pgettext_lazy("audit outcome", "error")),
]


class AuditFilterForm(forms.Form):
    # Labelled as the page labels them: a refused value is named by its label.
    actor = forms.CharField(required=False, max_length=150, label=_("Who"))
    action = forms.CharField(required=False, max_length=64, label=_("Action"))
    outcome = forms.ChoiceField(required=False, choices=OUTCOME_CHOICES, label=_("Outcome"))
    since = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), label=_("From")
    )
    until = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), label=_("Until")
    )
    # A bigger number than the id column holds is an error to show, not a query to send. A
    # text box, not a number box: a browser empties a number box of what is not a number, so
    # the refused value would vanish from where it was typed.
    rollout = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=2**63 - 1,
        label=_("Rollout"),
        widget=forms.TextInput(attrs={"inputmode": "numeric"}),
        error_messages={
            "max_value": _("No rollout has a number that large."),
            "min_value": _("Rollouts are numbered from 1."),
            "invalid": _("A rollout is named by its number, e.g. 12."),
        },
    )
    # A project's name, configured or not: the trail keeps the history of a dropped project.
    project = forms.CharField(required=False, max_length=63, label=_("Project"))

    # The dates as the page labels them ("From", "Until"): a link written by hand with these
    # names is read (and a value it cannot be is named) rather than silently ignored.
    ALIASES = {"from": "since", "to": "until"}

    def __init__(self, data=None, *args, **kwargs):
        if data is not None and any(a in data and n not in data for a, n in self.ALIASES.items()):
            data = data.copy()
            for alias, name in self.ALIASES.items():
                if alias in data and name not in data:
                    if hasattr(data, "setlist"):  # a QueryDict
                        data.setlist(name, data.pop(alias))
                    else:
                        data[name] = data.pop(alias)
        super().__init__(data, *args, **kwargs)

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", _("“Until” comes before “From”: swap the two dates."))
        return cleaned

    def clean_project(self) -> Project | None:
        name = self.cleaned_data["project"]
        if not name:
            return None
        project = Project.objects.filter(name=name).first()
        if project is None:
            raise forms.ValidationError(_("No project is called “%(name)s”.") % {"name": name})
        return project

    def filter(self, events: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        """`events` narrowed to the valid filters: an invalid one is left out (the page names
        it), the others still apply."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})  # only the fields that validated; none unbound
        if data.get("actor"):
            events = events.filter(actor__iexact=data["actor"])
        if data.get("action"):
            events = events.filter(action__startswith=data["action"])
        if data.get("outcome"):
            events = events.filter(outcome=data["outcome"])
        if data.get("since"):
            events = events.filter(at__gte=_start_of(data["since"]))
        if data.get("until"):
            events = events.filter(at__lt=_start_of(data["until"] + dt.timedelta(days=1)))
        if data.get("rollout"):
            events = events.filter(rollout_id=data["rollout"])
        if data.get("project"):
            events = events.filter(project=data["project"])
        return events


def _start_of(day: dt.date) -> datetime:
    return timezone.make_aware(datetime.combine(day, dt.time.min))
