"""/healthz: public, answered from the database alone (heartbeats and the last cloud contact)."""

import socket
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from dashboard.models import WorkerHeartbeat

pytestmark = pytest.mark.django_db


def _beat(age_seconds: float, worker_id: str = "w1", **fields) -> WorkerHeartbeat:
    now = timezone.now()
    return WorkerHeartbeat.objects.create(
        worker_id=worker_id,
        beat_at=now - timedelta(seconds=age_seconds),
        started_at=now - timedelta(hours=1),
        interval_seconds=5.0,
        **fields,
    )


@pytest.fixture
def dead_cloud_port(settings):
    """The cloud endpoint at a port that accepts connections and never answers: any call from
    /healthz would hang there, so an answer proves none was made."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(100)
    settings.HUAWEICLOUD = {
        **settings.HUAWEICLOUD,
        **{
            key: f"http://127.0.0.1:{server.getsockname()[1]}"
            for key in ("WORKSPACEAPP_ENDPOINT", "WORKSPACE_ENDPOINT", "IMS_ENDPOINT")
        },
    }
    yield server
    server.close()


def test_healthz_is_public_and_200_when_everything_answers(client):
    _beat(3, cloud_ok_at=timezone.now())
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["database"] is True
    assert body["cloud_reachable"] is True
    assert 0 <= body["worker_heartbeat_age_seconds"] < 60
    assert body["workers"] == {"live": 1, "dead": 0, "stopped": 0}


def test_healthz_is_503_without_a_worker_heartbeat(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["worker"] is False


def test_healthz_is_503_with_a_stale_heartbeat(client, settings):
    _beat(settings.WORKER_HEARTBEAT_MAX_AGE + 30)
    body = client.get("/healthz")
    assert body.status_code == 503
    assert body.json()["workers"]["dead"] == 1


def test_a_stopped_worker_does_not_count_as_alive(client):
    _beat(1, stopped_at=timezone.now())
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["workers"] == {"live": 0, "dead": 0, "stopped": 1}


def test_healthz_reports_the_workers_last_cloud_contact_without_calling_the_cloud(
    client, dead_cloud_port
):
    """The worker's breaker is open: /healthz says so from its row; the probe sends nothing."""
    since = timezone.now() - timedelta(minutes=3)
    _beat(
        1,
        cloud_ok_at=since - timedelta(minutes=1),
        cloud_failed_at=timezone.now() - timedelta(seconds=2),
        cloud_unreachable_since=since,
        cloud_error="no response: could not connect",
    )
    dead_cloud_port.settimeout(0)
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["cloud_reachable"] is False
    assert body["cloud_unreachable_since"] == since.isoformat(timespec="seconds")
    with pytest.raises(BlockingIOError):
        dead_cloud_port.accept()  # nobody connected to the cloud


def test_a_worker_with_no_cloud_contact_yet_is_not_a_cloud_failure(client, dead_cloud_port):
    _beat(1)
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["cloud_reachable"] is None


def test_one_failure_among_successes_is_not_unreachable(client):
    _beat(1, cloud_ok_at=timezone.now() - timedelta(seconds=5), cloud_failed_at=timezone.now())
    assert client.get("/healthz").json()["cloud_reachable"] is True


def test_healthz_over_plain_http_is_not_redirected_under_production_settings(settings):
    settings.SECURE_SSL_REDIRECT = True
    _beat(1, cloud_ok_at=timezone.now())
    plain = Client()  # no X-Forwarded-Proto: https, as a load balancer's probe arrives
    assert plain.get("/healthz").status_code == 200
    # Everything else still goes to HTTPS.
    redirected = plain.get("/")
    assert redirected.status_code == 301
    assert redirected["Location"].startswith("https://")


def test_healthz_reveals_nothing_secret(client, settings):
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, "AK": "AKVISIBLE", "SK": "SKVISIBLE"}
    _beat(1, worker_id="db-host-17-4242", hostname="db-host-17")
    text = client.get("/healthz").content.decode()
    assert "AKVISIBLE" not in text and "SKVISIBLE" not in text and "127.0.0.1" not in text
    assert "db-host-17" not in text
