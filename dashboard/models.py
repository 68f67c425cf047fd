"""The dashboard's state.

Inventory tables are a cache of the cloud (refreshed by `inventory.sync`), never the source
of truth for an action: anything that changes a server re-reads it from the API first.
Rollout tables are the truth about what operators asked for and what the cloud answered.
"""

from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import Coalesce, Upper
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from dashboard.cloud import projects as cloud_projects


class TouchingQuerySet(models.QuerySet):
    """`.update()` also bumps `updated_at`, as `save()` does through auto_now.

    State changes are conditional UPDATEs; the live rollout page sends only rows whose
    updated_at moved since the last poll, so every update must move it.
    """

    def update(self, **kwargs):
        kwargs.setdefault("updated_at", timezone.now())
        return super().update(**kwargs)


class Project(models.Model):
    """A cloud project in one region, as configured (dashboard/cloud/projects.py).

    The configuration is the truth about a project (credentials, endpoints, roles); this row
    is what inventory and rollouts belong to, created from the configuration when first used.
    A project dropped from the configuration keeps its row and history, marked not configured.
    """

    name = models.SlugField(max_length=63, unique=True)
    region = models.CharField(max_length=64)
    label = models.CharField(max_length=255, blank=True)
    # The cloud's project id once known (configured, or found through IAM by region).
    cloud_project_id = models.CharField(max_length=64, blank=True)
    configured = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.label or self.name

    @property
    def title(self) -> str:
        return self.label or self.name


def default_project_id() -> int:
    """The default project's row (the first configured), for rows made without a project:
    what the single-project dashboard and its data always belonged to."""
    config = cloud_projects.default()
    project, _ = Project.objects.get_or_create(
        name=config.name,
        defaults={
            "region": config.region,
            "label": config.label,
            "cloud_project_id": config.project_id,
        },
    )
    return project.pk


def _project_field(related_name: str) -> models.ForeignKey:
    return models.ForeignKey(
        Project, on_delete=models.PROTECT, related_name=related_name, default=default_project_id
    )


class SyncRun(models.Model):
    """One inventory sync. The newest finished run says how fresh the pages are."""

    class State(models.TextChoices):
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    project = _project_field("sync_runs")
    state = models.CharField(max_length=16, choices=State.choices, default=State.RUNNING)
    trigger = models.CharField(max_length=32, default="schedule")  # schedule/manual/startup/…
    requested_by = models.CharField(max_length=150, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    api_calls = models.PositiveIntegerField(default=0)
    servers_seen = models.PositiveIntegerField(default=0)
    servers_gone = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            # At most one running sync per project: a second request joins it.
            models.UniqueConstraint(
                fields=["project", "state"],
                condition=Q(state="running"),
                name="one_running_sync_per_project",
            )
        ]


