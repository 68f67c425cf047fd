"""CloudClient over real HTTP against a scripted loopback server: paging, retries, errors."""

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from dashboard.cloud import client as client_module
from dashboard.cloud import wire
from dashboard.cloud.client import CloudClient, get_client, reachable
from dashboard.cloud.config import CloudConfig
from dashboard.cloud.errors import CloudError, Outcome
from dashboard.cloud.records import ChangeTarget, ImageType
from dashboard.cloud.signing import verify

AK = "AKCLIENTTEST00000001"
SK = "SKclientTestSecret-never-shown-0000001"
PROJECT = "0123456789abcdef0123456789abcdef"
SERVERS = f"/v1/{PROJECT}/app-servers"
GROUPS = f"/v1/{PROJECT}/app-server-groups"
CHANGE = f"/v1/{PROJECT}/app-servers/actions/batch-change-image"
MAINT = f"/v1/{PROJECT}/app-servers/actions/batch-maint"
RESET = "reset"  # close the connection after reading the request, answer nothing
STALL = "stall"  # hold the request until the client's read timeout fires


@dataclass
class Seen:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def param(self, name: str) -> str | None:
        return dict(self.query).get(name)


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Route = Callable[[Seen], "Reply | str"]


class FakeCloud:
    """A loopback HTTP server answering from scripted replies per (method, path)."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self._routes: dict[tuple[str, str], list[Reply | str] | Route] = {}
        self.release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    def on(self, method: str, path: str, *replies: Reply | str) -> None:
        """Answer with the replies in order; the last one repeats."""
        self._routes[(method, path)] = list(replies)

    def route(self, method: str, path: str, handler: Route) -> None:
        self._routes[(method, path)] = handler

    def seen(self, path: str) -> list[Seen]:
        return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, seen: Seen) -> Reply | str:
        route = self._routes.get((seen.method, seen.path))
        if route is None:
            return Reply(404, {"error_code": "WKS.00211902", "error_msg": "no such route"})
        if callable(route):
            return route(seen)
        return route.pop(0) if len(route) > 1 else route[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                seen = Seen(
                    self.command,
                    parts.path,
                    parse_qsl(parts.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                fake.requests.append(seen)
                answer = fake._answer(seen)
                if answer == STALL:
                    fake.release.wait(10)
                if isinstance(answer, str):
                    self.close_connection = True
                    return
                payload = b"" if answer.body is None else _encode(answer.body)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        return Handler


def _encode(body: Any) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


class FakeTime:
    """Deterministic sleep/monotonic: sleeping advances the clock instantly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def fake() -> Iterator[FakeCloud]:
    cloud = FakeCloud()
    yield cloud
    cloud.close()


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


def make_config(url: str, **changes: Any) -> CloudConfig:
    base = CloudConfig(
        workspaceapp_endpoint=url,
        workspace_endpoint=url,
        ims_endpoint=url,
        iam_endpoint=url,
        project_id=PROJECT,
        ak=AK,
        sk=SK,
        connect_timeout=2.0,
        read_timeout=5.0,
        retry_deadline=60.0,
    )
    return replace(base, **changes)


def make_client(url: str, clock: FakeTime, *, jitter: float = 1.0, **changes: Any) -> CloudClient:
    return CloudClient(
        make_config(url, **changes),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        random=lambda: jitter,
    )


@pytest.fixture
def cloud(fake: FakeCloud, clock: FakeTime) -> CloudClient:
    return make_client(fake.url, clock)


def server_json(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"srv-{i:04d}",
        "name": f"APS-{i:04d}",
        "machine_name": f"APS-M{i:04d}",
        "server_group_id": "sg-1",
        "image_id": "img-old",
        "os_type": "Windows",
        "status": "REGISTERED",
        "task_status": "null",
        "freeze": [],
        **extra,
    }


def paged_servers(total: int) -> Route:
    fleet = [server_json(i) for i in range(total)]

    def route(seen: Seen) -> Reply:
        offset, limit = int(seen.param("offset") or 0), int(seen.param("limit") or 10)
        return Reply(200, {"count": total, "items": fleet[offset : offset + limit]})

    return route


# --- paging ------------------------------------------------------------------------------


