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
"""

import logging
import os
import socket
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from django.conf import settings
from django.db import connection
from django.db.models import Case, CharField, F, Value, When
from django.utils import timezone
from django.utils.translation import gettext as _

from dashboard import audit, compat
from dashboard.cloud import records
from dashboard.cloud.errors import CloudError, Outcome
from dashboard.models import Image, Rollout, RolloutServer
from dashboard.rollouts.facts import image_facts, server_facts
from dashboard.rollouts.reread import GroupReads, reread_servers

log = logging.getLogger(__name__)

MAX_SEND_ATTEMPTS = 8  # throttled retries of one chunk within one tick
MAX_THROTTLE_WAIT = 60.0
S = RolloutServer.State


def send_wave(rollout_id: int, wave: int, client, *, sleep: Callable[[float], None]) -> None:
    """Send the wave's pending chunks, a configurable number of calls in flight.

    Raises the first CloudError that kept a chunk from being sent (the cloud is unreachable,
    or the breaker is open) once every chunk has had its turn; those rows are pending again.
    """
    chunks = sorted(
        set(
            RolloutServer.objects.filter(
                rollout_id=rollout_id, wave=wave, state=S.PENDING
            ).values_list("chunk", flat=True)
        )
    )
    in_flight = max(1, settings.ROLLOUT_CALLS_IN_FLIGHT)
    reads = GroupReads(client)
    if in_flight == 1 or len(chunks) <= 1:
        troubles = [
            _send_chunk(rollout_id, chunk, client=client, sleep=sleep, reads=reads)
            for chunk in chunks
        ]
    else:
        send = partial(_send_chunk_in_thread, rollout_id, client=client, sleep=sleep, reads=reads)
        with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="submit") as pool:
            troubles = list(pool.map(send, chunks))
    trouble = next((t for t in troubles if t is not None), None)
    if trouble is not None:
        raise trouble


def _send_chunk_in_thread(rollout_id: int, chunk: int, **kwargs) -> CloudError | None:
    try:
        return _send_chunk(rollout_id, chunk, **kwargs)
    finally:
        connection.close()  # each thread has its own connection; do not leak it


def _send_chunk(rollout_id: int, chunk: int, *, client, sleep, reads=None) -> CloudError | None:
    """Claim, re-read, mark and send one chunk. Returns the cloud failure that stopped it."""
    for attempt in range(MAX_SEND_ATTEMPTS):
        if _should_stop(rollout_id):
            return None
        token = _claim(rollout_id, chunk)
        rows = list(RolloutServer.objects.filter(rollout_id=rollout_id, claim=token))
        if not rows:
            return None  # another worker has it, or nothing is pending
        try:
            rows = _recheck(rows, client, reads)
        except CloudError as exc:
            _defer(rollout_id, chunk, rows, exc)
            return exc
        rows = _mark_sending(rows, token)
        if not rows:
            return None
        wait, trouble = _send(rollout_id, chunk, rows, client)
        if trouble is not None:
            return trouble
        if wait is None:
            return None
        log.info("rollout %s chunk %s: waiting %.1fs before sending again", rollout_id, chunk, wait)
        sleep(min(wait * (attempt + 1), MAX_THROTTLE_WAIT))
    return None


def _should_stop(rollout_id: int) -> bool:
    # Pausing, halting or cancelling the rollout stops the chunks not yet claimed.
    return not Rollout.objects.filter(pk=rollout_id, state=Rollout.State.RUNNING).exists()


def claim_token() -> str:
    """A fresh claim that names this process (host and pid, as worker ids begin), so recovery
    can tell the claims of a dead worker at once from its heartbeat (refresh.py)."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def claimant(claim: str) -> str:
    """The "host-pid-" prefix a claim shares with its worker's heartbeat id."""
    return claim.rsplit("-", 1)[0] + "-" if "-" in claim else ""


