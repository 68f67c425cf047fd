"""The API's shapes: what it accepts and what it answers, as typed schemas (the OpenAPI
document is built from them). Output schemas read model rows directly (`from_attributes`)."""

from datetime import datetime
from typing import Literal

from ninja import Schema
from pydantic import ConfigDict, Field, field_validator

from dashboard import forms, freetext
from dashboard.models import Rollout
from dashboard.rollouts import planning
from dashboard.rollouts.control import RESUME_CHOICES

# ---- problems -------------------------------------------------------------------------


class FieldError(Schema):
    field: str | None
    message: str


class ProblemOut(Schema):
    """RFC 9457 problem document; `code` is stable, `detail` is for people."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    errors: list[FieldError] | None = None


READ_PROBLEMS = (400, 401, 403, 422, 429)
ACT_PROBLEMS = (400, 401, 403, 404, 409, 415, 422, 429)


def reads(model: type, *, one: bool = False) -> dict:
    """The answers of a read: `model`, or a problem (404 too when it reads one thing)."""
    statuses = (*READ_PROBLEMS, 404) if one else READ_PROBLEMS
    return {200: model, **dict.fromkeys(statuses, ProblemOut)}


def acts(status: int, model: type) -> dict:
    """The answers of an action: `model` with `status`, or a problem."""
    return {status: model, **dict.fromkeys(ACT_PROBLEMS, ProblemOut)}


# ---- projects -------------------------------------------------------------------------

PROJECT_DESCRIPTION = "the project (and so the region) it belongs to, by name"


class InProject(Schema):
    """A row of one project: `project` is its name, as `?project=` takes it."""

    project: str = Field(description=PROJECT_DESCRIPTION)

    @staticmethod
    def resolve_project(obj) -> str:
        if isinstance(obj, dict):
            return obj["project"]
        return obj.project.name


# ---- inventory ------------------------------------------------------------------------


class GroupOut(InProject):
    id: str
    name: str
    description: str
    os_type: str
    image_id: str
    image_name: str
    image_type: str
    app_type: str
    architecture: str
    server_count: int = Field(description="as the cloud reports it")
    servers_live: int
    servers_drifted: int
    servers_in_maintenance: int
    servers_busy: int
    sessions: int
    synced_at: datetime


class ServerOut(InProject):
    id: str
    name: str
    machine_name: str
    group_id: str | None
    image_id: str
    os_type: str
    architecture: str
    status: str
    maintenance: bool = Field(validation_alias="maintain_status")
    session_count: int
    frozen: bool
    drift: bool = Field(description="not on its group's image")
    ip_addresses: str
    availability_zone: str
    job_id: str
    job_type: str
    job_status: str
    job_time: datetime | None
    synced_at: datetime = Field(
        validation_alias="last_seen", description="when a sync last saw the server"
    )


class ImageOut(InProject):
    id: str
    name: str
    image_type: str
    os_type: str
    os_version: str
    architecture: str
    status: str
    min_disk: int
    paid: bool
    product_code: str
    created_at: datetime | None
    synced_at: datetime


class Page(Schema):
    count: int = Field(description="rows matching, on every page")
    next_cursor: str | None = Field(description="`cursor` of the next page; null on the last")
    previous_cursor: str | None


class GroupPage(Page):
    items: list[GroupOut]


class ServerPage(Page):
    items: list[ServerOut]


class ImagePage(Page):
    items: list[ImageOut]


YesNo = Literal["yes", "no"]


def _values(choices: list[tuple[str, str]]) -> tuple[str, ...]:
    return tuple(value for value, _label in choices if value)


class ServerFilter(Schema):
    """The servers page's filters (ServerFilterForm), as query parameters."""

    project: str | None = Field(None, max_length=63, description="a project's name")
    q: str | None = Field(None, max_length=200, description="name, machine name or address")
    group: str | None = Field(None, max_length=128, description="server group id")
    image: str | None = Field(None, max_length=128, description="current image id")
    status: Literal[_values(forms.STATUSES)] | None = None  # type: ignore[valid-type]
    maintenance: YesNo | None = None
    sessions: YesNo | None = Field(None, description="has active sessions")
    drift: YesNo | None = Field(None, description="not on its group's image")
    job_status: Literal[_values(forms.JOB_STATUSES)] | None = None  # type: ignore[valid-type]
    sort: Literal[tuple(forms.SORTS)] | None = None  # type: ignore[valid-type]