def test_it_lists_every_server_in_pages_of_one_hundred(fake: FakeCloud, cloud: CloudClient) -> None:
    fake.route("GET", SERVERS, paged_servers(250))
    servers = cloud.list_servers()
    assert [s.id for s in servers] == [f"srv-{i:04d}" for i in range(250)]
    assert [(r.param("offset"), r.param("limit")) for r in fake.seen(SERVERS)] == [
        ("0", "100"),
        ("100", "100"),
        ("200", "100"),
    ]
    assert cloud.calls == 3
    assert cloud.calls_by_api["ListServers"] == 3


def test_an_exact_multiple_of_the_page_size_needs_no_extra_call(
    fake: FakeCloud, cloud: CloudClient
) -> None:
    fake.route("GET", SERVERS, paged_servers(200))
    assert len(cloud.list_servers()) == 200
    assert cloud.calls == 2


def test_an_empty_fleet_costs_one_call(fake: FakeCloud, cloud: CloudClient) -> None:
    fake.on("GET", SERVERS, Reply(200, {"count": 0, "items": []}))
    assert cloud.list_servers() == []
    assert cloud.calls == 1


def test_a_server_that_shifts_between_pages_is_listed_once(
    fake: FakeCloud, cloud: CloudClient
) -> None:
    first = [server_json(i) for i in range(100)]
    second = [server_json(99), server_json(100)]  # a deletion pushed srv-0099 onto page two
    fake.on(
        "GET",
        SERVERS,
        Reply(200, {"count": 102, "items": first}),
        Reply(200, {"count": 102, "items": second}),
        Reply(200, {"count": 102, "items": []}),
    )
    ids = [s.id for s in cloud.list_servers()]
    assert len(ids) == len(set(ids)) == 101


def test_it_sends_server_filters_with_booleans_as_words(
    fake: FakeCloud, cloud: CloudClient
) -> None:
    fake.on("GET", SERVERS, Reply(200, {"count": 0, "items": []}))
    cloud.list_servers(server_group_id="sg-9", maintain_status=True, server_name="a b")
    seen = fake.seen(SERVERS)[0]
    assert seen.param("server_group_id") == "sg-9"
    assert seen.param("maintain_status") == "true"
    assert seen.param("server_name") == "a b"


def test_an_unknown_filter_fails_before_sending(fake: FakeCloud, cloud: CloudClient) -> None:
    with pytest.raises(TypeError, match="status"):
        cloud.list_servers(status="REGISTERED")
    assert cloud.calls == 0


def test_one_page_returns_the_total_and_its_servers(fake: FakeCloud, cloud: CloudClient) -> None:
    fake.route("GET", SERVERS, paged_servers(30))
    total, page = cloud.list_servers_page(offset=10, limit=5)
    assert total == 30
    assert [s.id for s in page] == [f"srv-{i:04d}" for i in range(10, 15)]


def test_it_lists_every_server_group(fake: FakeCloud, cloud: CloudClient) -> None:
    groups = [{"id": f"sg-{i}", "name": f"G{i}", "image_type": "gold"} for i in range(130)]

    def route(seen: Seen) -> Reply:
        offset = int(seen.param("offset") or 0)
        return Reply(200, {"count": 130, "items": groups[offset : offset + 100]})

    fake.route("GET", GROUPS, route)
    listed = cloud.list_server_groups(app_type="COMMON_APP")
    assert len(listed) == 130
    assert listed[0].image_type == ImageType.MARKETPLACE
    assert cloud.calls == 2
    assert fake.seen(GROUPS)[0].param("app_type") == "COMMON_APP"


def test_it_pages_ims_images_by_marker(fake: FakeCloud, cloud: CloudClient) -> None:
    images = [{"id": f"img-{i:04d}", "name": f"I{i}", "__imagetype": "private"} for i in range(600)]

    def route(seen: Seen) -> Reply:
        marker = seen.param("marker")
        start = next(i for i, im in enumerate(images) if im["id"] == marker) + 1 if marker else 0
        limit = int(seen.param("limit") or 500)
        return Reply(200, {"images": images[start : start + limit]})

    fake.route("GET", "/v2/cloudimages", route)
    listed = cloud.list_images()
    assert len(listed) == 600
    seen = fake.seen("/v2/cloudimages")
    assert [r.param("marker") for r in seen] == [None, "img-0499"]
    assert all(r.param("__imagetype") is None for r in seen)


