"""The simulator's in-memory cloud: fleet, sessions, jobs, tokens, faults, clock and log.

One lock guards everything; every public method takes it, so the threaded server can call in
from many threads. Jobs are settled lazily from the clock at the start of each operation,
which keeps the server list, ShowJobDetail and ListSubJobs in agreement at every moment.
Settling looks only at what fell due (two heaps: pending jobs by end time, pending logoffs
by time), and servers and sessions are indexed by group and by server, so a request costs
what it touches, not the size of the fleet (a 50,000-server fleet is a benchmark size).
The control methods (`set_faults`, `advance`, `patch_server`, …) are the same ones the
/_sim/ endpoints call, for in-process tests.

One simulator may serve several projects (`SimConfig.projects`, or SIM_PROJECTS as JSON): each
is a `SimState` of its own (fleet, jobs, sessions, tokens, faults, request log), and they share
a `SimCloud`: one lock, one clock and the keys. The `SimState` built from a config is the first
(default) project; `state.project(id)` reaches the others.
"""

import hashlib
import heapq
import itertools
import json
import os
import random
import secrets
import threading
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from dashboard.simulator import codes, rules
from dashboard.simulator.faults import Faults
from dashboard.simulator.fleet import Group, Image, Server, build_fleet
from dashboard.simulator.jobs import ACTIVE, CHANGE_SERVER_IMAGE, Job, JobIds
from dashboard.simulator.sessions import SIGNED_OUT, SessionFactory, UserSession

DEMO_AK = "DEMOACCESSKEYID0000"
DEMO_SK = "demo-secret-access-key"
DEMO_PROJECT_ID = "0123456789abcdef0123456789abcdef"
ARCHITECTURE = "x86"  # every simulated server runs on an x86 flavour
SYSTEM_DISK_GB = 80
TOKEN_TTL = timedelta(hours=24)
REQUEST_LOG_LIMIT = 100_000
PATCHABLE = frozenset(
    {"session_count", "status", "vm_status", "maintain_status", "freeze", "image_id", "name"}
)


@dataclass(frozen=True)
class SimProject:
    """One project of a simulator that serves several: where it is and the key that opens it.

    A key (AK) may open several projects (one account, several regions): give it the same SK
    everywhere. `servers` and `seed` default to the SimConfig's.
    """

    project_id: str
    region: str = "cn-north-4"
    ak: str = DEMO_AK
    sk: str = DEMO_SK
    security_token: str = ""
    servers: int | None = None
    seed: int | None = None


PROJECT_FIELDS = frozenset(f.name for f in fields(SimProject))


@dataclass(frozen=True)
class Key:
    """An access key as the gateway knows it: its secret and the projects it may use."""

    sk: str
    security_token: str
    projects: tuple[str, ...]


