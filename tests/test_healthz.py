import socket
import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from dashboard.models import WorkerHeartbeat

pytestmark = pytest.mark.django_db


@pytest.fixture
def listening_endpoint(settings):
    """A loopback port that accepts TCP connections, standing in for the cloud."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                conn.close()
            except TimeoutError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    settings.HUAWEICLOUD = {
        **settings.HUAWEICLOUD,
        "WORKSPACEAPP_ENDPOINT": f"http://127.0.0.1:{port}",
    }
    yield
    stop.set()
    thread.join()
    server.close()


def _beat(age_seconds: float) -> None:
    now = timezone.now()
    WorkerHeartbeat.objects.create(
        worker_id="w1", beat_at=now - timedelta(seconds=age_seconds), started_at=now
    )


def test_healthz_is_public_and_200_when_everything_answers(client, listening_endpoint):
    _beat(3)
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["database"] is True
    assert body["cloud_reachable"] is True
    assert 0 <= body["worker_heartbeat_age_seconds"] < 60


def test_healthz_is_503_without_a_worker_heartbeat(client, listening_endpoint):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["worker"] is False


def test_healthz_is_503_with_a_stale_heartbeat(client, listening_endpoint, settings):
    _beat(settings.WORKER_HEARTBEAT_MAX_AGE + 30)
    assert client.get("/healthz").status_code == 503


def test_healthz_is_503_when_the_cloud_does_not_answer(client):
    _beat(1)  # the test settings point the cloud at the discard port, which refuses
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["cloud_reachable"] is False


def test_healthz_reveals_nothing_secret(client, settings):
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, "AK": "AKVISIBLE", "SK": "SKVISIBLE"}
    text = client.get("/healthz").content.decode()
    assert "AKVISIBLE" not in text and "SKVISIBLE" not in text and "127.0.0.1" not in text