def test_an_ims_type_filter_uses_the_ims_vocabulary(fake: FakeCloud, cloud: CloudClient) -> None:
    fake.on("GET", "/v2/cloudimages", Reply(200, {"images": []}))
    cloud.list_images(image_type=ImageType.MARKETPLACE, os_type="Windows")
    seen = fake.seen("/v2/cloudimages")[0]
    assert seen.param("__imagetype") == "market"
    assert seen.param("__os_type") == "Windows"


def test_it_pages_workspace_images_by_offset(fake: FakeCloud, cloud: CloudClient) -> None:
    path = f"/v2/{PROJECT}/images"
    images = [{"id": f"w-{i}", "name": "W", "image_type": "gold"} for i in range(150)]

    def route(seen: Seen) -> Reply:
        offset = int(seen.param("offset") or 0)
        return Reply(200, {"images": images[offset : offset + 100], "total_count": 150})

    fake.route("GET", path, route)
    listed = cloud.list_workspace_images(image_type=ImageType.PUBLIC)
    assert len(listed) == 150
    assert {im.image_type for im in listed} == {ImageType.PUBLIC}
    assert [r.param("offset") for r in fake.seen(path)] == ["0", "100"]
    assert fake.seen(path)[0].param("image_type") == "gold"


def test_it_asks_for_market_images_at_most_one_hundred_at_a_time(
    fake: FakeCloud, cloud: CloudClient
) -> None:
    path = f"/v2/{PROJECT}/market-images"

    def route(seen: Seen) -> Reply:
        ids = [v for k, v in seen.query if k == "image_ids"]
        return Reply(200, {"images": [{"image_id": i, "product_code": "p-" + i} for i in ids]})

    fake.route("GET", path, route)
    ids = [f"m-{i:03d}" for i in range(150)]
    listed = cloud.list_market_images(ids)
    assert sorted(im.id for im in listed) == ids
    assert [len([k for k, _ in r.query if k == "image_ids"]) for r in fake.seen(path)] == [100, 50]
    assert all(im.paid and im.image_type == ImageType.MARKETPLACE for im in listed)


def test_it_lists_every_sub_job_of_a_job(fake: FakeCloud, cloud: CloudClient) -> None:
    path = f"/v1/{PROJECT}/app-server-sub-jobs"
    items = [{"id": f"sj-{i}", "job_id": "j-1", "status": "RUNNING"} for i in range(120)]

    def route(seen: Seen) -> Reply:
        offset = int(seen.param("offset") or 0)
        return Reply(200, {"count": 120, "items": items[offset : offset + 100]})

    fake.route("GET", path, route)
    subs = cloud.list_sub_jobs(job_id="j-1", status="RUNNING")
    assert len(subs) == 120
    first = fake.seen(path)[0]
    assert (first.param("job_type"), first.param("job_id"), first.param("status")) == (
        "CHANGE_SERVER_IMAGE",
        "j-1",
        "RUNNING",
    )
    assert cloud.calls == 2


def test_it_shows_a_job_with_its_sub_jobs(fake: FakeCloud, cloud: CloudClient) -> None:
    fake.on(
        "GET",
        f"/v2/{PROJECT}/job/575768277444198400",
        Reply(
            200,
            {
                "id": "575768277444198400",
                "job_type": "CHANGE_SERVER_IMAGE",
                "status": "RUNNING",
                "begin_time": "2023-06-06T02:30:06.836Z",
                "end_time": None,
                "sub_jobs": [
                    {
                        "id": "sj-1",
                        "job_id": "575768277444198400",
                        "status": "FAILED",
                        "error_code": "WKS.00129901",
                        "error_message": "unavailable",
                        "job_resource_info": {"resource_id": "srv-1", "resource_name": "APS-1"},
                    }
                ],
            },
        ),
    )
    job = cloud.show_job("575768277444198400")
    assert job.status == "RUNNING"
    assert job.begin_time == datetime(2023, 6, 6, 2, 30, 6, 836000, tzinfo=UTC)
    assert job.end_time is None
    (sub,) = job.sub_jobs
    assert (sub.resource_id, sub.status, sub.error_code) == ("srv-1", "FAILED", "WKS.00129901")


def test_an_id_cannot_add_a_path_level(fake: FakeCloud, cloud: CloudClient) -> None:
    with pytest.raises(CloudError):
        cloud.show_server("../app-server-groups")
    assert fake.requests[0].path == f"{SERVERS}/..%2Fapp-server-groups"


