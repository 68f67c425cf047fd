"""The fault suite: real `manage.py worker` processes against the simulator, with faults.

It runs once, in CI's PostgreSQL pass (several workers need a database that lets them write at
once); on SQLite it is skipped. Select it alone with `-m faults`.
"""

import pytest
from django.db import connection


@pytest.fixture(autouse=True)
def _postgres_only(request):
    if connection.vendor != "postgresql":
        pytest.skip("the fault suite runs on PostgreSQL (CI's second pass)")
