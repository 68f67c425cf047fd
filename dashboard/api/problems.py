"""Errors as RFC 9457 problem documents: `type`, `title`, `status`, `detail` and a stable `code`.

Operations raise `Problem`; the API's exception handlers turn Django's and django-ninja's own
errors (404, 403, 401, validation, throttling) into the same shape. `ProblemMiddleware` catches
what answers before the API does (the SSO refusal, a NUL in the request, an unknown path, a
method the path does not take), so nothing under /api/ ever answers HTML.
"""

import json
import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

log = logging.getLogger("dashboard.api")

CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:workspace-dashboard:problem:"

# code → title: every code the API answers with. docs/api.md lists them; tests hold them.
TITLES = {
    "auth.required": "Authentication required",
    "auth.invalid_token": "The token is not valid",
    "auth.token_expired": "The token has expired",
    "auth.token_revoked": "The token was revoked",
    "auth.token_creator_lost_role": "The token's creator no longer holds its role",
    "auth.token_creator_unseen": "The token's creator has not been seen for too long",
    "csrf.failed": "CSRF check failed",
    "role.missing": "Your role does not allow this",
    "access.refused": "Not allowed",
    "project.out_of_scope": "Outside the token's project",
    "approval.same_person": "A second person must approve",
    "not_found": "Not found",
    "method_not_allowed": "Method not allowed",
    "request.malformed": "Malformed request",
    "request.unsupported_media_type": "Unsupported media type",
    "request.too_large": "The request body is too large",
    "validation.invalid": "The request is not valid",
    "cursor.invalid": "The page cursor is not valid",
    "idempotency.key_reused": "Idempotency-Key reused with another request",
    "idempotency.in_progress": "A request with this Idempotency-Key is still being answered",
    "rollout.state_conflict": "The rollout's state does not allow this",
    "plan.nothing_to_change": "Nothing in this plan would change",
    "stale_plan": "The plan is stale",
    "plan_expired": "The plan expired",
    "confirm_token_missing": "The confirm token is missing",
    "confirm_token_invalid": "The confirm token is damaged",
    "confirm_token_expired": "The confirm token is too old",
    "confirm_token_other_plan": "The confirm token is for another plan",
    "rate_limited": "Too many requests",
    "server.error": "Internal error",
}
_BY_STATUS = {
    400: "request.malformed",
    401: "auth.required",
    403: "access.refused",
    404: "not_found",
    405: "method_not_allowed",
    409: "rollout.state_conflict",
    413: "request.too_large",
    415: "request.unsupported_media_type",
    422: "validation.invalid",
    429: "rate_limited",
}


class Problem(Exception):
    """Raise from an operation to answer a problem document. `extra` members join the body."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str = "",
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        if code not in TITLES:
            raise ValueError(f"unknown problem code {code!r}")
        super().__init__(detail or TITLES[code])
        self.status = status
        self.code = code
        self.detail = detail or TITLES[code]
        self.headers = headers or {}
        self.extra = extra

    def body(self, request: HttpRequest | None = None) -> dict[str, Any]:
        body = {
            "type": TYPE_PREFIX + self.code,
            "title": TITLES[self.code],
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            **self.extra,
        }
        if request is not None:
            body["instance"] = request.path[:500]
        return body

    def response(self, request: HttpRequest | None = None) -> HttpResponse:
        response = HttpResponse(
            json.dumps(self.body(request), default=str),
            status=self.status,
            content_type=CONTENT_TYPE,
        )
        for name, value in self.headers.items():
            response[name] = value
        return response


def _validation_errors(errors: list[dict]) -> list[dict[str, str]]:
    """django-ninja's pydantic errors as {"field", "message"}: where, and what is wrong."""
    shown = []
    for error in errors[:50]:
        location = [str(part) for part in error.get("loc", ())]
        shown.append({"field": ".".join(location), "message": str(error.get("msg", ""))[:300]})
    return shown


def install(api: NinjaAPI) -> None:
    """Answer every error the API raises with a problem document."""

    def handle(kind: type[Exception]) -> Callable:
        return api.exception_handler(kind)

    @handle(Problem)
    def _problem(request, exc: Problem):
        return exc.response(request)

    @handle(ValidationError)
    def _invalid(request, exc: ValidationError):
        return Problem(422, "validation.invalid", errors=_validation_errors(exc.errors)).response(
            request
        )

    @handle(AuthenticationError)
    def _unauthenticated(request, exc):
        problem = Problem(
            401,
            "auth.required",
            "Send a service token (Authorization: Bearer …) or sign in through the SSO.",
            headers={"WWW-Authenticate": 'Bearer realm="api"'},
        )
        return problem.response(request)

    @handle(HttpError)
    def _http_error(request, exc: HttpError):
        code = _BY_STATUS.get(exc.status_code, "request.malformed")
        return Problem(exc.status_code, code, str(exc)[:300]).response(request)

    @handle(Http404)
    def _not_found(request, exc):
        return Problem(404, "not_found").response(request)

    @handle(ObjectDoesNotExist)
    def _no_object(request, exc):
        return Problem(404, "not_found").response(request)

    @handle(PermissionDenied)
    def _denied(request, exc):
        code = getattr(request, "refusal_code", "") or "access.refused"
        if code not in TITLES:
            code = "access.refused"
        return Problem(403, code, str(exc)[:300] or TITLES[code]).response(request)

    @handle(Exception)
    def _crash(request, exc):
        log.exception("API error on %s %s", request.method, request.path[:200])
        return Problem(500, "server.error", "The dashboard failed; it is logged.").response(request)


def is_api_path(path: str) -> bool:
    return path.startswith("/api/")


class ProblemMiddleware:
    """Under /api/, turn any error answered outside the API (HTML) into a problem document,
    and keep every answer out of caches.

    Sits near the top of MIDDLEWARE, so it sees the SSO refusal, the NUL refusal, Django's 404
    for an unknown path and django-ninja's bare 405. The refusal's stable reason code, when one
    was set (`request.refusal_code`: `sso.untrusted_peer`, …), becomes the problem's code.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not is_api_path(request.path):
            return response
        # Answers carry the fleet, plans and their confirm tokens: no cache may keep them.
        response["Cache-Control"] = "no-store"
        if response.status_code < 400 or response.get("Content-Type", "").startswith(CONTENT_TYPE):
            return response
        status = response.status_code
        code = _BY_STATUS.get(status, "server.error" if status >= 500 else "request.malformed")
        detail = TITLES[code]
        refusal = getattr(request, "refusal_code", "")
        extra = {"reason": refusal} if refusal else {}
        problem = Problem(status, code, detail, **extra)
        replaced = problem.response(request)
        for header in ("Allow", "Retry-After", "WWW-Authenticate", "Cache-Control"):
            if header in response:
                replaced[header] = response[header]
        return replaced