def test_it_shows_one_server_and_one_group(fake: FakeCloud, cloud: CloudClient) -> None:
    fake.on("GET", f"{SERVERS}/srv-0001", Reply(200, server_json(1)))
    fake.on(
        "GET", f"{GROUPS}/sg-1", Reply(200, {"id": "sg-1", "name": "G", "image_type": "private"})
    )
    assert cloud.show_server("srv-0001").id == "srv-0001"
    assert cloud.show_server_group("sg-1").image_type == ImageType.PRIVATE


# --- every request is signed -------------------------------------------------------------


def test_every_request_carries_a_valid_signature_and_the_project(
    fake: FakeCloud, cloud: CloudClient
) -> None:
    fake.route("GET", SERVERS, paged_servers(5))
    cloud.list_servers(server_name="Win 2019, gold")
    seen = fake.seen(SERVERS)[0]
    assert seen.headers["x-project-id"] == PROJECT
    ak = verify(
        seen.method,
        seen.path,
        seen.query,
        seen.headers,
        seen.body,
        lambda key: SK if key == AK else None,
        datetime.now(UTC),
    )
    assert ak == AK


# --- batch change image ------------------------------------------------------------------

TARGET = ChangeTarget(image_id="img-new", image_type=ImageType.PRIVATE, os_type="Windows")


def test_more_than_fifty_servers_are_refused_before_sending(
    fake: FakeCloud, cloud: CloudClient
) -> None:
    with pytest.raises(ValueError, match="50"):
        cloud.batch_change_image([f"s-{i}" for i in range(51)], TARGET)
    assert cloud.calls == 0


@pytest.mark.parametrize(
    ("image_type", "wire"),
    [
        (ImageType.MARKETPLACE, "gold"),
        (ImageType.PUBLIC, "public"),
        (ImageType.PRIVATE, "private"),
        (ImageType.SHARED, "shared"),
        (ImageType.OTHER, "other"),
    ],
)
def test_it_sends_the_workspaceapp_image_type(
    fake: FakeCloud, cloud: CloudClient, image_type: str, wire: str
) -> None:
    fake.on("POST", CHANGE, Reply(200, {"items": []}))
    target = ChangeTarget("img-new", image_type, "Windows", image_product_id="prod-1")
    cloud.batch_change_image(["s-1"], target)
    body = fake.seen(CHANGE)[0].json()
    assert body["image_type"] == wire
    assert body["image_product_id"] == "prod-1"
    assert body["server_ids"] == ["s-1"]


def test_a_marketplace_target_without_a_product_id_is_refused(
    fake: FakeCloud, cloud: CloudClient
) -> None:
    target = ChangeTarget("img-new", ImageType.MARKETPLACE, "Windows")
    with pytest.raises(ValueError, match="image_product_id"):
        cloud.batch_change_image(["s-1"], target)
    assert cloud.calls == 0


def test_it_returns_each_servers_job_or_error(fake: FakeCloud, cloud: CloudClient) -> None:
    fake.on(
        "POST",
        CHANGE,
        Reply(
            200,
            {
                "items": [
                    {"server_id": "s-1", "job_id": "j-1", "error_code": "", "error_message": ""},
                    {
                        "server_id": "s-2",
                        "job_id": "",
                        "error_code": "WKS.00129901",
                        "error_message": "unavailable",
                    },
                ]
            },
            {"X-Request-Id": "req-42"},
        ),
    )
    result = cloud.batch_change_image(["s-1", "s-2"], TARGET)
    assert result.request_id == "req-42"
    assert [(i.server_id, i.accepted, i.error_code) for i in result.items] == [
        ("s-1", True, ""),
        ("s-2", False, "WKS.00129901"),
    ]
    body = fake.seen(CHANGE)[0].json()
    assert "image_product_id" not in body


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        (Reply(400, {"error_code": "WKS.00211102", "error_msg": "bad"}), Outcome.REJECTED),
        (Reply(403, {"error_code": "WKS.00081102", "error_msg": "no"}), Outcome.REJECTED),
        (Reply(429, {"error_code": "APIGW.0308", "error_msg": "slow"}), Outcome.THROTTLED),
        (Reply(500, {"error_code": "WKS.00211401", "error_msg": "oops"}), Outcome.UNKNOWN),
        (Reply(503, {"error_code": "WKS.00050902", "error_msg": "down"}), Outcome.UNKNOWN),
        (RESET, Outcome.UNKNOWN),
    ],
    ids=["400", "403", "429", "500", "503", "reset"],
)
def test_a_failed_change_is_classified_and_never_resent(
    fake: FakeCloud, cloud: CloudClient, clock: FakeTime, reply: Reply | str, outcome: str
) -> None:
    fake.on("POST", CHANGE, reply)
    with pytest.raises(CloudError) as caught:
        cloud.batch_change_image(["s-1"], TARGET)
    assert caught.value.outcome == outcome
    assert len(fake.seen(CHANGE)) == 1
    assert clock.sleeps == []


