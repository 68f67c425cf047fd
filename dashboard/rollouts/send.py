"""Send a wave of a running rollout to the cloud, chunk by chunk.

Guarantees:
- A server is sent at most once per call of its own. Rows are claimed with a conditional UPDATE
  (pending → submitting, stamped with a fresh token); only claimed rows are sent. Two workers,
  or a worker restarted mid-rollout, can never send the same row twice.
- Just before each call the chunk's servers are re-read from the API and re-judged by
  compat.verdict(); servers that no longer qualify are not sent. Only then are the rows marked
  `sending` (submitting → sending, same claim): a crash or a cloud failure before that mark
  leaves them never sent, and they go back to pending. Only `sending` rows may have been sent.
- Every call is audited before it is sent (`api.batch_change_image.intent`: servers, image,
  chunk, attempt) and after (`api.batch_change_image`: outcome, request id), so a crash between
  the two shows.
- 429 (or a call that never left): the rows go back to pending and the chunk is sent again
  after the wait. A timeout, 5xx or dropped connection after sending: the chunk's rows become
  `unknown` and are reconciled from the servers' last-job fields by refresh.py — never a blind
  resend; the other chunks go on.

A chunk costs the same SQL statements whatever its size (claim, read the claimed rows, the
re-read's group sizes, the images, mark, audit, record the answer, audit): rows that each get
values of their own are written in one UPDATE (rowwrite.write_rows), every one still only
while in the state and under the claim it was read with. With several calls in flight, what
the next chunks will re-read (the same calls, each once) is read while earlier chunks' calls
are out (_ReadAhead, from before the first claim), so a chunk's re-read rarely waits for the
cloud; and the next chunks are claimed, re-read and re-judged while the calls are out, each
then waiting for a turn (_Calls) to be marked and sent, so a call that answers is followed at
once by the next. Marking is conditional on the rollout still running, so a pause, halt or
cancel stops the chunks waiting for a turn too (their rows go back to pending): only the
calls already out when it came are sent.
"""

import logging
import os
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext

from django.conf import settings
from django.db import connection
from django.db.models import Count, Exists, F, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from dashboard import audit, collector, compat
from dashboard.cloud import client as client_module
from dashboard.cloud import inflight, records
from dashboard.cloud.errors import CloudError, Outcome
from dashboard.models import Image, Rollout, RolloutServer, Server
from dashboard.rollouts.facts import image_facts, server_facts
from dashboard.rollouts.reread import PAGE, GroupReads, reread_servers
from dashboard.rollouts.rowwrite import Moved, write_rows

log = logging.getLogger(__name__)

MAX_SEND_ATTEMPTS = 8  # throttled retries of one chunk within one tick
MAX_THROTTLE_WAIT = 60.0
SENDERS_A_CALL = 2  # sending threads a call in flight: half of them get the next chunk ready
HTTP_POOL = client_module.HTTP_POOL  # connections a host the client's session keeps
S = RolloutServer.State
Reads = tuple[list[str], list[str]]  # a chunk's re-read: groups listed whole, servers one by one


def send_wave(rollout_id: int, wave: int, client, *, sleep: Callable[[float], None]) -> None:
    """Send the wave's pending chunks, a configurable number of calls in flight.

    Raises the first CloudError that kept a chunk from being sent (the cloud is unreachable,
    or the breaker is open) once every chunk has had its turn; those rows are pending again.
    """
    rollout = Rollout.objects.get(pk=rollout_id)
    pending = RolloutServer.objects.filter(rollout_id=rollout_id, wave=wave, state=S.PENDING)
    in_flight = max(1, settings.ROLLOUT_CALLS_IN_FLIGHT)
    if in_flight > 1:
        plan = _reads_of(pending)
        chunks = list(plan)
    else:
        chunks = sorted(set(pending.values_list("chunk", flat=True)))
    with collector.fewer_collections():
        if len(chunks) > 1 and in_flight > 1:
            troubles = _send_in_threads(rollout, plan, client, sleep, in_flight)
        else:
            reads = GroupReads(client)
            troubles = {
                chunk: _send_chunk(rollout, chunk, client=client, sleep=sleep, reads=reads)
                for chunk in chunks
            }
    trouble = next((troubles[c] for c in sorted(troubles) if troubles[c] is not None), None)
    if trouble is not None:
        raise trouble