@dataclass(frozen=True)
class SimConfig:
    ak: str = DEMO_AK
    sk: str = DEMO_SK
    project_id: str = DEMO_PROJECT_ID
    security_token: str = ""
    iam_user: str = "demo-user"
    iam_password: str = "demo-password"  # noqa: S105 (demo default, loopback only)
    iam_domain: str = "demo-account"
    region: str = "cn-north-4"
    servers: int = 120
    seed: int = 1
    job_seconds: float = 60.0
    fault_seed: int | None = None  # seeds the fault and job-failure draws; None: `seed`
    # Several projects, the first the default; empty: one, from the fields above.
    projects: tuple[SimProject, ...] = ()

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for project in self.projects:
            pid = project.project_id
            if not isinstance(pid, str) or not pid or "/" in pid or len(pid) > 128:
                raise ValueError(f"project id {pid!r}: 1 to 128 characters, no '/'")
            if pid in seen:
                raise ValueError(f"project {pid} is listed twice")
            seen.add(pid)
            if project.servers is not None and project.servers < 1:
                raise ValueError(f"project {pid}: servers must be at least 1")
        self.keys()  # refuses one AK with two secrets

    def per_project(self) -> tuple["SimConfig", ...]:
        """One config per project, the default first (this config itself when none is listed)."""
        if not self.projects:
            return (self,)
        return tuple(
            replace(
                self,
                project_id=p.project_id,
                region=p.region,
                ak=p.ak,
                sk=p.sk,
                security_token=p.security_token,
                servers=self.servers if p.servers is None else p.servers,
                seed=self.seed if p.seed is None else p.seed,
                projects=(),
            )
            for p in self.projects
        )

    def keys(self) -> dict[str, Key]:
        """AK → Key; raises ValueError when one AK is given two secrets or security tokens."""
        keys: dict[str, Key] = {}
        for config in self.per_project():
            known = keys.get(config.ak)
            if known is None:
                keys[config.ak] = Key(config.sk, config.security_token, (config.project_id,))
            elif (known.sk, known.security_token) != (config.sk, config.security_token):
                raise ValueError(f"the access key of project {config.project_id} is listed with "
                                 "another secret for another project")  # fmt: skip
            else:
                keys[config.ak] = replace(known, projects=(*known.projects, config.project_id))
        return keys

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "SimConfig":
        """Credentials from the dashboard's variable names; demo defaults when unset."""
        env = os.environ if environ is None else environ
        names = {
            "ak": "HUAWEICLOUD_SDK_AK",
            "sk": "HUAWEICLOUD_SDK_SK",
            "project_id": "HUAWEICLOUD_SDK_PROJECT_ID",
            "security_token": "HUAWEICLOUD_SDK_SECURITY_TOKEN",
            "iam_user": "HUAWEICLOUD_IAM_USER",
            "iam_password": "HUAWEICLOUD_IAM_PASSWORD",
            "iam_domain": "HUAWEICLOUD_IAM_DOMAIN",
            "region": "HUAWEICLOUD_REGION",
        }
        found: dict[str, Any] = {field: env[name] for field, name in names.items() if env.get(name)}
        if env.get("SIM_PROJECTS"):
            found["projects"] = parse_projects(env["SIM_PROJECTS"])
        return replace(cls(), **found, **overrides)


def parse_projects(text: str) -> tuple[SimProject, ...]:
    """SIM_PROJECTS: a JSON list of objects with `project_id`, `region`, `ak`, `sk` and optional
    `security_token`, `servers` and `seed`. Raises ValueError saying what is wrong."""
    try:
        items = json.loads(text)
    except ValueError as error:
        raise ValueError(f"SIM_PROJECTS is not JSON: {error}") from None
    if not isinstance(items, list) or not items:
        raise ValueError('SIM_PROJECTS must be a JSON list of projects, e.g. [{"project_id": …}]')
    projects = []
    for n, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise ValueError(f"SIM_PROJECTS item {n} is not an object")
        unknown = set(item) - PROJECT_FIELDS
        if unknown:
            raise ValueError(f"SIM_PROJECTS item {n}: unknown field {sorted(unknown)[0]!r}")
        for name in ("project_id", "region"):
            if not isinstance(item.get(name), str) or not item[name]:
                raise ValueError(f"SIM_PROJECTS item {n}: {name} is required (a string)")
        for name in ("ak", "sk", "security_token"):
            if name in item and not isinstance(item[name], str):
                raise ValueError(f"SIM_PROJECTS item {n}: {name} must be a string")
        for name in ("servers", "seed"):
            value = item.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"SIM_PROJECTS item {n}: {name} must be an integer")
        projects.append(SimProject(**item))
    return tuple(projects)


class Clock:
    """Real time by default; manual mode freezes time until `advance()` moves it."""

    def __init__(self, manual: bool = False) -> None:
        self._fixed: datetime | None = None
        if manual:
            self.set_manual()

    @property
    def manual(self) -> bool:
        return self._fixed is not None

    def now(self) -> datetime:
        return self._fixed or datetime.now(UTC)

    def set_manual(self, at: datetime | None = None) -> None:
        self._fixed = at or self._fixed or datetime.now(UTC)

    def set_real(self) -> None:
        self._fixed = None

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.set_manual()
        assert self._fixed is not None
        self._fixed += timedelta(seconds=seconds)

    def as_dict(self) -> dict[str, Any]:
        return {"mode": "manual" if self.manual else "real", "now": iso(self.now())}


_ISO_TEXT: dict[tuple[datetime, Any, bool], str] = {}  # a server list shows the same times
ISO_TEXT_LIMIT = 200_000


def iso(moment: datetime | None, millis: bool = True) -> str | None:
    """The cloud's UTC timestamp format (with milliseconds unless `millis` is False)."""
    if moment is None:
        return None
    key = (moment, moment.tzinfo, millis)  # equal instants in other zones read differently
    text = _ISO_TEXT.get(key)
    if text is None:
        if len(_ISO_TEXT) >= ISO_TEXT_LIMIT:
            _ISO_TEXT.clear()
        text = _ISO_TEXT[key] = _iso_text(moment, millis)
    return text