class ServerGroup(models.Model):
    id = models.CharField(primary_key=True, max_length=128)
    project = _project_field("groups")
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    os_type = models.CharField(max_length=16, blank=True)
    image_id = models.CharField(max_length=128, blank=True)
    image_name = models.CharField(max_length=255, blank=True)
    image_type = models.CharField(max_length=16, blank=True)  # normalized vocabulary
    image_product_id = models.CharField(max_length=128, blank=True)
    app_type = models.CharField(max_length=32, blank=True)
    architecture = models.CharField(max_length=8, blank=True)
    system_disk_size = models.PositiveIntegerField(null=True, blank=True)
    server_count = models.PositiveIntegerField(default=0)  # as the cloud reports it
    gone = models.BooleanField(default=False)
    synced_at = models.DateTimeField()
    # Figures of the group's live servers, stored by the sync with its snapshot (only the
    # sync writes servers), so the overview and groups pages never recount them.
    servers_live = models.PositiveIntegerField(default=0)
    servers_drifted = models.PositiveIntegerField(default=0)
    servers_in_maintenance = models.PositiveIntegerField(default=0)
    servers_busy = models.PositiveIntegerField(default=0)
    sessions = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Image(models.Model):
    class Type(models.TextChoices):
        PRIVATE = "private", _("Private")
        SHARED = "shared", _("Shared")
        PUBLIC = "public", _("Public")
        MARKETPLACE = "marketplace", _("Marketplace")
        OTHER = "other", _("Other")

    # The same public image has one id in every project of a region: rows are per project.
    row = models.BigAutoField(primary_key=True)
    project = _project_field("images")
    id = models.CharField(max_length=128)
    name = models.CharField(max_length=255)
    image_type = models.CharField(max_length=16, choices=Type.choices, default=Type.PRIVATE)
    os_type = models.CharField(max_length=16, blank=True)
    os_version = models.CharField(max_length=255, blank=True)
    architecture = models.CharField(max_length=8, blank=True)
    status = models.CharField(max_length=16, blank=True)
    min_disk = models.PositiveIntegerField(default=0)
    paid = models.BooleanField(default=False)
    product_code = models.CharField(max_length=128, blank=True)  # marketplace product id
    created_at = models.DateTimeField(null=True, blank=True)
    gone = models.BooleanField(default=False)
    synced_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "id"], name="one_image_row_per_project")
        ]

    def __str__(self) -> str:
        return self.name


class ServerQuerySet(models.QuerySet):
    def with_last_seen(self) -> "ServerQuerySet":
        """Annotate `last_seen`: when a sync last saw each server. A sync writes a server only
        when something about it changed, so a live server was last seen by its project's
        last sync; a gone server when it was last written (the sync before it vanished)."""
        last_sync = InventoryFigures.objects.filter(project=models.OuterRef("project_id"))
        return self.annotate(
            last_seen=models.Case(
                models.When(
                    gone=False,
                    then=Coalesce(
                        models.Subquery(last_sync.values("updated_at")[:1]), models.F("synced_at")
                    ),
                ),
                default=models.F("synced_at"),
            )
        )


