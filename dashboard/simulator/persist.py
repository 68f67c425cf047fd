"""The simulated cloud kept in a state file, so a restarted simulator answers as before.

The file is one header line (`MAGIC VERSION`) and then a pickle of `SimState.snapshot()` of
every project: the fleet, jobs (pending and finished), shared batch jobs, sessions, tokens,
fault knobs and draws, the request log and the manual clock. The default project's is under
"state" (where a one-project simulator always wrote it), the others' under "projects" by id.
A project is restored from the snapshot of its id (a lone snapshot into a lone project, as
before several projects); a configured project the file does not hold starts with a fresh
fleet, and one the file holds but is no longer configured is dropped.

It is written atomically (a temporary file in the same directory, then a rename), a short
while after each request and at shutdown. A file of another version, or one that cannot be
read, is refused with a message naming it; only `reset=True` (runsim --reset) replaces it
with a fresh fleet.

A pickle runs code when loaded: load only state files the simulator itself wrote (the demo
keeps them under var/).
"""

import contextlib
import hashlib
import logging
import os
import pickle
import tempfile
import threading
import time
from dataclasses import fields
from pathlib import Path

from dashboard.simulator.faults import Faults
from dashboard.simulator.fleet import Group, Image, SeedJob, Server
from dashboard.simulator.jobs import Job
from dashboard.simulator.sessions import UserSession
from dashboard.simulator.state import SimState

log = logging.getLogger(__name__)

MAGIC = b"huawei-workspace-simulator-state"
VERSION = 1
DEBOUNCE_SECONDS = 0.5
# A save holds the simulator's lock while it pickles (0.2 s for a full request log): the next
# save waits at least this many times as long, so saving never takes more than a tenth of it.
QUIET_FACTOR = 10


class StateFileError(Exception):
    """A state file the simulator will not load (the message names the file and the fix)."""


def schema() -> str:
    """The shape of what a file holds: a file of other fields would unpickle into objects that
    miss some, and fail later in odd places, so it is refused at the start instead."""
    shapes = [
        f"{kind.__name__}:{','.join(f.name for f in fields(kind))}"
        for kind in (Server, Group, Image, SeedJob, Job, UserSession, Faults)
    ]
    return hashlib.sha256("|".join(shapes).encode()).hexdigest()[:16]


def save(state: SimState, path: Path) -> None:
    """Write `state` to `path` atomically: readers see the old file or the new, never half."""
    with state.lock:
        default, *others = state.all_projects()
        saved = {
            "schema": schema(),
            "project_id": default.config.project_id,
            "state": default.snapshot(),
            "projects": {p.config.project_id: p.snapshot() for p in others},
        }
        payload = pickle.dumps(saved, protocol=pickle.HIGHEST_PROTOCOL)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(MAGIC + b" %d\n" % VERSION)
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def load(state: SimState, path: Path) -> None:
    """Make `state` the cloud saved in `path`. Raises StateFileError for a file it refuses."""
    try:
        content = path.read_bytes()
    except OSError as error:
        raise StateFileError(f"Cannot read the simulator state file {path}: {error}") from None
    header, _, payload = content.partition(b"\n")
    magic, _, version = header.partition(b" ")
    if magic != MAGIC:
        raise _refused(path, "it is not a simulator state file")
    if version != b"%d" % VERSION:
        shown = version.decode("ascii", "replace") or "?"
        raise _refused(path, f"it holds version {shown}; this simulator reads version {VERSION}")
    try:
        saved = pickle.loads(payload)  # noqa: S301 (a file this simulator wrote, see above)
        shape, snapshot = saved["schema"], saved["state"]
        # A file from before several projects holds the default project only, without its id.
        first = saved.get("project_id") or state.all_projects()[0].config.project_id
        snapshots = {first: snapshot, **saved.get("projects", {})}
    except Exception as error:  # any damage shows up as some error while unpickling
        raise _refused(path, f"it cannot be read ({type(error).__name__}: {error})") from None
    if shape != schema():
        raise _refused(path, "it was written by a different version of the simulator")
    if not all(isinstance(s, dict) for s in snapshots.values()):
        raise _refused(path, "it does not hold a simulated cloud")
    projects = state.all_projects()
    if len(projects) == 1 and len(snapshots) == 1:
        snapshots = {projects[0].config.project_id: snapshot}  # as before several projects
    for project in projects:
        found = snapshots.pop(project.config.project_id, None)
        if found is None:
            log.info("the state file %s holds no project %s: a fresh fleet", path,
                     project.config.project_id)  # fmt: skip
            continue
        try:
            project.restore(found)
        except ValueError as error:
            raise _refused(path, f"project {project.config.project_id}: {error}") from None
    if snapshots:
        log.warning("the state file %s holds projects no longer configured, dropped: %s", path,
                    ", ".join(str(pid) for pid in snapshots))  # fmt: skip


def _refused(path: Path, why: str) -> StateFileError:
    return StateFileError(
        f"The simulator state file {path} is refused: {why}. Move it away, or start with "
        "--reset to replace it with a fresh fleet."
    )


class Persister:
    """Loads the state file at start (unless `reset`) and saves it after changes and at close.

    `changed()` is called after every request; a background thread saves `delay` seconds
    later (or QUIET_FACTOR times the last save's cost, if longer), so a burst of requests
    costs one write.
    """

    def __init__(
        self,
        state: SimState,
        path: Path | str,
        *,
        reset: bool = False,
        delay: float = DEBOUNCE_SECONDS,
    ) -> None:
        self.state = state
        self.path = Path(path)
        self.delay = delay
        self.loaded = False
        self._pause = delay
        if self.path.exists() and not reset:
            load(state, self.path)
            self.loaded = True
        save(state, self.path)  # a fresh or reset fleet is on disk from the start
        self._dirty = threading.Event()
        self._closing = threading.Event()
        self._write = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="simulator-state", daemon=True)
        self._thread.start()

    def changed(self) -> None:
        self._dirty.set()

    def flush(self) -> None:
        """Save now (if anything changed since the last save)."""
        with self._write:
            if self._dirty.is_set():
                self._dirty.clear()
                began = time.monotonic()
                save(self.state, self.path)
                self._pause = max(self.delay, QUIET_FACTOR * (time.monotonic() - began))

    def close(self) -> None:
        """Stop the background saver and write the final state."""
        self._closing.set()
        self._dirty.set()  # wake the thread so it can see `_closing`
        self._thread.join(timeout=10)
        with self._write:
            self._dirty.clear()
            save(self.state, self.path)

    def _run(self) -> None:
        while not self._closing.is_set():
            self._dirty.wait()
            if self._closing.is_set():
                return
            self._closing.wait(self._pause)  # let a burst of requests finish first
            if self._closing.is_set():
                return
            try:
                self.flush()
            except OSError:
                log.exception("could not write the simulator state file %s", self.path)