def test_a_throttled_change_reports_when_to_come_back(fake: FakeCloud, cloud: CloudClient) -> None:
    fake.on("POST", CHANGE, Reply(429, {"error_code": "APIGW.0308"}, {"Retry-After": "12"}))
    with pytest.raises(CloudError) as caught:
        cloud.batch_change_image(["s-1"], TARGET)
    assert caught.value.retry_after == 12.0


def test_a_change_whose_answer_never_comes_is_unknown(fake: FakeCloud, clock: FakeTime) -> None:
    cloud = make_client(fake.url, clock, read_timeout=0.2)
    fake.on("POST", CHANGE, STALL)
    with pytest.raises(CloudError) as caught:
        cloud.batch_change_image(["s-1"], TARGET)
    assert caught.value.outcome == Outcome.UNKNOWN
    assert caught.value.status is None
    assert len(fake.seen(CHANGE)) == 1


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_a_change_that_could_not_connect_was_not_sent(clock: FakeTime) -> None:
    cloud = make_client(closed_port_url(), clock)
    with pytest.raises(CloudError) as caught:
        cloud.batch_change_image(["s-1"], TARGET)
    assert caught.value.outcome == Outcome.NOT_SENT
    assert cloud.calls == 1


# --- maintenance mode --------------------------------------------------------------------


def test_maintenance_is_set_twenty_servers_at_a_time(fake: FakeCloud, cloud: CloudClient) -> None:
    fake.on("PATCH", MAINT, Reply(200))
    cloud.batch_change_maintain([f"s-{i}" for i in range(45)], True)
    bodies = [r.json() for r in fake.seen(MAINT)]
    assert [len(b["items"]) for b in bodies] == [20, 20, 5]
    assert all(b["maintain_status"] is True for b in bodies)


def test_a_failed_maintenance_call_is_retried(
    fake: FakeCloud, cloud: CloudClient, clock: FakeTime
) -> None:
    fake.on("PATCH", MAINT, Reply(503), Reply(200))
    cloud.batch_change_maintain(["s-1"], False)
    assert len(fake.seen(MAINT)) == 2
    assert len(clock.sleeps) == 1


# --- retries -----------------------------------------------------------------------------


def test_a_read_retries_server_errors_with_growing_backoff(
    fake: FakeCloud, cloud: CloudClient, clock: FakeTime
) -> None:
    fake.on("GET", SERVERS, Reply(503), Reply(502), Reply(500), Reply(200, {"count": 0}))
    assert cloud.list_servers() == []
    assert cloud.calls == 4
    assert clock.sleeps == [0.5, 1.0, 2.0]  # jitter pinned at its maximum


def test_backoff_is_fully_jittered(fake: FakeCloud, clock: FakeTime) -> None:
    cloud = make_client(fake.url, clock, jitter=0.25)
    fake.on("GET", SERVERS, Reply(503), Reply(503), Reply(200, {"count": 0}))
    cloud.list_servers()
    assert clock.sleeps == [0.125, 0.25]


def test_backoff_never_exceeds_its_cap(fake: FakeCloud, clock: FakeTime) -> None:
    cloud = make_client(fake.url, clock, retry_deadline=200.0)
    fake.on("GET", SERVERS, Reply(503))
    with pytest.raises(CloudError):
        cloud.list_servers()
    assert max(clock.sleeps) == client_module.BACKOFF_CAP


def test_retries_stop_at_the_deadline(fake: FakeCloud, clock: FakeTime) -> None:
    cloud = make_client(fake.url, clock, retry_deadline=5.0)
    fake.on("GET", SERVERS, Reply(503, {"error_code": "WKS.00050902", "error_msg": "down"}))
    with pytest.raises(CloudError) as caught:
        cloud.list_servers()
    assert caught.value.status == 503
    assert sum(clock.sleeps) <= 5.0
    assert clock.sleeps == [0.5, 1.0, 2.0]  # a fourth wait (4 s) would pass the deadline


