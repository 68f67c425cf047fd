"""The NinjaAPI itself: routers, auth, problem handlers, and its URL patterns.

Django's SSO middleware refuses every view not marked public unless an SSO identity holds a
role; API views are marked public for it because the API authenticates itself (a service
token, or that same SSO identity) and answers 401/403 as problem documents. A test holds
every operation to an auth and a role.
"""

import json

from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, include, path, re_path
from ninja import NinjaAPI

from dashboard.api import audit_log, inventory, plans, problems, rollouts
from dashboard.api.auth import by
from dashboard.roles import VIEWER, public

api = NinjaAPI(
    title="Workspace APP image dashboard",
    version="1",
    description=(
        "What the dashboard's pages do, for pipelines: list the fleet, plan a rollout, read its "
        "verdicts, confirm, approve, pause, resume, cancel, retry, revert, watch it, read the "
        "audit. Errors are RFC 9457 problem documents with a stable `code`; every POST takes an "
        "`Idempotency-Key`. See docs/api.md."
    ),
    urls_namespace="api",
    auth=by(VIEWER),
    openapi_url=None,  # served below, behind the API's own auth
    docs_url=None,
)
problems.install(api)
api.add_router("", inventory.router)
api.add_router("", plans.router)
api.add_router("", rollouts.router)
api.add_router("", audit_log.router)


@api.get("/openapi.json", include_in_schema=False, url_name="openapi")
def openapi_document(request: HttpRequest):
    """The OpenAPI document, for any caller the API lets in."""
    return document()


def document() -> dict:
    """django-ninja's document, with problem answers under their own media type."""
    schema = json.loads(json.dumps(api.get_openapi_schema()))
    for item in schema["paths"].values():
        for operation in item.values():
            for answer in operation.get("responses", {}).values():
                content = answer.get("content", {})
                body = content.get("application/json", {}).get("schema", {})
                if body.get("$ref", "").endswith("/ProblemOut"):
                    content[problems.CONTENT_TYPE] = content.pop("application/json")
    return schema


@public
def unknown_path(request: HttpRequest, rest: str = "") -> HttpResponse:
    return problems.Problem(404, "not_found").response(request)


def _public(patterns: list) -> list:
    """Mark every API view public for the SSO middleware (see the module docstring)."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            _public(pattern.url_patterns)
        elif isinstance(pattern, URLPattern):
            # django-ninja's views are csrf_exempt: the API checks CSRF itself, for sessions.
            public(pattern.callback)
    return patterns


def urlpatterns() -> list:
    patterns, app_name, namespace = api.urls
    return [
        path("", include((_public(patterns), app_name), namespace=namespace)),
        re_path(r"^(?P<rest>.*)$", unknown_path, name="api-unknown"),
    ]