# ---- plans ------------------------------------------------------------------------------

Amount = str


class Safety(Schema):
    """How carefully it proceeds (the rollout form's Custom fields). Ignored under a preset."""

    canary: Amount = Field("", max_length=8, description='servers ("2") or a share ("5%")')
    canary_signoff: bool = Field(False, description="hold after the canary until resumed")
    wave_size: Amount = Field("", max_length=8, description='then waves of ("10", "25%")')
    soak_minutes: int | None = Field(None, ge=0, le=1440)
    failure_budget: Amount = Field("", max_length=8, description="failures that halt it")
    session_policy: Literal[tuple(Rollout.SessionPolicy.values)] = "none"  # type: ignore[valid-type]
    canary_session_policy: Literal[("", *Rollout.SessionPolicy.values)] = ""  # type: ignore[valid-type]
    session_wait_minutes: int | None = Field(None, ge=0, le=1440)
    logoff_delay_minutes: int | None = Field(None, ge=0, le=1440)
    logoff_message: str = Field("", max_length=255)
    scheduled_at: datetime | None = Field(None, description="start then, not at once")
    start_below_sessions: int | None = Field(None, ge=1, le=1_000_000)


class PlanIn(Schema):
    """Which servers (exactly one of `servers`, `group`, `filter`), which image, and how."""

    model_config = ConfigDict(extra="forbid")

    servers: list[str] | None = Field(None, max_length=10_000, description="server ids")
    group: str | None = Field(None, max_length=128, description="every live server of a group")
    filter: ServerFilter | None = Field(None, description="every server the filter matches")
    target_image: str = Field(
        max_length=128,
        description=f'an image id, or "{planning.GROUP_IMAGES}": each server to its own '
        "group's image",
    )
    one_image_for_all: bool = Field(
        False, description="confirm one image for a selection spanning groups"
    )
    reason: str = Field(min_length=1, max_length=500, description="a ticket or a few words")
    update_access_agent: bool = False
    use_maintenance: bool = False
    preset: str | None = Field(
        None,
        max_length=32,
        description='a safety preset ("careful", "standard") or "custom" (then `safety`); '
        "default: the dashboard's default preset (ROLLOUT_DEFAULT_PRESET)",
    )
    safety: Safety = Field(default_factory=Safety)


class Warning_(Schema):
    code: str
    message: str


class PlanRowOut(Schema):
    server_id: str
    server_name: str
    group_id: str
    group_name: str
    from_image_id: str
    from_image_name: str
    to_image_id: str
    verdict: Literal["change", "skip", "blocked"]
    reason_code: str
    reason_message: str
    warnings: list[Warning_]
    session_count: int
    wave: int
    chunk: int = Field(description="which batch-change-image call (≤50 servers)")


class SafetyOut(Schema):
    preset: str
    canary_size: int
    canary_signoff: bool
    wave_size: int
    soak_seconds: int
    failure_budget: int | None
    session_policy: str
    session_wait_seconds: int
    logoff_delay_seconds: int
    logoff_message: str
    scheduled_at: datetime | None
    start_below_sessions: int | None


class WaveOut(Schema):
    number: int
    size: int
    session_policy: str
    state: str
    started_at: datetime | None
    sent_at: datetime | None
    finished_at: datetime | None


class SiblingPlanOut(InProject):
    id: int
    state: str


class PlanOut(InProject):
    id: int
    state: str
    kind: str
    retry_of: int | None
    created_by: str
    created_at: datetime
    expires_at: datetime
    reason: str
    target_image_id: str
    target_image_name: str
    update_access_agent: bool
    use_maintenance: bool
    safety: SafetyOut
    counts: dict[str, int] = Field(description="rows per verdict")
    calls: int = Field(description="batch-change-image calls it would make")
    waves: list[WaveOut]
    confirm_token: str | None = Field(
        description="send it to confirm exactly this plan; null once it is not a plan any more"
    )
    servers: list[PlanRowOut]
    plan_set: list[SiblingPlanOut] = Field(
        description="the other projects' plans made from the same selection (a rollout never "
        "spans projects): read and confirm each on its own; empty for a lone plan"
    )