class Server(models.Model):
    id = models.CharField(primary_key=True, max_length=128)
    project = _project_field("servers")
    name = models.CharField(max_length=255)
    machine_name = models.CharField(max_length=255, blank=True)
    # Indexed by (group, drift) below, which serves every lookup by group: a second index
    # would only cost every sync's writes.
    group = models.ForeignKey(
        ServerGroup,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="servers",
        db_index=False,
    )
    # Not a foreign key: a server may run an image the dashboard cannot see.
    image_id = models.CharField(max_length=128, blank=True, db_index=True)
    os_type = models.CharField(max_length=16, blank=True)
    os_version = models.CharField(max_length=255, blank=True)
    architecture = models.CharField(max_length=8, blank=True)
    system_disk_size = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, blank=True, db_index=True)
    vm_status = models.CharField(max_length=32, blank=True)
    task_status = models.CharField(max_length=64, blank=True)
    maintain_status = models.BooleanField(default=False)
    session_count = models.PositiveIntegerField(default=0)
    frozen = models.BooleanField(default=False)
    ip_addresses = models.CharField(max_length=1024, blank=True)  # space-separated
    availability_zone = models.CharField(max_length=64, blank=True)
    job_id = models.CharField(max_length=255, blank=True)
    job_type = models.CharField(max_length=32, blank=True)
    job_status = models.CharField(max_length=16, blank=True, db_index=True)
    job_time = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(null=True, blank=True)
    # Denormalized at sync time so "drift" is an indexed column, not a join per row.
    drift = models.BooleanField(default=False, db_index=True)
    # Name, machine name and addresses, lowercased, one per line: what the servers page's
    # search looks in, as one column (on PostgreSQL with a trigram index; see 0010).
    search_text = models.TextField(blank=True, default="")
    gone = models.BooleanField(default=False, db_index=True)
    # The sync that last wrote the row; `with_last_seen()` tells when a sync last saw it.
    synced_at = models.DateTimeField()

    objects = ServerQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(fields=["group", "drift"]),
            # The servers page walks live servers by (name, id) from a cursor (keyset paging).
            models.Index(
                fields=["name", "id"], condition=Q(gone=False), name="server_live_by_name"
            ),
            # … and within one project (?project=).
            models.Index(
                fields=["project", "name", "id"],
                condition=Q(gone=False),
                name="server_live_by_project_name",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        self.search_text = search_text(self.name, self.machine_name, self.ip_addresses)
        super().save(*args, **kwargs)

    @property
    def busy(self) -> bool:
        return self.job_status in {"WAITING", "RUNNING"}


class InventoryFigures(models.Model):
    """Fleet totals of a project's live servers, one row the sync rewrites with its snapshot."""

    project = models.OneToOneField(
        Project, on_delete=models.CASCADE, related_name="figures", default=default_project_id
    )
    servers = models.PositiveIntegerField(default=0)
    servers_drifted = models.PositiveIntegerField(default=0)
    servers_in_maintenance = models.PositiveIntegerField(default=0)
    servers_busy = models.PositiveIntegerField(default=0)
    sessions = models.PositiveIntegerField(default=0)
    groups = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(null=True, blank=True)


def search_text(name: str, machine_name: str, ip_addresses: str) -> str:
    """A server's `search_text`: one lowercase line per searchable field."""
    return "\n".join((name, machine_name, ip_addresses)).lower()


class ServerImageSeen(models.Model):
    """Every image the dashboard has seen a server run, for the server detail page."""

    # Indexed by the (server, image_id) constraint, which leads with it.
    server = models.ForeignKey(
        Server, on_delete=models.CASCADE, related_name="images_seen", db_index=False
    )
    image_id = models.CharField(max_length=128)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()

    class Meta:
        ordering = ["-last_seen"]
        constraints = [
            models.UniqueConstraint(fields=["server", "image_id"], name="one_seen_row_per_image")
        ]


class Rollout(models.Model):
    """One batch image change as operators see it: a stored plan, then its execution."""

    class State(models.TextChoices):
        PLANNED = "planned", _("Planned")  # stored plan, not confirmed
        AWAITING_APPROVAL = "awaiting_approval", _("Awaiting approval")
        QUEUED = "queued", _("Queued")  # confirmed, waiting for the worker
        RUNNING = "running", _("Running")
        PAUSED = "paused", _("Paused")
        HALTED = "halted", _("Halted")  # error budget crossed
        CANCELLING = (
            "cancelling",
            _("Cancelling"),
        )  # cancelled; jobs already in flight finish and are tracked
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")  # finished, some servers failed
        CANCELLED = "cancelled", _("Cancelled")
        DISCARDED = "discarded", _("Discarded")  # a plan that was replaced or went stale

    ACTIVE_STATES = ("queued", "running", "paused", "halted", "cancelling", "awaiting_approval")
    FINAL_STATES = ("succeeded", "failed", "cancelled", "discarded")

    class Kind(models.TextChoices):
        """Why this rollout exists; `retry_of` names the rollout it came from."""

        PLAN = "plan", _("plan")
        RETRY = "retry", _("retry")
        REVERT = "revert", _("revert")
        RESUME_RETRY = "resume_retry", _("retry on resume")

    state = models.CharField(
        max_length=24, choices=State.choices, default=State.PLANNED, db_index=True
    )
    # A rollout never spans projects: a selection that does becomes one plan per project,
    # sharing a `plan_set` so the plan page shows them together.
    project = _project_field("rollouts")
    plan_set = models.CharField(max_length=32, blank=True, db_index=True)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    reason = models.CharField(max_length=500, blank=True)
    target_image_id = models.CharField(max_length=128, blank=True)
    target_image_name = models.CharField(max_length=255, blank=True)
    target_image_type = models.CharField(max_length=16, blank=True)
    target_os_type = models.CharField(max_length=16, blank=True)
    target_product_id = models.CharField(max_length=128, blank=True)
    update_access_agent = models.BooleanField(default=False)
    use_maintenance = models.BooleanField(default=False)
    # Fingerprint of the inventory facts the plan was computed from (stale-plan check).
    plan_fingerprint = models.CharField(max_length=64, blank=True)
    # The rollout this one retries or reverts (see `kind`); its reverse is `derived`.
    retry_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="derived"
    )
    confirmed_by = models.CharField(max_length=150, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.CharField(max_length=150, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # --- safety: waves, error budget, users first, schedule ---------------------------------
    class SessionPolicy(models.TextChoices):
        NONE = "none", _("change at once (users are disconnected)")
        WAIT = "wait", _("wait for sessions to end, up to a deadline")
        WAIT_LOGOFF = "wait_logoff", _("wait, then warn and log users off")

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PLAN)
    canary_size = models.PositiveIntegerField(default=0)  # servers in the first wave; 0: none
    wave_size = models.PositiveIntegerField(default=0)  # servers per later wave; 0: one wave
    soak_seconds = models.PositiveIntegerField(default=0)  # pause after each wave
    failure_budget = models.PositiveIntegerField(null=True, blank=True)  # None: no budget
    budget_base = models.PositiveIntegerField(default=0)  # failures accepted on "continue"
    session_policy = models.CharField(
        max_length=16, choices=SessionPolicy.choices, default=SessionPolicy.NONE
    )
    session_wait_seconds = models.PositiveIntegerField(default=900)
    logoff_delay_seconds = models.PositiveIntegerField(default=300)
    logoff_message = models.CharField(max_length=255, blank=True)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    start_below_sessions = models.PositiveIntegerField(null=True, blank=True)
    # Hold the rollout (paused) once its canary wave is done, until someone resumes it.
    canary_signoff = models.BooleanField(default=False)
    preset = models.CharField(max_length=32, blank=True)  # the safety preset it was planned with
    halted_reason = models.CharField(max_length=255, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)  # last refresh of its jobs
    # The refresh chain re-enqueues itself; only the task holding the current token may, so a
    # recovered chain replaces a lost one instead of running beside it.
    refresh_token = models.CharField(max_length=32, blank=True)
    # The cloud failed a step of this rollout's ticks since then (None: the last tick got
    # through); the ticks back off meanwhile and the page says so.
    cloud_unreachable_since = models.DateTimeField(null=True, blank=True)
    cloud_error = models.CharField(max_length=255, blank=True)
    # The longest the cloud took to show an accepted job on its server: the reconcile grace
    # of an ambiguous answer is a multiple of it (refresh.py).
    job_visible_seconds = models.FloatField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TouchingQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Rollout #{self.pk}"

    @property
    def is_final(self) -> bool:
        return self.state in self.FINAL_STATES

    @property
    def origin_label(self) -> str:
        """ "Revert of", "Retry of" … for the link to `retry_of`; empty for a plain plan."""
        return str(_ORIGIN.get(self.kind, ""))

    @property
    def follow_up_label(self) -> str:
        """ "Reverted by", "Retried by" … as the rollout this one came from shows it."""
        return str(_FOLLOW_UP.get(self.kind, ""))


_ORIGIN = {
    Rollout.Kind.RETRY: _("Retry of"),
    Rollout.Kind.REVERT: _("Revert of"),
    Rollout.Kind.RESUME_RETRY: _("Retry on resume of"),
}
_FOLLOW_UP = {
    Rollout.Kind.RETRY: _("Retried by"),
    Rollout.Kind.REVERT: _("Reverted by"),
    Rollout.Kind.RESUME_RETRY: _("Retried on resume by"),
}


class RolloutServer(models.Model):
    """One server in a rollout. Every state change is a conditional UPDATE on `state`."""

    class Verdict(models.TextChoices):
        CHANGE = "change", _("Change")
        SKIP = "skip", _("Skip")
        BLOCKED = "blocked", _("Blocked")

    class State(models.TextChoices):
        PLANNED = "planned", _("Planned")
        PENDING = "pending", _("Pending")  # confirmed, not yet sent
        SUBMITTING = (
            "submitting",
            _("Submitting"),
        )  # claimed by a worker, being re-read: not sent yet
        SENDING = (
            "sending",
            _("Sending"),
        )  # its batch-change-image call is in flight (may have been sent)
        UNKNOWN = "unknown", _("Unknown")  # the call's outcome is unknown; reconcile, never resend
        WAITING = "waiting", _("Waiting")  # job accepted, WAITING upstream
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")  # the job failed, or the cloud refused the server
        SKIPPED = "skipped", _("Skipped")  # already on target, or blocked at plan time
        CANCELLED = "cancelled", _("Cancelled")

    # Rows in these states hold the server: no other rollout may take it.
    ACTIVE_STATES = ("pending", "submitting", "sending", "unknown", "waiting", "running")
    FINAL_STATES = ("succeeded", "failed", "skipped", "cancelled")

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="servers")
    server_id = models.CharField(max_length=128)
    server_name = models.CharField(max_length=255)
    group_id = models.CharField(max_length=128, blank=True)
    group_name = models.CharField(max_length=255, blank=True)
    from_image_id = models.CharField(max_length=128, blank=True)
    from_image_name = models.CharField(max_length=255, blank=True)
    to_image_id = models.CharField(max_length=128)
    to_image_name = models.CharField(max_length=255, blank=True)
    verdict = models.CharField(max_length=8, choices=Verdict.choices)
    reason_code = models.CharField(max_length=64, blank=True)
    reason_message = models.CharField(max_length=500, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    session_count = models.PositiveIntegerField(default=0)
    chunk = models.PositiveIntegerField(default=0)  # which ≤50-server API call
    wave = models.PositiveIntegerField(default=0)  # 1 = canary (or the only wave)
    previous_image_id = models.CharField(max_length=128, blank=True)  # as read when sent
    state = models.CharField(max_length=16, choices=State.choices, default=State.PLANNED)
    job_id = models.CharField(max_length=255, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=1000, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    verified = models.BooleanField(null=True, blank=True)  # None: not checked yet
    slow = models.BooleanField(default=False)
    maintenance_set = models.BooleanField(default=False)
    # Which worker claimed the row for sending (see rollouts.send): rows are claimed with a
    # conditional UPDATE that also writes this token, so a worker acts only on its own claims.
    claim = models.CharField(max_length=64, blank=True)
    # Batch-change-image calls that carried this server; a proven not-accepted server is sent
    # again on its own up to ROLLOUT_SEND_ATTEMPTS.
    send_attempts = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    objects = TouchingQuerySet.as_manager()

    class Meta:
        ordering = ["chunk", "server_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["rollout", "server_id"], name="server_once_per_rollout"
            ),
            # The database itself guarantees one active rollout per server.
            models.UniqueConstraint(
                fields=["server_id"],
                condition=Q(
                    state__in=["pending", "submitting", "sending", "unknown", "waiting", "running"]
                ),
                name="one_active_rollout_per_server",
            ),
        ]
        indexes = [models.Index(fields=["rollout", "state"])]


class Selection(models.Model):
    """The servers someone picked, kept on the server so it survives paging and filters.

    Plan pages carry its id, never one form field per server. `filter` is the servers-page
    query that "select all matching" took the servers from ("" for ticked servers).
    """

    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    server_ids = models.JSONField(default=list, blank=True)
    filter = models.CharField(max_length=2000, blank=True)

    class Meta:
        indexes = [models.Index(fields=["created_by", "-updated_at"])]

    def __str__(self) -> str:
        return f"Selection #{self.pk} ({len(self.server_ids)} servers)"


class RolloutWave(models.Model):
    """One wave of a rollout. The next wave starts only when this one is done (and soaked)."""

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        DRAINING = "draining", _("Draining")  # maintenance mode on; waiting for sessions to end
        LOGGING_OFF = "logging_off", _("Logging off")  # users warned; logoff after the delay
        SENDING = "sending", _("Sending")
        RUNNING = "running", _("Running")
        SOAKING = "soaking", _("Soaking")
        STOPPED = (
            "stopped",
            _("Stopped"),
        )  # its rollout paused or halted: sends nothing until resumed
        DONE = "done", _("Done")
        CANCELLED = "cancelled", _("Cancelled")

    FINAL_STATES = ("done", "cancelled")

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="waves")
    number = models.PositiveIntegerField()
    size = models.PositiveIntegerField()
    # How this wave treats its users (Rollout.SessionPolicy); each wave may differ.
    session_policy = models.CharField(max_length=16, default="none")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    started_at = models.DateTimeField(null=True, blank=True)
    sessions_deadline = models.DateTimeField(null=True, blank=True)
    logoff_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    sessions_left = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TouchingQuerySet.as_manager()

    class Meta:
        ordering = ["number"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "number"], name="one_wave_number")
        ]


