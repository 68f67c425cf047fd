"""Middleware for what every response and every request must honour, whichever view answers.

* `SecurityHeadersMiddleware` sits near the top of MIDDLEWARE, so responses made before the
  views — the SSO refusal, the CSRF refusal, a 400 — get the same headers as pages:
  `X-Frame-Options: DENY`, and `Cache-Control: no-store` on every HTML page and every download
  (a shared or browser cache must not keep a page showing someone's fleet, or an export, after
  they sign out). Static files are served before this middleware and stay cacheable.
* `RejectNulMiddleware` answers 400 to a NUL character in the path, the query string or a form
  field, before anything looks them up: PostgreSQL refuses NUL in text, so such a request
  would otherwise end as a 500 wherever the value reaches a query.
* `MethodNotAllowedPageMiddleware` gives a 405 a page of its own.
"""

from collections.abc import Callable

from django.core.exceptions import BadRequest
from django.http import HttpRequest, HttpResponse, QueryDict
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.translation import gettext as _

NO_STORE = "no-store"


def _no_store_wanted(response: HttpResponse) -> bool:
    content_type = response.get("Content-Type", "")
    is_download = response.get("Content-Disposition", "").lower().startswith("attachment")
    return content_type.startswith("text/html") or is_download


class SecurityHeadersMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # Django's XFrameOptionsMiddleware sits at the end of MIDDLEWARE and never sees a
        # response a middleware before it returned (the SSO 403); this one sees them all.
        response.headers.setdefault("X-Frame-Options", "DENY")
        if _no_store_wanted(response):
            response["Cache-Control"] = NO_STORE
        return response


def _holds_nul(data: QueryDict) -> bool:
    return any("\x00" in key or "\x00" in value for key, values in data.lists() for value in values)


def _nul_in(request: HttpRequest) -> str:
    """Where the request carries a NUL character ("" when it does not)."""
    if "\x00" in request.path:
        return _("the address")
    if _holds_nul(request.GET):
        return _("the query string")
    if request.method == "POST":
        try:
            post = request.POST
        except (MultiPartParserError, BadRequest):
            return ""  # not ours to judge: the view's own parsing answers 400
        if _holds_nul(post):
            return _("a form field")
    return ""


class RejectNulMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if where := _nul_in(request):
            message = _("The request was refused: %(where)s contains a NUL character.") % {
                "where": where
            }
            return render(request, "400.html", {"message": message}, status=400)
        return self.get_response(request)


class MethodNotAllowedPageMiddleware:
    """A page for a 405, where Django answers an empty body: an address that only takes a form
    (confirm, sign out, …) reopened from the history or a copied link says so and leads on,
    rather than showing a blank page. The API answers its own problem documents."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code != 405 or response.content or request.path.startswith("/api/"):
            return response
        page = HttpResponse(render_to_string("405.html", request=None), status=405)
        page["Allow"] = response.get("Allow", "")
        return page