class ConfirmIn(Schema):
    confirm_token: str = Field(max_length=1000, description="the plan's `confirm_token`")


# ---- rollouts ---------------------------------------------------------------------------


class RolloutServerOut(Schema):
    server_id: str
    server_name: str
    group_id: str
    group_name: str
    from_image_id: str
    to_image_id: str
    previous_image_id: str
    verdict: str
    reason_code: str
    reason_message: str
    wave: int
    state: str
    job_id: str
    error_code: str
    error_message: str
    submitted_at: datetime | None
    finished_at: datetime | None
    verified: bool | None


class EventOut(Schema):
    at: datetime
    wave: int | None = Field(description="the wave's number; null: the rollout itself")
    action: str
    from_state: str
    to_state: str
    actor: str
    reason: str
    details: dict


class FollowUpOut(Schema):
    rollout: int
    kind: str


class ProgressOut(Schema):
    total: int
    to_change: int
    done: int
    percent: int
    counts: dict[str, int]


class RolloutOut(InProject):
    id: int
    state: str
    final: bool = Field(description="true once nothing more will happen")
    outcome: str
    kind: str
    retry_of: int | None
    follow_ups: list[FollowUpOut]
    created_by: str
    confirmed_by: str
    approved_by: str
    created_at: datetime
    confirmed_at: datetime | None
    approved_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    reason: str
    target_image_id: str
    target_image_name: str
    halted_reason: str
    allowed_actions: list[str]
    safety: SafetyOut
    progress: ProgressOut
    waves: list[WaveOut]
    servers: list[RolloutServerOut]
    events: list[EventOut] = Field(description="the timeline, newest first")


class RolloutSummaryOut(InProject):
    id: int
    state: str
    kind: str
    created_by: str
    created_at: datetime
    reason: str
    target_image_id: str
    target_image_name: str


class RolloutPage(Schema):
    count: int
    next_cursor: str | None
    previous_cursor: str | None
    items: list[RolloutSummaryOut]


class ResumeIn(Schema):
    how: Literal[RESUME_CHOICES] = Field(  # type: ignore[valid-type]
        "continue",
        description="after a halt: continue, skip_failed (accept them), or retry_failed "
        "(also plan a retry of them, listed in follow_ups)",
    )


class RejectIn(Schema):
    reason: str = Field(
        min_length=1, max_length=500, description="why it is rejected (on its timeline)"
    )

    @field_validator("reason")
    @classmethod
    def _readable(cls, value: str) -> str:
        if freetext.hides_direction(value):
            raise ValueError(str(freetext.HIDDEN_DIRECTION))
        return value


class ServersIn(Schema):
    servers: list[str] | None = Field(
        None, max_length=10_000, description="server ids; empty: the default set"
    )


# ---- audit ------------------------------------------------------------------------------


class AuditEventOut(Schema):
    id: int
    project: str | None = Field(description="the project the action touched, if one")
    at: datetime
    actor: str
    groups: list[str]
    client_ip: str | None
    action: str
    outcome: str
    target: str
    rollout: int | None = Field(validation_alias="rollout_id")
    details: dict

    @staticmethod
    def resolve_project(obj) -> str | None:
        if obj.project_id:
            return obj.project.name
        return obj.rollout.project.name if obj.rollout_id else None


class AuditPage(Schema):
    count: int
    next_cursor: str | None
    previous_cursor: str | None
    items: list[AuditEventOut]


class AuditFilter(Schema):
    """The audit page's filters (AuditFilterForm)."""

    actor: str | None = Field(None, max_length=150)
    action: str | None = Field(None, max_length=64, description="dotted prefix, e.g. rollout.")
    outcome: Literal["ok", "refused", "error"] | None = None
    since: str | None = Field(None, max_length=10, description="YYYY-MM-DD")
    until: str | None = Field(None, max_length=10, description="YYYY-MM-DD")
    rollout: int | None = Field(None, ge=1, le=2**63 - 1)
    project: str | None = Field(None, max_length=63, description="a project's name")