class RolloutEvent(models.Model):
    """One state change of a rollout or of one of its waves: the rollout's timeline.

    Written only by `dashboard.rollouts.lifecycle.transition()`, in the same transaction as
    the change itself.
    """

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="events")
    wave = models.PositiveIntegerField(null=True, blank=True)  # the wave's number; None: rollout
    action = models.CharField(max_length=32)
    from_state = models.CharField(max_length=24)
    to_state = models.CharField(max_length=24)
    actor = models.CharField(max_length=150, blank=True)  # who; "worker" for the engine
    at = models.DateTimeField(default=timezone.now)
    reason = models.CharField(max_length=500, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["rollout", "-at"])]


class AuditEvent(models.Model):
    """Append-only record of who did what. Updates and deletes are refused."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=150, blank=True, db_index=True)
    groups = models.JSONField(default=list, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    outcome = models.CharField(max_length=16, default="ok")  # ok / refused / error
    target = models.CharField(max_length=255, blank=True)
    rollout = models.ForeignKey(
        Rollout, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    # The project an action touched (None: the dashboard itself, or before projects).
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not self._state.adding:
            raise PermissionError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit events are append-only.")


class WorkerHeartbeat(models.Model):
    """One row per worker process, written by its heartbeat thread (dashboard/heartbeat.py).

    A row whose beat is older than a few of its own intervals is a dead worker: the tasks it
    had running are put back. The cloud fields are the worker's last cloud contact, so
    /healthz and the pages answer from them instead of calling the cloud themselves.
    """

    worker_id = models.CharField(max_length=64, primary_key=True)
    beat_at = models.DateTimeField()
    started_at = models.DateTimeField()
    hostname = models.CharField(max_length=255, blank=True)
    interval_seconds = models.FloatField(default=5.0)
    stopped_at = models.DateTimeField(null=True, blank=True)  # a clean stop, not a death
    cloud_ok_at = models.DateTimeField(null=True, blank=True)
    cloud_failed_at = models.DateTimeField(null=True, blank=True)
    cloud_error = models.CharField(max_length=255, blank=True)
    cloud_unreachable_since = models.DateTimeField(null=True, blank=True)  # breaker open since

    class Meta:
        ordering = ["-beat_at"]


class CloudRateWindow(models.Model):
    """Cloud calls sent in one second to one API class, counted by every worker together.

    dashboard/cloud/limits.py decides; this table is its shared memory (dashboard/upstream.py).
    Rows are throwaway counters, deleted by the heartbeat once their second has passed.
    """

    key = models.CharField(max_length=96, primary_key=True)  # "<api class>:<epoch second>"
    count = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(db_index=True)


class RefusalWindow(models.Model):
    """How many refusals one source had audited in one minute (dashboard.audit.refusal).

    Shared by every web process through the database, so the cap on refusal rows holds however
    many processes answer. Rows are throwaway counters, deleted once their minute is summarized.
    """

    source = models.CharField(max_length=128)  # an address or IPv6 /64, maybe "code@" first
    window_start = models.DateTimeField()
    recorded = models.PositiveIntegerField(default=0)
    suppressed = models.PositiveIntegerField(default=0)
    summarized = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "window_start"], name="one_refusal_window")
        ]
        indexes = [models.Index(fields=["window_start"], name="refusal_window_start")]


class ServiceTokenQuerySet(models.QuerySet):
    def made_by(self, username: str) -> "ServiceTokenQuerySet":
        """The tokens this person made, their name's case aside (as the four-eyes rule
        counts people)."""
        return self.annotate(maker=Upper("created_by")).filter(maker=Upper(Value(username)))

    def live(self) -> "ServiceTokenQuerySet":
        """Neither revoked nor expired: the tokens that work."""
        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())


class ServiceToken(models.Model):
    """A pipeline's credential for the automation API (/api/v1/), made by an admin on /tokens/.

    The secret is shown once and only its SHA-256 is stored: it is a long random string, so a
    plain hash cannot be reversed by guessing. A token acts with one role, as "token:<name>"
    in the audit. `project` narrows it to one project (None: every project).
    """

    name = models.SlugField(max_length=50, unique=True)
    role = models.CharField(max_length=16)  # dashboard.roles.ROLES
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.PROTECT, related_name="tokens"
    )
    secret_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12)  # the secret's first characters, to tell tokens apart
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=150, blank=True)
    # Why, when the dashboard revoked it by itself ("" when a person did, on /tokens/).
    revoked_reason = models.CharField(max_length=32, blank=True)
    # The one-time nonce of the /tokens/ form that made it, so that form sent again (a page
    # reload) is recognised and makes nothing ("": made otherwise, or before nonces).
    form_nonce = models.CharField(max_length=64, blank=True)

    objects = ServiceTokenQuerySet.as_manager()

    CREATOR_LOST_ROLE = "creator_lost_role"  # its creator was seen without the token's role

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.actor

    @property
    def actor(self) -> str:
        """How the token appears as an actor: in the audit, on timelines, as a plan's author."""
        return f"token:{self.name}"

    def revoke(self, *, by: str, reason: str = "") -> bool:
        """Revoke it now. True if this call did (False: it was revoked already): one
        conditional UPDATE, so two callers at once revoke (and audit) it once."""
        now = timezone.now()
        done = ServiceToken.objects.filter(pk=self.pk, revoked_at__isnull=True).update(
            revoked_at=now, revoked_by=by[:150], revoked_reason=reason[:32]
        )
        if done:
            self.revoked_at, self.revoked_by, self.revoked_reason = now, by[:150], reason[:32]
        return bool(done)