def _claim(rollout_id: int, chunk: int) -> str:
    token = claim_token()
    RolloutServer.objects.filter(rollout_id=rollout_id, chunk=chunk, state=S.PENDING).update(
        state=S.SUBMITTING, claim=token, submitted_at=timezone.now()
    )
    return token


def _mark_sending(rows: list[RolloutServer], token: str) -> list[RolloutServer]:
    """submitting → sending for this claim, just before the call: from here on the rows may
    have been sent. Rows recovery put back meanwhile (submitting too long) are not sent."""
    ids = [r.pk for r in rows]
    marked = RolloutServer.objects.filter(pk__in=ids, state=S.SUBMITTING, claim=token)
    if not marked.update(state=S.SENDING, send_attempts=F("send_attempts") + 1):
        return []
    still = set(
        RolloutServer.objects.filter(pk__in=ids, state=S.SENDING, claim=token).values_list(
            "pk", flat=True
        )
    )
    kept = [r for r in rows if r.pk in still]
    for row in kept:
        row.state = S.SENDING
        row.send_attempts += 1
    return kept


def _defer(rollout_id: int, chunk: int, rows: list[RolloutServer], exc: CloudError) -> None:
    """The re-read failed: nothing was sent, so the claimed rows go back to pending."""
    released = _release(rows)
    log.warning("rollout %s chunk %s not sent, cloud failed: %s", rollout_id, chunk, exc)
    audit.record_for_rollout(
        Rollout.objects.get(pk=rollout_id),
        "rows.send_deferred",
        outcome=audit.ERROR,
        chunk=chunk,
        servers=released,
        status=exc.status,
        error_code=exc.error_code,
        message=exc.message[:200],
    )


def _recheck(rows: list[RolloutServer], client, reads=None) -> list[RolloutServer]:
    """Re-read the servers from the API and re-judge them. Returns the rows still to send."""
    fresh = reread_servers(client, rows, reads)
    project = Rollout.objects.filter(pk=rows[0].rollout_id).values("project_id")[:1]
    images = {
        i.id: i
        for i in Image.objects.filter(
            project_id=project,
            id__in={r.to_image_id for r in rows} | {s.image_id for s in fresh.values()},
        )
    }
    keep, previous = [], {}
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
            previous[row.pk] = server.image_id
            keep.append(row)
        elif verdict.action == compat.SKIP:
            _finish_row(
                row,
                S.SKIPPED,
                code=compat.SAME_IMAGE,
                message=_("Already on the target image when it was about to be sent."),
            )
        else:
            headline = verdict.reason
            _finish_row(
                row,
                S.FAILED,
                code=headline.code,
                message=_("Not sent: %(reason)s") % {"reason": headline.message},
            )
    if previous:  # what each server runs now, for a later revert: one statement
        RolloutServer.objects.filter(pk__in=list(previous)).update(
            previous_image_id=_per_row(previous)
        )
    return keep


