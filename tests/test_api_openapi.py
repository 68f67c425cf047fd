"""The OpenAPI document: valid, complete, and true of the live API.

Schemathesis generates requests from the document for every operation and sends them to the
dashboard's own WSGI application (in process, on the test database) with a service token:
every answer must match the document (status, content type, body schema) and none may be a
500. Schema-valid input may still be refused (422: an unknown group, an image no server can
take; 400: a cursor the API did not make), so that one check is left out. The run is bounded:
a fixed number of examples per operation, and no example database.
"""

import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.api_helpers import API, bearer

pytestmark = pytest.mark.django_db

EXAMPLES_PER_OPERATION = 15


@pytest.fixture
def admin_secret(make_token, settings) -> str:
    settings.API_REQUESTS_PER_MINUTE = 0  # the fuzzing sends hundreds of requests a minute
    return make_token("fuzz-bot", "admin")[1].secret


@pytest.fixture
def wsgi_app():
    """The dashboard's WSGI application, run in process inside the test's transaction.

    Django's test client keeps a request from closing the database connection at its end;
    a WSGI application called directly needs the same.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def document(secret: str) -> dict:
    response = bearer(secret).get(f"{API}/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_the_document_is_valid_openapi(admin_secret):
    validate(document(admin_secret))


def test_the_document_needs_a_caller():
    from django.test import Client

    response = Client().get(f"{API}/openapi.json")
    assert response.status_code == 401
    assert response.json()["code"] == "auth.required"


def test_every_operation_needs_a_token_or_a_session(admin_secret):
    doc = document(admin_secret)
    schemes = set(doc["components"]["securitySchemes"])
    assert schemes == {"TokenAuth", "SessionAuth"}
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            named = {name for entry in operation.get("security", []) for name in entry}
            assert named == schemes, f"{method.upper()} {path} is open"


def test_every_post_takes_an_idempotency_key_and_answers_problems(admin_secret):
    for path, item in document(admin_secret)["paths"].items():
        if "post" not in item:
            continue
        operation = item["post"]
        headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
        assert "Idempotency-Key" in headers, path
        assert {"404", "409"} <= set(operation["responses"]), path


def test_the_live_api_answers_as_its_document_says(admin_secret, small_fleet, wsgi_app):
    headers = {"Authorization": f"Bearer {admin_secret}"}
    schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", wsgi_app, headers=headers)
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
        @given(case=operation.as_strategy())
        def check(case):
            response = case.call(headers=headers)
            assert response.status_code < 500, (case.method, case.path, response.text[:500])
            case.validate_response(
                response, headers=headers, excluded_checks=[positive_data_acceptance]
            )

        try:
            check()
        except Exception as error:  # gather every operation's failure, then fail once
            failures.append(f"{operation.label}: {error}"[:3000])
    assert not failures, json.dumps(failures, indent=1)