def _iso_text(moment: datetime, millis: bool) -> str:
    if moment.year < 1000:  # strftime leaves such years unpadded; keep its spelling
        if not millis:
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    # isoformat truncates to milliseconds as `// 1000` does, at half strftime's cost (which
    # was a tenth of a server listing's); the zone suffix it may add is cut off.
    if not millis:
        return moment.isoformat(timespec="seconds")[:19] + "Z"
    return moment.isoformat(timespec="milliseconds")[:23] + "Z"


@dataclass(frozen=True)
class ChangeRequest:
    image_id: str
    server_ids: tuple[str, ...]


class SimCloud:
    """What the projects of one simulator share: a lock, a clock and the gateway's keys.

    `projects` keeps the configured order; the first is the default. Every lookup here costs
    what the number of projects costs, never the size of a fleet.
    """

    def __init__(self, config: SimConfig, clock: Clock) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.clock = clock
        self.keys = config.keys()
        self.projects: dict[str, SimState] = {}

    @property
    def default(self) -> "SimState":
        return next(iter(self.projects.values()))

    def project(self, project_id: str | None) -> "SimState | None":
        return self.projects.get(project_id) if project_id else None

    def named(self, name: str) -> list["SimState"]:
        """The projects IAM names `name` (a project is named after its region)."""
        return [p for p in self.projects.values() if p.config.region == name]

    def token_project(self, token: str) -> "SimState | None":
        """The project a live IAM token is scoped to, or None."""
        if not token:
            return None
        with self.lock:
            return next((p for p in self.projects.values() if p.token_valid(token)), None)

    def reset(self) -> None:
        """Every project back to its fresh fleet (see SimState.reset)."""
        with self.lock:
            for project in self.projects.values():
                project.reset()


def _salt_number(salt: str) -> int:
    """A stable number from a project's salt (0 for the default project's empty salt)."""
    if not salt:
        return 0
    return int(hashlib.sha256(salt.encode()).hexdigest()[:8], 16) % 1000 + 1