class SeenRoles(models.Model):
    """A person's roles as the SSO last showed them, so a service token they made never acts
    with more (dashboard.roles.remember_seen and token_within_creator).

    Written only when they change (the SSO middleware compares a signature of them with the
    row's on each request). `groups` are the SSO groups; `roles` and `project_roles` what they
    granted then, for reading (checks compute them again from `groups`, with today's settings).
    """

    username = models.CharField(max_length=150, unique=True)
    groups = models.JSONField(default=list, blank=True)
    roles = models.JSONField(default=list, blank=True)  # global roles, with those implied
    project_roles = models.JSONField(default=dict, blank=True)  # {project name: [roles]}
    signature = models.CharField(max_length=64)  # of the above, as the session remembers it
    recorded_at = models.DateTimeField()  # when these were first seen (unchanged since)
    # When the SSO last showed them holding a role (written at most once an hour): a token of
    # someone the dashboard has not seen for TOKEN_CREATOR_UNSEEN_DAYS stops working.
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "seen roles"

    def __str__(self) -> str:
        return self.username


class IdempotencyKey(models.Model):
    """The first answer to a POST that carried an `Idempotency-Key`, replayed for its repeats.

    Keys belong to one caller (a token or a person) and expire; `status` is None while the
    first request is still being answered.
    """

    caller = models.CharField(max_length=160)
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)  # method, path and body
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    body = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["caller", "key"], name="one_idempotency_key_per_caller")
        ]
