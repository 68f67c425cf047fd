"""Every process that calls the cloud paces through the counters the workers share (the
database), not only the worker: a web process's calls count against the same second."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dashboard import upstream
from dashboard.cloud import client as cloud_client_module
from dashboard.cloud import limits
from dashboard.models import CloudRateWindow


@pytest.fixture
def fresh_guard(monkeypatch, settings):
    """This process's guard rebuilt from the settings the test sets (restored afterwards)."""
    monkeypatch.setattr(limits, "_guards", {})
    monkeypatch.setattr(cloud_client_module, "_clients", {})
    return settings


def test_the_shared_database_store_is_plugged_in_at_start_up():
    assert isinstance(limits._store, upstream.DatabaseStore)


@pytest.mark.django_db(transaction=True)
def test_a_cloud_call_made_outside_the_worker_is_counted_in_the_shared_table(
    sim_settings, fresh_guard
):
    fresh_guard.CLOUD_RATE_LIMITS = "read=1000"
    cloud = cloud_client_module.get_client()

    cloud.list_server_groups()

    [window] = CloudRateWindow.objects.filter(key__startswith="read:")
    assert window.count >= 1


@pytest.mark.django_db(transaction=True)
def test_the_unpaced_test_process_touches_no_counter(sim_settings, fresh_guard):
    assert set(limits.parse_rates(fresh_guard.CLOUD_RATE_LIMITS).values()) == {0}  # tests/settings
    cloud = cloud_client_module.get_client()

    with CaptureQueriesContext(connection) as queries:
        cloud.list_server_groups()

    assert not [q for q in queries if CloudRateWindow._meta.db_table in q["sql"]]
    assert not CloudRateWindow.objects.exists()
