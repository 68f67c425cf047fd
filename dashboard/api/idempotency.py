"""`Idempotency-Key` on every POST: a repeat answers the first result, never acts twice.

The first request with a key stores a row (unique per caller and key) before it acts, then
the answer it gave (status and body). A repeat with the same method, path and body gets that
answer again, marked `Idempotent-Replayed: true`; the same key with another request is a 409
(`idempotency.key_reused`), and a repeat that arrives while the first is still being answered
a 409 (`idempotency.in_progress`) to retry shortly. An answer that crashed is not kept, so the
request can be sent again. Keys expire after API_IDEMPOTENCY_TTL_SECONDS.
"""

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Header

from dashboard.api.auth import caller
from dashboard.api.problems import CONTENT_TYPE, Problem
from dashboard.models import IdempotencyKey

KeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Any unique string (e.g. a UUID): sending the same request again with the "
        "same key answers the first result instead of acting twice.",
    ),
]

Answer = Callable[[], tuple[int, Any]]


def once(request: HttpRequest, key: str | None, answer: Answer) -> HttpResponse:
    """Run `answer` (returning status and a JSON-able body) at most once per caller and key."""
    if not key:
        return _respond(request, *_run(answer, request))
    fingerprint = _fingerprint(request)
    owner = caller(request).key
    now = timezone.now()
    IdempotencyKey.objects.filter(expires_at__lt=now).delete()
    try:
        with transaction.atomic():
            row = IdempotencyKey.objects.create(
                caller=owner,
                key=key,
                request_hash=fingerprint,
                expires_at=now + timedelta(seconds=settings.API_IDEMPOTENCY_TTL_SECONDS),
            )
    except IntegrityError:
        return _replay(request, owner, key, fingerprint)
    try:
        status, body = _run(answer, request)
    except Exception:
        row.delete()  # nothing to replay: the request may be sent again
        raise
    IdempotencyKey.objects.filter(pk=row.pk).update(
        status=status, body=json.dumps(body, default=str)
    )
    return _respond(request, status, body)


def _run(answer: Answer, request: HttpRequest) -> tuple[int, Any]:
    try:
        return answer()
    except Problem as problem:
        if problem.status >= 500:
            raise
        return problem.status, problem.body(request)


def _replay(request: HttpRequest, owner: str, key: str, fingerprint: str) -> HttpResponse:
    row = IdempotencyKey.objects.filter(caller=owner, key=key).first()
    if row is None:  # the first request crashed and let its key go just now
        raise Problem(409, "idempotency.in_progress", headers={"Retry-After": "1"})
    if row.request_hash != fingerprint:
        raise Problem(
            409,
            "idempotency.key_reused",
            "This Idempotency-Key was used for another request; use a new key.",
        )
    if row.status is None:
        raise Problem(409, "idempotency.in_progress", headers={"Retry-After": "1"})
    response = _respond(request, row.status, json.loads(row.body))
    response["Idempotent-Replayed"] = "true"
    return response


def _respond(request: HttpRequest, status: int, body: Any) -> HttpResponse:
    content_type = CONTENT_TYPE if status >= 400 else "application/json"
    return HttpResponse(json.dumps(body, default=str), status=status, content_type=content_type)


def _fingerprint(request: HttpRequest) -> str:
    """Method, path and body (as data): what makes two requests "the same request"."""
    sha = hashlib.sha256()
    for part in (request.method or "", request.path):
        sha.update(part.encode() + b"\0")
    sha.update(_canonical(request.body))
    return sha.hexdigest()


def _canonical(body: bytes) -> bytes:
    """A JSON body with its keys sorted and no spacing: the same data is the same body."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        return body
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