def _send_in_threads(
    rollout: Rollout, plan: dict[int, Reads], client, sleep, in_flight: int
) -> dict[int, CloudError | None]:
    """Up to `in_flight` calls out at once. Each sending thread takes the next chunk, in chunk
    order, until none is left (one database connection per thread, closed at its end); twice
    as many threads as calls, so that while calls are out the next chunks are claimed,
    re-read and re-judged, ready to go as soon as a call answers. Returns each chunk's trouble (see
    _send_chunk)."""
    chunks = list(plan)
    troubles: dict[int, CloudError | None] = {}
    taken = iter(range(len(chunks)))
    lock = threading.Lock()
    calls = _Calls(in_flight)
    writes = _OneWriter()
    readers = _readers(in_flight)
    with (
        inflight.Calls(readers, name="submit-read-page") as pages,  # ends after the listings
        ThreadPoolExecutor(readers, thread_name_prefix="submit-read") as reading,
    ):
        reads = _ReadAhead(
            client, reading, [plan[chunk] for chunk in chunks], 4 * in_flight, pages=pages
        )
        reads.reach(0)  # the first chunks' reads go out before the threads that send start

        def sender() -> None:
            try:
                with connection.execute_wrapper(writes.one_at_a_time):
                    while True:
                        with lock:
                            position = next(taken, None)
                        if position is None:
                            return
                        troubles[chunks[position]] = _send_chunk(
                            rollout,
                            chunks[position],
                            client=client,
                            sleep=sleep,
                            reads=reads,
                            reader=reads,
                            on_claim=lambda p=position: reads.reach(p),
                            calls=calls,
                        )
            finally:
                connection.close()  # each thread has its own connection; do not leak it

        threads = min(SENDERS_A_CALL * in_flight, len(chunks))
        try:
            with ThreadPoolExecutor(threads, thread_name_prefix="submit") as sending:
                for done in [sending.submit(sender) for _ in range(threads)]:
                    done.result()
        finally:
            reads.stop()
    return troubles