def test_a_read_waits_as_long_as_retry_after_says(
    fake: FakeCloud, cloud: CloudClient, clock: FakeTime
) -> None:
    fake.on("GET", SERVERS, Reply(429, None, {"Retry-After": "7"}), Reply(200, {"count": 0}))
    cloud.list_servers()
    assert clock.sleeps == [7.0]


def test_a_retry_after_in_the_past_means_now(
    fake: FakeCloud, cloud: CloudClient, clock: FakeTime
) -> None:
    fake.on(
        "GET",
        SERVERS,
        Reply(503, None, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        Reply(200, {"count": 0}),
    )
    cloud.list_servers()
    assert clock.sleeps == [0.5]  # "now", but never sooner than limits.MIN_RETRY_DELAY


def test_a_retry_after_beyond_the_bound_gives_up_at_once(
    fake: FakeCloud, cloud: CloudClient, clock: FakeTime
) -> None:
    fake.on("GET", SERVERS, Reply(429, None, {"Retry-After": "3600"}))
    with pytest.raises(CloudError) as caught:
        cloud.list_servers()
    assert caught.value.outcome == Outcome.THROTTLED
    assert caught.value.retry_after == 3600.0
    assert clock.sleeps == []
    assert cloud.calls == 1


def test_a_retry_after_beyond_the_deadline_gives_up_at_once(
    fake: FakeCloud, clock: FakeTime
) -> None:
    cloud = make_client(fake.url, clock, retry_deadline=10.0)
    fake.on("GET", SERVERS, Reply(429, None, {"Retry-After": "30"}))
    with pytest.raises(CloudError):
        cloud.list_servers()
    assert clock.sleeps == []


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_a_client_error_is_not_retried(
    fake: FakeCloud, cloud: CloudClient, clock: FakeTime, status: int
) -> None:
    fake.on("GET", SERVERS, Reply(status, {"error_code": "WKS.1", "error_msg": "no"}))
    with pytest.raises(CloudError) as caught:
        cloud.list_servers()
    assert caught.value.status == status
    assert caught.value.outcome == Outcome.REJECTED
    assert not caught.value.retryable
    assert cloud.calls == 1


def test_a_read_recovers_from_a_dropped_connection(
    fake: FakeCloud, cloud: CloudClient, clock: FakeTime
) -> None:
    fake.on("GET", SERVERS, RESET, Reply(200, {"count": 1, "items": [server_json(1)]}))
    assert [s.id for s in cloud.list_servers()] == ["srv-0001"]
    assert cloud.calls == 2


def test_a_read_recovers_from_a_stalled_answer(fake: FakeCloud, clock: FakeTime) -> None:
    cloud = make_client(fake.url, clock, read_timeout=0.2)
    fake.on("GET", SERVERS, STALL, Reply(200, {"count": 0, "items": []}))
    assert cloud.list_servers() == []
    assert cloud.calls == 2


def test_an_unreachable_cloud_is_retried_then_reported_unsent(clock: FakeTime) -> None:
    cloud = make_client(closed_port_url(), clock, retry_deadline=3.0)
    with pytest.raises(CloudError) as caught:
        cloud.list_servers()
    assert caught.value.outcome == Outcome.NOT_SENT
    assert cloud.calls == len(clock.sleeps) + 1 > 1


# --- error shapes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "code", "message", "request_id"),
    [
        (
            400,
            {"error_code": "WKS.00211102", "error_msg": "invalid"},
            "WKS.00211102",
            "invalid",
            "",
        ),
        (
            401,
            {"error_code": "APIGW.0301", "error_msg": "verify aksk fail", "request_id": "gw-1"},
            "APIGW.0301",
            "verify aksk fail",
            "gw-1",
        ),
        (404, {"error": {"code": "IMG.0027", "message": "no image"}}, "IMG.0027", "no image", ""),
        (
            401,
            {"error": {"code": 401, "message": "wrong password", "title": "Unauthorized"}},
            "401",
            "wrong password",
            "",
        ),
        (400, {"errorCode": "CBC.0150", "errorMsg": "camel"}, "CBC.0150", "camel", ""),
        (
            403,
            {"result": {"detail": {"error_code": "WKS.00081102", "error_msg": "nested deep"}}},
            "WKS.00081102",
            "nested deep",
            "",
        ),
        (404, {"unrelated": "shape"}, "404", "Not Found", ""),
        (502, b"<html>bad gateway</html>", "502", "Bad Gateway", ""),
    ],
    ids=["workspaceapp", "apigw", "ims", "keystone", "camel", "nested", "no-code", "not-json"],
)
def test_every_error_shape_is_understood(
    fake: FakeCloud,
    cloud: CloudClient,
    status: int,
    body: Any,
    code: str,
    message: str,
    request_id: str,
) -> None:
    cloud = make_client(fake.url, FakeTime(), retry_deadline=0.0)
    fake.on("GET", SERVERS, Reply(status, body))
    with pytest.raises(CloudError) as caught:
        cloud.list_servers()
    error = caught.value
    assert (error.status, error.error_code, error.message, error.request_id) == (
        status,
        code,
        message,
        request_id,
    )