class SimState:
    """One project's cloud. Built from a SimConfig it is the default project, and builds the
    others of `config.projects` beside it (reach them with `project(id)`)."""

    def __init__(
        self, config: SimConfig | None = None, *, faults: Faults | None = None, manual_clock=False
    ) -> None:
        config = config or SimConfig()
        cloud = SimCloud(config, Clock(manual=manual_clock))
        for index, project_config in enumerate(config.per_project()):
            state = self if index == 0 else SimState.__new__(SimState)
            # The default project keeps the fleet a one-project simulator has; the others draw
            # theirs salted with their id, named after their region.
            salt = "" if index == 0 else project_config.project_id
            state._join(cloud, project_config, faults, salt)

    def _join(self, cloud: SimCloud, config: SimConfig, faults: Faults | None, salt: str) -> None:
        self.cloud = cloud
        self.lock = cloud.lock
        self.clock = cloud.clock
        self.config = config
        self.fleet_salt = salt
        self._initial_faults = faults or Faults()
        self.fault_seed = (
            self.config.seed if self.config.fault_seed is None else self.config.fault_seed
        )
        cloud.projects[config.project_id] = self
        self.reset()

    def project(self, project_id: str) -> "SimState":
        """Another project of the same simulator (or this one). Raises KeyError."""
        return self.cloud.projects[project_id]

    def all_projects(self) -> list["SimState"]:
        """Every project of this simulator, the default first."""
        return list(self.cloud.projects.values())

    # --- lifecycle and controls ---------------------------------------------------------

    def reset(self) -> None:
        """Back to the freshly built fleet, the initial faults and an empty request log."""
        with self.lock:
            salt, region = self.fleet_salt, self.config.region
            fleet = build_fleet(self.config.servers, self.config.seed, salt=salt,
                                prefix=region if salt else "", region=region)  # fmt: skip
            self.vpc_id = fleet.vpc_id
            self.groups: dict[str, Group] = {g.id: g for g in fleet.groups}
            # Servers leave through delete_server and sessions arrive through _add_session,
            # which keep the indexes beside them (by group, by server) in step.
            self.servers: dict[str, Server] = {s.id: s for s in fleet.servers}
            self._by_group: dict[str, dict[str, Server]] = {}
            for server in fleet.servers:
                self._by_group.setdefault(server.group_id, {})[server.id] = server
            self.images: dict[str, Image] = {i.id: i for i in fleet.images}
            self.faults = replace(
                self._initial_faults, rejections=dict(self._initial_faults.rejections)
            )
            self.reseed(self.fault_seed)
            # Another project's jobs are numbered apart (still 18 digits).
            apart = self.config.seed * 10_000_000 + _salt_number(self.fleet_salt) * 10**13
            self.job_ids = JobIds(575768277444198400 + apart)
            self.sub_job_ids = JobIds(575768277481947136 + apart)
            self.jobs: dict[str, Job] = {}
            self.batches: dict[str, tuple[str, ...]] = {}  # shared job id → member job ids
            self.batch_of: dict[str, str] = {}  # member job id → shared job id
            self.last_job: dict[str, str] = {}
            self._pending: dict[str, Job] = {}
            # Heaps of (when, order, id): pending jobs by the moment they may end, logoffs by
            # the moment they fall due. Entries made stale by a later change are skipped.
            self._jobs_due: list[tuple[datetime, int, str]] = []
            self._logoffs_due: list[tuple[datetime, int, str]] = []
            self._order = itertools.count()
            self.tokens: dict[str, datetime] = {}
            self.request_log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_LIMIT)
            self.session_factory = SessionFactory(
                self.config.seed + _salt_number(self.fleet_salt) * 1_000_003
            )
            self.sessions: dict[str, UserSession] = {}
            self._sessions_of: dict[str, list[UserSession]] = {}  # server id → its sessions
            self._sorted_sessions: list[UserSession] = []  # by (started, id); rebuilt on change
            self.message_log: list[dict[str, Any]] = []
            self.rendered: dict[str, Any] = {}  # render.server_json's, by server id
            self._seed_jobs()
            self._sync_sessions()

    def _seed_jobs(self) -> None:
        now = self.clock.now()
        for server in self.servers.values():
            seed = server.seed_job
            if seed is None:
                continue
            start = seed.started or now - timedelta(seconds=seed.started_ago)
            self._add_job(server, seed.job_type, start, seed.duration, seed.fails, "", settle=False)
        self._settle(now)  # seed jobs change no image, so settling once at the end is the same

    def reseed(self, seed: int) -> None:
        """Restart the fault and job-failure draws from `seed` (the fleet stays as it is), so
        a run with the same seed and the same requests meets the same faults."""
        with self.lock:
            self.fault_seed = seed
            self.fault_rng = random.Random(seed * 7919 + 1)
            self.job_rng = random.Random(seed * 7919 + 2)

    def snapshot(self) -> dict[str, Any]:
        """Everything the cloud remembers, for a state file (persist.py); see `restore`."""
        with self.lock:
            kept = {k: v for k, v in vars(self).items() if k not in _NOT_SNAPSHOTTED}
            # An itertools.count is not picklable on every Python: keep where it stands.
            kept["_order"] = next(self._order)
            kept["clock_fixed"] = self.clock._fixed
            kept["config"] = {"servers": self.config.servers, "seed": self.config.seed,
                              "job_seconds": self.config.job_seconds}  # fmt: skip
            return kept

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Become the cloud `snapshot` describes (credentials stay those configured now)."""
        with self.lock:
            expected = set(vars(self)) - _NOT_SNAPSHOTTED | {"clock_fixed", "config"}
            missing, unknown = expected - set(snapshot), set(snapshot) - expected
            if missing or unknown:
                raise ValueError(
                    "it does not hold this simulator's cloud (missing: "
                    f"{', '.join(sorted(missing)) or 'none'}; unknown: "
                    f"{', '.join(sorted(unknown)) or 'none'})"
                )
            snapshot = dict(snapshot)
            self.config = replace(self.config, **snapshot.pop("config"))
            fixed = snapshot.pop("clock_fixed")
            self.clock.set_real()  # the clock all projects share
            if fixed is not None:
                self.clock.set_manual(fixed)
            order = snapshot.pop("_order")
            vars(self).update(snapshot)
            self._order = itertools.count(order)
            self.rendered = {}

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        """Change fault knobs (see Faults); returns them all. Raises ValueError on bad input."""
        with self.lock:
            self.faults.update(changes)
            return self.faults.as_dict()

    def reject(self, server_id: str, error_code: str = codes.ITEM_UNAVAILABLE) -> None:
        """Make batch-change-image refuse `server_id` with `error_code` as a per-item error."""
        with self.lock:
            self.faults.rejections[server_id] = error_code

    def set_manual_clock(self, at: datetime | None = None) -> None:
        with self.lock:
            self.clock.set_manual(at)

    def set_real_clock(self) -> None:
        with self.lock:
            self.clock.set_real()

    def advance(self, seconds: float) -> datetime:
        """Move the (now manual) clock forward, applying what fell due; returns the new time."""
        with self.lock:
            self.clock.advance(seconds)
            return self.now()

    def patch_server(self, server_id: str, **changes: Any) -> Server:
        """Change a server's fields (PATCHABLE). Raises KeyError / ValueError."""
        with self.lock:
            server = self.servers[server_id]
            unknown = set(changes) - PATCHABLE
            if unknown:
                raise ValueError(f"not patchable: {', '.join(sorted(unknown))}")
            for name, value in changes.items():
                setattr(server, name, value)
            if "session_count" in changes:
                self._sync_sessions([server])
            return server

    def delete_server(self, server_id: str) -> None:
        """The server disappears from the cloud (as if deleted by someone else)."""
        with self.lock:
            server = self.servers.pop(server_id)
            self._by_group.get(server.group_id, {}).pop(server_id, None)
            for session in self._sessions_of.pop(server_id, []):
                del self.sessions[session.id]
            self._sorted_sessions = []

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.request_log.append(entry)

    def requests(self) -> list[dict[str, Any]]:
        """Every cloud request served so far, oldest first."""
        with self.lock:
            return list(self.request_log)

    # --- reading ------------------------------------------------------------------------

    def now(self) -> datetime:
        """The clock's time, after applying every job that has finished by then."""
        with self.lock:
            now = self.clock.now()
            self._settle(now)
            return now

    def _settle(self, now: datetime) -> None:
        """End the sessions whose logoff fell due, then apply the jobs that have ended."""
        logoffs = self._logoffs_due
        while logoffs and logoffs[0][0] <= now:
            when, _, session_id = heapq.heappop(logoffs)
            session = self.sessions.get(session_id)
            if session is not None and session.live and session.logoff_at == when:
                self._end_session(session, when)
        jobs, ended, early = self._jobs_due, [], []
        while jobs and jobs[0][0] <= now:
            entry = heapq.heappop(jobs)
            job = self._pending.get(entry[2])
            if job is not None:
                (early if job.status(now) in ACTIVE else ended).append(entry)
        for entry in early:  # within a microsecond of its end: still running by `status`
            heapq.heappush(jobs, entry)
        for _, _, job_id in sorted(ended, key=lambda entry: entry[1]):  # in order of acceptance
            job = self._pending.pop(job_id)
            server = self.servers.get(job.server_id)
            if server is not None and job.target_image_id and not job.fails:
                server.image_id = job.target_image_id
            job.settled = True

    def job_of(self, server: Server) -> Job | None:
        job_id = self.last_job.get(server.id)
        return self.jobs.get(job_id) if job_id else None

    def group_of(self, server: Server) -> Group | None:
        return self.groups.get(server.group_id)

    def image(self, image_id: str) -> Image | None:
        return self.images.get(image_id)

    def servers_in(self, group_id: str) -> int:
        return len(self._by_group.get(group_id, ()))

    def servers_where(
        self, group_id: str | None = None, server_id: str | None = None
    ) -> Collection[Server]:
        """The servers of one group and/or with one id (all when neither), in fleet order.

        Narrows a listing from the indexes; the caller still applies its own filters. All
        servers come as the index's live view: copying 50,000 of them for every page of a
        listing was a quarter of its cost.
        """
        if server_id:
            server = self.servers.get(server_id)
            found = [] if server is None else [server]
            return [s for s in found if group_id is None or s.group_id == group_id]
        if group_id is not None:
            return list(self._by_group.get(group_id, {}).values())
        return self.servers.values()

    # --- acting -------------------------------------------------------------------------

    def change_images(self, image_id: str, server_ids: Iterable[str]) -> list[dict[str, str]]:
        """BatchChangeServerImage's per-server outcome: a job id or an item error each."""
        with self.lock:
            now = self.now()
            return [self._change_one(server_id, image_id, now) for server_id in server_ids]

    def _change_one(self, server_id: str, image_id: str, now: datetime) -> dict[str, str]:
        rejected = self.faults.rejections.get(server_id)
        if rejected:
            return _item(server_id, error=(rejected, codes.item_message(rejected)))
        server = self.servers.get(server_id)
        decision = self.verdict(server, image_id, now) if server else None
        refused = rules.refusal(rules.SERVER_GONE) if server is None else decision.first
        if server is None or not decision.ok:
            assert refused is not None
            return _item(server_id, error=(codes.REFUSAL_CODES[refused.name], refused.message))
        fails = self.job_rng.random() < self.faults.job_failure_rate
        job = self._add_job(
            server, CHANGE_SERVER_IMAGE, now, self.config.job_seconds, fails, image_id
        )
        return _item(server_id, job_id=job.id)

    def verdict(self, server: Server, image_id: str, now: datetime) -> rules.Verdict:
        """The simulator's own rules (rules.py, written from the API text) on its state."""
        job = self.job_of(server)
        return rules.judge(
            server,
            self.image(image_id),
            self.image(server.image_id),
            busy=job is not None and job.status(now) in ACTIVE,
            architecture=ARCHITECTURE,
            system_disk_gb=SYSTEM_DISK_GB,
        )

    def _add_job(
        self,
        server: Server,
        job_type: str,
        start: datetime,
        duration: float,
        fails: bool,
        target_image_id: str,
        *,
        settle: bool = True,
    ) -> Job:
        job = Job(
            id=self.job_ids.take(),
            sub_id=self.sub_job_ids.take(),
            job_type=job_type,
            server_id=server.id,
            server_name=server.name,
            created=start,
            duration=duration,
            fails=fails,
            target_image_id=target_image_id,
            error_code=codes.JOB_FAILED if fails else "",
            error_message=codes.JOB_FAILED_MESSAGE if fails else "",
        )
        self.jobs[job.id] = job
        self.last_job[server.id] = job.id
        self._pending[job.id] = job
        settles_at = job.settles_at()
        if settles_at is not None:
            heapq.heappush(self._jobs_due, (settles_at, next(self._order), job.id))
        if settle:
            self._settle(self.clock.now())
        return job

    def set_maintenance(self, server_ids: Iterable[str], on: bool) -> list[str]:
        """BatchChangeServerMaintainMode; returns the ids that do not exist (nothing changes)."""
        with self.lock:
            ids = list(server_ids)
            missing = [i for i in ids if i not in self.servers]
            if missing:
                return missing
            for server_id in ids:
                server = self.servers[server_id]
                server.maintain_status = on
                if on and server.status == "REGISTERED":
                    server.status = "MAINTAINING"
                elif not on and server.status == "MAINTAINING":
                    server.status = "REGISTERED"
            return []

    # --- user sessions --------------------------------------------------------------------

    def _sync_sessions(self, servers: Iterable[Server] | None = None) -> None:
        """Make each server's live sessions match its `session_count` (seed or end some)."""
        now = self.clock.now()
        sessions_of = self._sessions_of
        for server in self.servers.values() if servers is None else servers:
            wanted = max(0, int(server.session_count))
            mine = [s for s in sessions_of.get(server.id, ()) if s.live]
            if len(mine) == wanted:
                continue
            users = {s.user_name for s in mine}
            while len(mine) < wanted:
                session = self.session_factory.make(server.id, now, seeded=True)
                for _ in range(20):  # one user logs on to a server once
                    if session.user_name not in users:
                        break
                    session.user_name = self.session_factory.user_name()
                users.add(session.user_name)
                self._add_session(session)
                mine.append(session)
            # Too many: the most recent sessions end first.
            for session in sorted(mine, key=lambda s: s.started)[wanted:]:
                session.state, session.ended, session.logoff_at = SIGNED_OUT, now, None

    def _add_session(self, session: UserSession) -> None:
        self.sessions[session.id] = session
        self._sessions_of.setdefault(session.server_id, []).append(session)
        self._sorted_sessions = []

    def _end_session(self, session: UserSession, when: datetime) -> None:
        session.state, session.ended, session.logoff_at = SIGNED_OUT, when, None
        server = self.servers.get(session.server_id)
        if server is not None:
            server.session_count = max(0, server.session_count - 1)

    def user_sessions(self) -> list[UserSession]:
        """Every session (live and signed out, oldest first), settled to the clock."""
        with self.lock:
            self.now()
            self._sync_sessions()
            if len(self._sorted_sessions) != len(self.sessions):
                self._sorted_sessions = sorted(self.sessions.values(), key=_session_order)
            return list(self._sorted_sessions)

    def sessions_of(self, server_id: str) -> list[UserSession]:
        """The live sessions on one server (what its `session_count` counts)."""
        with self.lock:
            self.now()
            self._sync_sessions()
            mine = [s for s in self._sessions_of.get(server_id, ()) if s.live]
            return sorted(mine, key=_session_order)

    def add_session(self, server_id: str, user: str | None = None) -> UserSession:
        """A user logs on to `server_id` now (`session_count` + 1). Raises KeyError."""
        with self.lock:
            server = self.servers[server_id]
            self._sync_sessions([server])
            session = self.session_factory.make(server_id, self.now(), user)
            self._add_session(session)
            server.session_count += 1
            return session

    def end_session(self, session_id: str) -> UserSession:
        """The user logs off by themselves now (`session_count` - 1). Raises KeyError."""
        with self.lock:
            now = self.now()
            session = self.sessions[session_id]
            if session.live:
                self._end_session(session, now)
            return session

    def logoff(
        self,
        session_ids: Iterable[str],
        *,
        delay_time: int,
        message_type: int,
        message: str = "",
        title: str = "",
        transaction_id: str = "",
    ) -> list[str]:
        """LogoffUserSession: each live session shows the message and ends `delay_time`
        seconds from now (an earlier pending logoff stands). Returns the ids ignored
        because they are unknown or already ended."""
        with self.lock:
            now = self.now()
            self._sync_sessions()
            ignored: list[str] = []
            for session_id in dict.fromkeys(session_ids):
                session = self.sessions.get(session_id)
                if session is None or not session.live:
                    ignored.append(session_id)
                    continue
                due = now + timedelta(seconds=delay_time)
                if session.logoff_at is None or due < session.logoff_at:
                    session.logoff_at = due
                    heapq.heappush(self._logoffs_due, (due, next(self._order), session.id))
                self.message_log.append(
                    {
                        "session_id": session.id,
                        "server_id": session.server_id,
                        "user_name": session.user_name,
                        "message_type": message_type,
                        "title": title,
                        "message": message,
                        "delay_time": delay_time,
                        "transaction_id": transaction_id,
                        "time": now,
                        "logoff_at": session.logoff_at,
                    }
                )
            self._settle(now)  # a delay of 0 logs off at once
            return ignored

    def messages(self) -> list[dict[str, Any]]:
        """Every message shown to a user by LogoffUserSession, oldest first."""
        with self.lock:
            return [dict(entry) for entry in self.message_log]

    def issue_token(self) -> tuple[str, datetime, datetime]:
        """A new IAM token with (token, issued_at, expires_at); expiry uses real time."""
        with self.lock:
            token = "MIIsim" + secrets.token_urlsafe(96)
            issued = datetime.now(UTC)
            self.tokens[token] = issued + TOKEN_TTL
            return token, issued, issued + TOKEN_TTL

    def token_valid(self, token: str) -> bool:
        return self.token_expiry(token) is not None

    def token_expiry(self, token: str) -> datetime | None:
        """When a live token expires; None when it is unknown or has expired."""
        with self.lock:
            expires = self.tokens.get(token)
            return expires if expires is not None and expires > datetime.now(UTC) else None

    def expire_tokens(self) -> None:
        """Every issued token expires now (to test re-authentication)."""
        with self.lock:
            self.tokens.clear()


_NOT_SNAPSHOTTED = frozenset(
    {"lock", "config", "clock", "_initial_faults", "cloud", "fleet_salt", "rendered"}
)


def _session_order(session: UserSession) -> tuple[datetime, str]:
    return session.started, session.id


def _item(server_id: str, job_id: str = "", error: tuple[str, str] = ("", "")) -> dict[str, str]:
    return {"server_id": server_id, "job_id": job_id, "error_code": error[0],
            "error_message": error[1]}  # fmt: skip