def _send(
    rollout_id: int, chunk: int, rows: list[RolloutServer], client
) -> tuple[float | None, CloudError | None]:
    """One batch-change-image call, audited before and after.

    Returns (seconds to wait before sending again, or None; the failure that should stop this
    tick's sending: the call was refused before it left).
    """
    rollout = Rollout.objects.get(pk=rollout_id)
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
    try:
        result = client.batch_change_image(ids, target)
    except CloudError as exc:
        return _on_error(rollout, rows, exc, sent_at, call)
    _record_items(rows, result, sent_at)
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
    image = Image.objects.filter(project_id=rollout.project_id, id=image_id).first()
    if image is None or image_id == rollout.target_image_id:
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
    rollout, rows, exc: CloudError, sent_at, call: str
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
    if exc.outcome in (Outcome.THROTTLED, Outcome.NOT_SENT):
        _release(rows, not_sent=True)  # nothing was accepted: safe to send again
        if exc.outcome == Outcome.THROTTLED:
            details["result"] = "throttled"
            wait = exc.retry_after or 2.0
        else:
            details["result"] = "not_sent"
            trouble = exc  # no answer before it left, or the breaker is open: back off
    elif exc.outcome == Outcome.REJECTED:
        for row in rows:
            _finish_row(
                row,
                S.FAILED,
                code=exc.error_code or str(exc.status),
                message=exc.message,
                request_id=exc.request_id,
                source=S.SENDING,
            )
        details["result"] = "rejected"
    else:
        # The cloud may or may not have accepted it: reconcile, never resend blindly. Only
        # this chunk waits for that; the others go on.
        RolloutServer.objects.filter(pk__in=[r.pk for r in rows], state=S.SENDING).update(
            state=S.UNKNOWN,
            submitted_at=sent_at,
            request_id=exc.request_id,
            error_code=exc.error_code,
            error_message=(_("Outcome unknown: %(message)s") % {"message": exc.message})[:1000],
        )
        details["result"] = "unknown"
    audit.record_for_rollout(rollout, "api.batch_change_image", outcome=audit.ERROR, **details)
    return wait, trouble


def _release(rows: list[RolloutServer], *, not_sent: bool = False) -> int:
    """Claimed (or, for a call that provably never left, marked) rows back to pending; the
    attempt a call that never left counted is given back."""
    ids = [r.pk for r in rows]
    released = RolloutServer.objects.filter(pk__in=ids, state=S.SUBMITTING).update(
        state=S.PENDING, claim=""
    )
    if not_sent:
        released += RolloutServer.objects.filter(pk__in=ids, state=S.SENDING).update(
            state=S.PENDING, claim="", send_attempts=F("send_attempts") - 1
        )
    return released


def _record_items(rows: list[RolloutServer], result: records.ChangeResult, sent_at) -> None:
    """At most three UPDATEs for the whole chunk (accepted, refused, unmentioned), each still
    guarded by state = sending."""
    items = {item.server_id: item for item in result.items}
    accepted = {
        r.pk: items[r.server_id]
        for r in rows
        if items.get(r.server_id) and items[r.server_id].accepted
    }
    refused = {
        r.pk: items[r.server_id] for r in rows if r.server_id in items and r.pk not in accepted
    }
    missing = [r.pk for r in rows if r.server_id not in items]
    claimed = RolloutServer.objects.filter(state=S.SENDING)
    common = {"submitted_at": sent_at, "request_id": result.request_id}
    if accepted:
        claimed.filter(pk__in=list(accepted)).update(
            state=RolloutServer.State.WAITING,
            job_id=_per_row({pk: item.job_id for pk, item in accepted.items()}),
            **common,
        )
    if refused:
        claimed.filter(pk__in=list(refused)).update(
            state=RolloutServer.State.FAILED,
            error_code=_per_row({pk: item.error_code[:64] for pk, item in refused.items()}),
            error_message=_per_row({pk: item.error_message[:1000] for pk, item in refused.items()}),
            finished_at=sent_at,
            **common,
        )
    if missing:
        claimed.filter(pk__in=missing).update(
            state=RolloutServer.State.UNKNOWN,
            error_message=_("The answer did not mention this server."),
            **common,
        )


def _per_row(values: dict[int, str]) -> Case:
    """CASE pk WHEN … THEN '<text>' … END: one text column, a value per row."""
    return Case(
        *[When(pk=pk, then=Value(value)) for pk, value in values.items()],
        default=Value(""),
        output_field=CharField(),
    )


def _finish_row(
    row: RolloutServer,
    state: str,
    *,
    code: str,
    message: str,
    request_id="",
    source: str = S.SUBMITTING,
) -> None:
    RolloutServer.objects.filter(pk=row.pk, state=source).update(
        state=state,
        error_code=code[:64],
        error_message=message[:1000],
        request_id=request_id,
        finished_at=timezone.now(),
    )