@pytest.mark.parametrize(
    "body",
    [
        {"error_code": "WKS.00211102", "error_msg": "invalid"},
        {"errorCode": "CBC.0150", "errorMsg": "camel"},
        {"error": {"code": "IMG.0027", "message": "no image"}},
        {"outer": {"inner": {"error_code": "WKS.1", "error_msg": "deep"}}},
        {"error": {"code": 401, "message": "wrong password", "title": "Unauthorized"}},
    ],
)
def test_error_codes_are_read_as_the_official_sdk_reads_them(body: dict[str, Any]) -> None:
    handler_module = pytest.importorskip("huaweicloudsdkcore.exceptions.exception_handler")
    import requests
    from huaweicloudsdkcore.exceptions import exceptions

    response = requests.Response()
    response.status_code = 400
    response._content = json.dumps(body).encode()
    with pytest.raises(exceptions.ClientRequestException) as sdk:
        handler_module.DefaultExceptionHandler().handle_exception(None, response)
    code, message, _ = wire.error_fields(body)
    assert (code, message) == (str(sdk.value.error_code), sdk.value.error_msg)


def test_the_request_id_header_wins(fake: FakeCloud, cloud: CloudClient) -> None:
    fake.on(
        "GET",
        SERVERS,
        Reply(404, {"error_code": "X", "request_id": "from-body"}, {"X-Request-Id": "from-header"}),
    )
    with pytest.raises(CloudError) as caught:
        cloud.list_servers()
    assert caught.value.request_id == "from-header"


def test_a_success_that_is_not_json_is_an_error(fake: FakeCloud, cloud: CloudClient) -> None:
    fake.on("GET", SERVERS, Reply(200, b"<html>login</html>"))
    with pytest.raises(CloudError, match="not JSON"):
        cloud.list_servers()


# --- parsing -----------------------------------------------------------------------------


def test_a_server_is_parsed_into_its_record(fake: FakeCloud, cloud: CloudClient) -> None:
    raw = server_json(
        7,
        maintain_status=True,
        session_count=3,
        freeze=[{"effect": 1, "scene": "ARREAR"}],
        product_info={"architecture": "x86", "system_disk_size": "80"},
        host_address=[{"addr": "192.168.0.7"}, {"addr": "10.0.0.7"}],
        job_id="j-7",
        job_type="CHANGE_SERVER_IMAGE",
        job_status="SUCCESS",
        job_time="2023-05-09T10:28:38Z",
        create_time="2023-05-09T10:28:38.755Z",
        vm_status=None,
    )
    fake.on("GET", SERVERS, Reply(200, {"count": 1, "items": [raw]}))
    (server,) = cloud.list_servers()
    assert server.task_status == ""
    assert server.vm_status == ""
    assert server.maintain_status is True
    assert server.frozen is True
    assert server.session_count == 3
    assert server.architecture == "x86"
    assert server.system_disk_size == 80
    assert server.ip_addresses == ("192.168.0.7", "10.0.0.7")
    assert server.job_time == datetime(2023, 5, 9, 10, 28, 38, tzinfo=UTC)
    assert server.create_time == datetime(2023, 5, 9, 10, 28, 38, 755000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "image_type", "paid"),
    [
        ({"__imagetype": "gold"}, ImageType.PUBLIC, False),
        ({"__imagetype": "market", "__productcode": "p-1"}, ImageType.MARKETPLACE, True),
        ({"__imagetype": "private"}, ImageType.PRIVATE, False),
        ({"__imagetype": "private", "__account_code": "acc-1"}, ImageType.PRIVATE, True),
        ({"__imagetype": "shared"}, ImageType.SHARED, False),
        ({"__imagetype": "weird"}, ImageType.OTHER, False),
    ],
)
def test_ims_images_are_translated(
    fake: FakeCloud, cloud: CloudClient, raw: dict, image_type: str, paid: bool
) -> None:
    fake.on("GET", "/v2/cloudimages", Reply(200, {"images": [{"id": "i", "name": "n", **raw}]}))
    (image,) = cloud.list_images()
    assert (image.image_type, image.paid) == (image_type, paid)