class _OneWriter:
    """The sending threads' writes one at a time, queued here rather than in SQLite.

    SQLite has one writer: a thread that finds the database locked sleeps in its busy handler
    (1, 2, 5, 10 … ms) and tries again, so calls in flight that come back together lost tens
    of milliseconds each to sleeping while the write before them took one. Waiting on a lock
    wakes as soon as the write before is done. Reads go on meanwhile (WAL), and a statement
    inside a transaction already holds SQLite's lock, so it is left alone.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def one_at_a_time(self, execute, sql, params, many, context):
        connection = context["connection"]
        if (
            connection.vendor != "sqlite"
            or connection.in_atomic_block
            or sql.lstrip()[:6].upper() == "SELECT"
        ):
            return execute(sql, params, many, context)
        with self.lock:
            return execute(sql, params, many, context)


def _readers(in_flight: int) -> int:
    """Threads that read ahead: as many as calls in flight, and as many again that read the
    pages of a listing after its first together, within the connections a host the client's
    HTTP session keeps (more at once are each opened and thrown away, with a warning) beside
    the sending threads' own (each a call, or a read it found not started)."""
    return max(1, min(in_flight, (HTTP_POOL - SENDERS_A_CALL * in_flight) // 2))


def _reads_of(pending) -> dict[int, Reads]:
    """Each pending chunk (in order) → what its re-read will read, by reread_servers' rule:
    whole the groups holding more of the chunk's servers than they have pages, the rest of its
    servers one by one."""
    per_chunk: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for chunk, group_id, server_id in pending.values_list("chunk", "group_id", "server_id"):
        per_chunk[chunk][group_id].append(server_id)
    groups = {group_id for members in per_chunk.values() for group_id in members if group_id}
    # gone=False inside the count, not in WHERE: SQLite then finds the groups by their index
    # rather than walking every live server.
    sizes = dict(
        Server.objects.filter(group_id__in=groups)
        .values_list("group_id")
        .annotate(n=Count("id", filter=Q(gone=False)))
        .values_list("group_id", "n")
    )
    plan: dict[int, Reads] = {}
    for chunk, members in sorted(per_chunk.items()):
        whole = [
            g for g, ids in members.items() if sizes.get(g) and -(-sizes[g] // PAGE) < len(ids)
        ]
        alone = [i for g, ids in members.items() if g not in whole for i in ids]
        plan[chunk] = (whole, alone)
    return plan


class _ReadAhead(GroupReads):
    """The re-reads of the next chunks, read while earlier chunks' calls are in flight.

    From the start, what the first chunks up to `window` will re-read (whole groups, single
    servers) is handed to `pool`, and as the chunk at position p is claimed, what those up to
    p + `window` will: the same calls their own re-reads would make, each once (a listing
    still fresh is not read again). The first reads start before the sending threads claim
    anything, so the first calls wait for them as little as they can. The window is a few
    rounds of calls: enough to list a group of several pages before its first chunk, and few
    enough that a read is seconds old when used, even where pacing spreads the calls out (one
    older than the ttl is read again, as before). A chunk that asks for a read not started yet
    reads it itself. A read that failed fails the first chunk that asks for it, as its own
    re-read would have (that chunk goes back to pending). It answers `show_server` too, so
    reread_servers can take it as its client.
    """

    def __init__(
        self,
        client,
        pool: ThreadPoolExecutor,
        plan: list[Reads],
        window: int,
        pages: inflight.Calls | None = None,
    ):
        super().__init__(client, pages=pages)
        self.pool = pool
        self.plan = plan
        self.window = window
        self.scheduled = 0  # chunk positions whose reads were handed to the pool
        self.asked: set[str] = set()  # groups and servers handed to the pool
        self.listings: dict[str, Future] = {}  # not yet asked for by their chunk
        self.servers: dict[str, Future] = {}
        self.stopped = False

    def reach(self, position: int) -> None:
        """Hand the reads of the chunks up to position + window to the pool."""
        upto = min(position + self.window + 1, len(self.plan))
        with self.lock:
            if self.stopped:
                return
            for groups, servers in self.plan[self.scheduled : upto]:
                for group_id in groups:
                    if group_id not in self.asked:
                        self.listings[group_id] = self.pool.submit(self._list, group_id)
                for server_id in servers:
                    if server_id not in self.asked:
                        self.servers[server_id] = self.pool.submit(self._show, server_id)
                self.asked.update(groups, servers)
            self.scheduled = max(self.scheduled, upto)

    def group(self, group_id: str) -> dict[str, records.Server]:
        with self.lock:
            ahead = self.listings.pop(group_id, None)
        if ahead is not None and not ahead.cancel():  # one not started yet is read here
            ahead.result()  # raises the listing's CloudError
        return super().group(group_id)

    def show_server(self, server_id: str) -> records.Server:
        with self.lock:
            ahead = self.servers.pop(server_id, None)
        if ahead is not None and not ahead.cancel():
            read_at, server = ahead.result()  # raises the read's CloudError (a 404: gone)
            if time.monotonic() - read_at <= self.ttl:
                return server
        return self.client.show_server(server_id)

    def stop(self) -> None:
        """No more reads: the chunks are done (those already out finish)."""
        with self.lock:
            self.stopped = True
            for ahead in [*self.listings.values(), *self.servers.values()]:
                ahead.cancel()

    def _list(self, group_id: str) -> dict[str, records.Server]:
        try:
            return super().group(group_id)
        finally:
            connection.close()  # the client's pacing may have used this thread's connection

    def _show(self, server_id: str) -> tuple[float, records.Server]:
        try:
            return time.monotonic(), self.client.show_server(server_id)
        finally:
            connection.close()


def _send_chunk(
    rollout: Rollout,
    chunk: int,
    *,
    client,
    sleep,
    reads: GroupReads,
    reader=None,
    on_claim: Callable[[], None] | None = None,
    calls: "_Calls | None" = None,
) -> CloudError | None:
    """Claim, re-read, re-judge, mark and send one chunk. Returns the cloud failure that
    stopped it.

    `reader` answers the re-read's single-server reads (the client unless said otherwise).
    With `calls` (several in flight), the chunk is claimed, re-read and re-judged before it
    takes a turn (the judgement depends only on that re-read), then marked and sent on it,
    and the turn is given back as soon as the call has answered; the claim, re-read and
    judgement, and writing the answer, wait for the calls about to leave (see _Calls)."""
    for attempt in range(MAX_SEND_ATTEMPTS):
        with _bookkeeping(calls):
            token = _claim(rollout.pk, chunk)
            rows = list(_claimed(rollout.pk, token))
            if not rows:
                return None  # the rollout stopped, another worker has it, or nothing is pending
            if on_claim is not None:
                on_claim()
            try:
                fresh = reread_servers(reader or client, rows, reads)
            except CloudError as exc:
                _defer(rollout, chunk, rows, token, exc)
                return exc
            with calls.judging() if calls is not None else nullcontext():
                judged = _recheck(rollout, rows, fresh)
        with _Turn(calls) as turn:
            rows = _mark_sending(judged, token, rollout.pk)
            if not rows:
                return None
            wait, trouble = _send(rollout, chunk, rows, client, token, turn)
        if trouble is not None:
            return trouble
        if wait is None:
            return None
        log.info("rollout %s chunk %s: waiting %.1fs before sending again", rollout.pk, chunk, wait)
        sleep(min(wait * (attempt + 1), MAX_THROTTLE_WAIT))
    return None


class _Calls:
    """The calls that may be out at once (turns), and the threads about to send one.

    When calls answer together, the threads that waited with a chunk ready take their turns
    and send, while those whose call answered write the answer and claim their next chunk:
    all of it on one interpreter lock and one SQLite writer. So the threads on their way to
    a call go first, and one at a time, in the order they took their turns (each slowed by
    the others, they would all leave late): book-keeping waits until none is on its way,
    neither one holding a turn whose call has not left, nor one ready to take a turn just
    given back. A freed turn is used at once; the book-keeping has the length of a call to
    be done in. Judging a chunk is book-keeping too unless a free turn awaits it, and chunks
    are judged one at a time: the first judged is the first ready to go.
    """

    def __init__(self, in_flight: int) -> None:
        self.free = in_flight  # turns not taken
        self.ready = 0  # threads with a chunk judged, waiting for a turn
        self.leaving = 0  # threads holding a turn whose call has not left yet
        self.changed = threading.Condition()
        self.one_leaving = threading.Lock()
        self.one_judging = threading.Lock()

    def take(self) -> None:
        with self.changed:
            self.ready += 1
            self.changed.wait_for(lambda: self.free > 0)
            self.ready -= 1
            self.free -= 1
            self.leaving += 1
        self.one_leaving.acquire()

    def left(self) -> None:
        self.one_leaving.release()
        with self.changed:
            self.leaving -= 1
            self.changed.notify_all()

    def give_back(self) -> None:
        with self.changed:
            self.free += 1
            self.changed.notify_all()

    def quiet(self) -> None:
        with self.changed:
            self.changed.wait_for(self._quiet)

    @contextmanager
    def judging(self) -> Iterator[None]:
        with self.changed:
            self.changed.wait_for(lambda: self.free > self.ready or self._quiet())
        with self.one_judging:
            yield

    def _quiet(self) -> bool:
        return not self.leaving and not (self.ready and self.free)


@contextmanager
def _bookkeeping(calls: _Calls | None) -> Iterator[None]:
    """Work that can wait for the calls about to leave (claims, re-reads, answers)."""
    if calls is not None:
        calls.quiet()
    yield


class _Turn:
    """One of the calls that may be out at once (nothing to take without `calls`): taken
    before the chunk is marked sending, given back when its call has answered or, at
    the latest, when the block ends."""

    def __init__(self, calls: _Calls | None) -> None:
        self.calls = calls
        self.held = self.leaving = False

    def __enter__(self) -> "_Turn":
        if self.calls is not None:
            self.calls.take()
            self.held = self.leaving = True
        return self

    def left(self) -> None:
        """The call is about to go out: book-keeping may go on."""
        if self.leaving:
            self.leaving = False
            self.calls.left()

    def answered(self) -> None:
        self.left()
        if self.held:
            self.held = False
            self.calls.give_back()

    def bookkeeping(self):
        return _bookkeeping(self.calls)

    def __exit__(self, *exc) -> None:
        self.answered()


def claim_token() -> str:
    """A fresh claim that names this process (host and pid, as worker ids begin), so recovery
    can tell the claims of a dead worker at once from its heartbeat (refresh.py)."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def claimant(claim: str) -> str:
    """The "host-pid-" prefix a claim shares with its worker's heartbeat id."""
    return claim.rsplit("-", 1)[0] + "-" if "-" in claim else ""


def _claim(rollout_id: int, chunk: int) -> str:
    """pending → submitting for the chunk's rows, stamped with a fresh token, in one UPDATE
    that holds only while the rollout runs: pausing, halting or cancelling it stops the chunks
    not yet claimed."""
    token = claim_token()
    running = Rollout.objects.filter(pk=rollout_id, state=Rollout.State.RUNNING)
    RolloutServer.objects.filter(
        Exists(running), rollout_id=rollout_id, chunk=chunk, state=S.PENDING
    ).update(state=S.SUBMITTING, claim=token, submitted_at=timezone.now())
    return token


def _claimed(rollout_id: int, token: str) -> QuerySet:
    # By state too: the rollout's submitting rows are few, found by the (rollout, state) index.
    return RolloutServer.objects.filter(rollout_id=rollout_id, state=S.SUBMITTING, claim=token)


def _mark_sending(judged: list[Moved], token: str, rollout_id: int) -> list[RolloutServer]:
    """submitting → sending for the rows still to send, just before the call (with what each
    server runs now, for a later revert), and the others to skipped or failed: one UPDATE, for
    rows still under this claim and only while the rollout runs. From here on the sending rows
    may have been sent. Rows recovery put back meanwhile (submitting too long) are not sent;
    a chunk that waited for its turn while the rollout was paused, halted or cancelled is not
    sent either: its rows go back to pending."""
    running = Rollout.objects.filter(pk=rollout_id, state=Rollout.State.RUNNING)
    written = write_rows(judged, within=Q(claim=token) & Q(Exists(running)))
    if judged and not written:
        _release([row for row, _update in judged], token)
        return []
    kept = [row for row, update in judged if update["state"] == S.SENDING]
    if written < len(judged) and kept:
        still = set(
            RolloutServer.objects.filter(
                pk__in=[r.pk for r in kept], state=S.SENDING, claim=token
            ).values_list("pk", flat=True)
        )
        kept = [r for r in kept if r.pk in still]
    for row in kept:
        row.state = S.SENDING
        row.send_attempts += 1
    return kept


def _defer(
    rollout: Rollout, chunk: int, rows: list[RolloutServer], token: str, exc: CloudError
) -> None:
    """The re-read failed: nothing was sent, so the claimed rows go back to pending."""
    released = _release(rows, token)
    log.warning("rollout %s chunk %s not sent, cloud failed: %s", rollout.pk, chunk, exc)
    audit.record_for_rollout(
        rollout,
        "rows.send_deferred",
        outcome=audit.ERROR,
        chunk=chunk,
        servers=released,
        status=exc.status,
        error_code=exc.error_code,
        message=exc.message[:200],
    )


def _recheck(
    rollout: Rollout, rows: list[RolloutServer], fresh: dict[str, records.Server]
) -> list[Moved]:
    """Re-judge the rows on their servers as just re-read (`fresh`; a server missing is gone).
    Returns each row with what to write: sending (with the image its server runs now) for the
    rows still to send, skipped or failed with the reason for the others. Writes nothing."""
    images = {
        i.id: i
        for i in Image.objects.filter(
            project_id=rollout.project_id,
            id__in={r.to_image_id for r in rows} | {s.image_id for s in fresh.values()},
        )
    }
    now = timezone.now()
    judged: list[Moved] = []
    for row in rows:
        server = fresh.get(row.server_id)
        facts = (
            server_facts(server, gone=False)
            if server
            else compat.ServerFacts(id=row.server_id, image_id="", os_type="", gone=True)
        )
        current = image_facts(images.get(server.image_id)) if server else None
        verdict = compat.verdict(facts, image_facts(images.get(row.to_image_id)), current)
        if verdict.ok:
            update = {
                "state": S.SENDING,
                "send_attempts": row.send_attempts + 1,  # the claim keeps it ours meanwhile
                "previous_image_id": server.image_id,
            }
        elif verdict.action == compat.SKIP:
            message = _("Already on the target image when it was about to be sent.")
            update = _finished(S.SKIPPED, compat.SAME_IMAGE, message, now)
        else:
            headline = verdict.reason
            message = _("Not sent: %(reason)s") % {"reason": headline.message}
            update = _finished(S.FAILED, headline.code, message, now)
        judged.append((row, update))
    return judged


def _finished(state: str, code: str, message: str, now, request_id: str = "") -> dict:
    return {
        "state": state,
        "error_code": code[:64],
        "error_message": message[:1000],
        "request_id": request_id,
        "finished_at": now,
    }


def _send(
    rollout: Rollout,
    chunk: int,
    rows: list[RolloutServer],
    client,
    token: str,
    turn: _Turn,
) -> tuple[float | None, CloudError | None]:
    """One batch-change-image call, audited before and after, on `turn`: given back as soon
    as the call has answered (or failed), before its answer is written.

    Returns (seconds to wait before sending again, or None; the failure that should stop this
    tick's sending: the call was refused before it left).
    """
    target = _change_target(rollout, rows[0].to_image_id)
    ids = [r.server_id for r in rows]
    call = uuid.uuid4().hex[:12]
    audit.record_for_rollout(
        rollout,
        "api.batch_change_image.intent",
        call=call,
        chunk=chunk,
        attempt=max(r.send_attempts for r in rows),
        image=target.image_id,
        server_ids=ids,
    )
    sent_at = timezone.now()
    turn.left()
    try:
        result = client.batch_change_image(ids, target)
    except CloudError as exc:
        turn.answered()
        with turn.bookkeeping():
            return _on_error(rollout, rows, token, exc, sent_at, call)
    turn.answered()
    with turn.bookkeeping():
        _record_items(rows, token, result, sent_at)
        audit.record_for_rollout(
            rollout,
            "api.batch_change_image",
            call=call,
            result="answered",
            request_id=result.request_id,
            servers=len(ids),
            jobs=[i.job_id for i in result.items if i.job_id],
            refused=[i.server_id for i in result.items if not i.accepted],
        )
    return None, None


def _change_target(rollout: Rollout, image_id: str) -> records.ChangeTarget:
    """What to send for a chunk: one image per call (a revert's chunks differ per image)."""
    image = None
    if image_id != rollout.target_image_id:
        image = Image.objects.filter(project_id=rollout.project_id, id=image_id).first()
    if image is None:
        return records.ChangeTarget(
            image_id=image_id,
            image_type=rollout.target_image_type,
            os_type=rollout.target_os_type,
            image_product_id=rollout.target_product_id,
            update_access_agent=rollout.update_access_agent,
        )
    return records.ChangeTarget(
        image_id=image.id,
        image_type=image.image_type,
        os_type=image.os_type,
        image_product_id=image.product_code,
        update_access_agent=rollout.update_access_agent,
    )


def _on_error(
    rollout: Rollout, rows: list[RolloutServer], token: str, exc: CloudError, sent_at, call: str
) -> tuple[float | None, CloudError | None]:
    details = {
        "call": call,
        "request_id": exc.request_id,
        "status": exc.status,
        "error_code": exc.error_code,
        "servers": len(rows),
    }
    wait: float | None = None
    trouble: CloudError | None = None
    sent = RolloutServer.objects.filter(pk__in=[r.pk for r in rows], state=S.SENDING, claim=token)
    if exc.outcome in (Outcome.THROTTLED, Outcome.NOT_SENT):
        _release(rows, token, not_sent=True)  # nothing was accepted: safe to send again
        if exc.outcome == Outcome.THROTTLED:
            details["result"] = "throttled"
            wait = exc.retry_after or 2.0
        else:
            details["result"] = "not_sent"
            trouble = exc  # no answer before it left, or the breaker is open: back off
    elif exc.outcome == Outcome.REJECTED:
        sent.update(
            **_finished(
                S.FAILED,
                exc.error_code or str(exc.status),
                exc.message,
                timezone.now(),
                request_id=exc.request_id,
            )
        )
        details["result"] = "rejected"
    else:
        # The cloud may or may not have accepted it: reconcile, never resend blindly. Only
        # this chunk waits for that; the others go on.
        sent.update(
            state=S.UNKNOWN,
            submitted_at=sent_at,
            request_id=exc.request_id,
            error_code=exc.error_code,
            error_message=(_("Outcome unknown: %(message)s") % {"message": exc.message})[:1000],
        )
        details["result"] = "unknown"
    audit.record_for_rollout(rollout, "api.batch_change_image", outcome=audit.ERROR, **details)
    return wait, trouble


def _release(rows: list[RolloutServer], token: str, *, not_sent: bool = False) -> int:
    """Claimed (or, for a call that provably never left, marked) rows back to pending; the
    attempt a call that never left counted is given back."""
    claimed = RolloutServer.objects.filter(pk__in=[r.pk for r in rows], claim=token)
    released = claimed.filter(state=S.SUBMITTING).update(state=S.PENDING, claim="")
    if not_sent:
        released += claimed.filter(state=S.SENDING).update(
            state=S.PENDING, claim="", send_attempts=F("send_attempts") - 1
        )
    return released


def _record_items(
    rows: list[RolloutServer], token: str, result: records.ChangeResult, sent_at
) -> None:
    """The answer on every row of the chunk in one UPDATE (accepted with its own job,
    refused with its own error, unmentioned), each row only while still sending under this
    claim."""
    items = {item.server_id: item for item in result.items}
    common = {"submitted_at": sent_at, "request_id": result.request_id}
    answered: list[Moved] = []
    for row in rows:
        item = items.get(row.server_id)
        if item is None:
            message = _("The answer did not mention this server.")
            update = {"state": S.UNKNOWN, "error_message": message}
        elif item.accepted:
            update = {"state": S.WAITING, "job_id": item.job_id}
        else:
            update = {
                "state": S.FAILED,
                "error_code": item.error_code[:64],
                "error_message": item.error_message[:1000],
                "finished_at": sent_at,
            }
        answered.append((row, update | common))
    write_rows(answered, within=Q(claim=token))