def test_an_ims_image_keeps_its_os_disk_and_product(fake: FakeCloud, cloud: CloudClient) -> None:
    raw = {
        "id": "i",
        "name": "n",
        "__imagetype": "market",
        "__productcode": "prod-9",
        "__os_type": "Windows",
        "__os_version": "Windows Server 2019",
        "__support_arm": "true",
        "min_disk": "60",
        "created_at": "2018-09-06T14:03:27Z",
    }
    fake.on("GET", "/v2/cloudimages", Reply(200, {"images": [raw]}))
    (image,) = cloud.list_images()
    assert (image.os_type, image.architecture, image.min_disk, image.product_code) == (
        "Windows",
        "arm",
        60,
        "prod-9",
    )
    assert image.created_at == datetime(2018, 9, 6, 14, 3, 27, tzinfo=UTC)


# --- the process-wide client -------------------------------------------------------------


def _settings_for(url: str) -> dict[str, Any]:
    return {
        "AK": AK,
        "SK": SK,
        "SECURITY_TOKEN": "",
        "PROJECT_ID": PROJECT,
        "REGION": "cn-north-4",
        "WORKSPACEAPP_ENDPOINT": url,
        "WORKSPACE_ENDPOINT": url,
        "IMS_ENDPOINT": url,
        "IAM_ENDPOINT": url,
        "IAM_USER": "",
        "IAM_PASSWORD": "",
        "IAM_DOMAIN": "",
        "CONNECT_TIMEOUT": 1.0,
        "READ_TIMEOUT": 1.0,
        "RETRY_DEADLINE": 1.0,
        "VERIFY_TLS": True,
    }


def test_the_shared_client_is_reused_until_settings_change(settings: Any) -> None:
    settings.HUAWEICLOUD = _settings_for("http://127.0.0.1:9")
    first = get_client()
    assert get_client() is first
    settings.HUAWEICLOUD = _settings_for("http://127.0.0.1:10")
    second = get_client()
    assert second is not first
    assert second.config.workspaceapp_endpoint == "http://127.0.0.1:10"


def test_reachable_tells_a_listening_endpoint_from_a_closed_one(
    settings: Any, fake: FakeCloud
) -> None:
    settings.HUAWEICLOUD = _settings_for(fake.url)
    assert reachable() is True
    settings.HUAWEICLOUD = _settings_for(closed_port_url())
    assert reachable() is False


# --- secrets -----------------------------------------------------------------------------


def test_the_secret_key_never_shows_in_reprs(cloud: CloudClient) -> None:
    assert SK not in repr(cloud)
    assert SK not in repr(cloud.config)


def test_an_echoed_secret_is_scrubbed_from_the_error(fake: FakeCloud, cloud: CloudClient) -> None:
    fake.on("GET", SERVERS, Reply(400, {"error_code": "X", "error_msg": f"bad key {SK}"}))
    with pytest.raises(CloudError) as caught:
        cloud.list_servers()
    assert SK not in str(caught.value)
    assert SK not in repr(caught.value)


def test_logs_never_carry_credentials(
    fake: FakeCloud, cloud: CloudClient, caplog: pytest.LogCaptureFixture
) -> None:
    fake.on("GET", SERVERS, Reply(503), Reply(200, {"count": 0}))
    with caplog.at_level(logging.DEBUG):
        cloud.list_servers()
    signature = fake.seen(SERVERS)[0].headers["authorization"].rsplit("=", 1)[1]
    assert caplog.records  # the retry was logged
    assert SK not in caplog.text
    assert signature not in caplog.text
