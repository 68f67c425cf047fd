"""Hostile input: redirects to elsewhere, NUL characters, numbers too big for a column, and the
headers every response carries. Run on SQLite and PostgreSQL (NUL and integer overflow are
where the two differ)."""

import pytest
from django.urls import reverse
from django.utils import timezone

from dashboard import inventory
from dashboard.models import Rollout, Server, ServerGroup, SyncRun
from tests.conftest import PROXY_CIDR

pytestmark = pytest.mark.django_db

SYNC = "/inventory/sync/"
HTMX = {"HX-Request": "true"}


# --- Where the sync button sends the browser ------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "https://evil.example/",
        "http://testserver.evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "/\\/evil.example",
        " //evil.example",
        "javascript:alert(1)",
        "foo",  # once a NoReverseMatch: 500
        "servers",
        "",
    ],
)
def test_the_sync_button_redirects_only_to_this_sites_paths(operator_client, target):
    response = operator_client.post(SYNC, {"next": target})
    assert response.status_code == 302
    assert response["Location"] == "/"


@pytest.mark.parametrize("target", ["/servers/?q=fin&sort=-name", "/groups/", "/"])
def test_the_sync_button_returns_to_the_page_it_was_pressed_on(operator_client, target):
    response = operator_client.post(SYNC, {"next": target})
    assert response["Location"] == target


# --- The Refresh button through htmx -----------------------------------------------------------


@pytest.mark.parametrize("page", ["/", "/groups/", "/servers/", "/images/"])
def test_refresh_works_through_htmx_from_every_page(operator_client, page):
    body = operator_client.get(page).content.decode()
    assert f'hx-post="{SYNC}"' in body
    assert 'hx-target="#freshness"' in body and 'hx-swap="outerHTML"' in body

    response = operator_client.post(
        SYNC,
        {"next": page},
        headers={**HTMX, "HX-Current-URL": f"http://testserver{page}"},
    )
    # The badge itself, swapped in place: the refresh runs and the badge polls until it ends.
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    fragment = response.content.decode()
    assert fragment.lstrip().startswith('<span id="freshness"')
    assert "refreshing" in fragment
    assert f'hx-get="{reverse("sync-status")}"' in fragment
    assert SyncRun.objects.filter(state=SyncRun.State.RUNNING).exists()


def test_the_polled_badge_stops_and_offers_a_reload_when_the_sync_is_done(operator_client):
    run, _ = inventory.request_sync("manual", "otto")
    running = operator_client.get(reverse("sync-status"), headers=HTMX)
    assert running.status_code == 200
    assert "refreshing" in running.content.decode()
    SyncRun.objects.filter(pk=run.pk).update(
        state=SyncRun.State.SUCCEEDED, finished_at=timezone.now()
    )
    done = operator_client.get(reverse("sync-status"), headers=HTMX)
    assert done.status_code == 286  # htmx swaps it in and stops polling
    body = done.content.decode()
    assert "new data" in body and "hx-get" not in body


def test_the_swapped_badge_sends_its_next_press_back_to_the_page_it_sits_on(operator_client):
    SyncRun.objects.create(state=SyncRun.State.SUCCEEDED, finished_at=timezone.now())
    response = operator_client.get(
        reverse("sync-status"),
        headers={**HTMX, "HX-Current-URL": "http://testserver/servers/?q=fin"},
    )
    assert 'name="next" value="/servers/?q=fin"' in response.content.decode()


# --- NUL characters -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/servers/%00/",
        "/servers/?q=%00",
        "/servers/?status=%00",
        "/rollouts/?state=%00",
        "/rollouts/?user=a%00b",
        "/audit/?actor=%00",
        "/audit/?action=x%00",
        "/groups/?%00=1",
    ],
)
def test_a_nul_anywhere_in_the_address_is_a_400_with_a_message(viewer_client, url):
    response = viewer_client.get(url)
    assert response.status_code == 400
    assert b"NUL character" in response.content


def test_a_nul_in_a_form_field_is_a_400_with_a_message(operator_client):
    response = operator_client.post("/rollouts/new/plan/", {"reason": "CHG\x00-1", "server": "x"})
    assert response.status_code == 400
    assert b"a form field contains a NUL character" in response.content


def test_a_nul_in_a_claimed_name_is_refused_without_a_500(client, settings):
    settings.TRUSTED_PROXY_CIDRS = [PROXY_CIDR]
    response = client.get("/", REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_USER="ev\x00e")
    assert response.status_code == 403


def test_a_nul_in_the_email_header_is_refused(sso_client):
    client = sso_client("ada", ["dashboard-viewers"], email="a\x00@example.org")
    assert client.get("/").status_code == 403


# --- Numbers too big for their column -------------------------------------------------------


@pytest.fixture
def plannable(sim_settings, cloud_client) -> dict:
    """A synced fleet and a valid plan form for one of its groups."""
    inventory.sync_now(client=cloud_client)
    server = Server.objects.filter(drift=True, frozen=False, gone=False).first()
    group = ServerGroup.objects.get(pk=server.group_id)
    return {
        "server": [server.id],
        "target_image": group.image_id,
        "reason": "CHG-1 patches",
    }


def test_the_plan_form_is_valid_without_the_oversized_number(operator_client, plannable):
    response = operator_client.post("/rollouts/new/plan/", {**plannable, "start_below_sessions": 5})
    assert response.status_code == 302, response.content[:1000]


@pytest.mark.parametrize("value", ["100000000000000000000", "2147483648", "1e20", "-1"])
def test_an_oversized_session_threshold_is_a_400_with_a_message(operator_client, plannable, value):
    response = operator_client.post(
        "/rollouts/new/plan/", {**plannable, "start_below_sessions": value}
    )
    assert response.status_code == 400
    assert not Rollout.objects.exists()
    assert b"Ensure this value" in response.content or b"Enter a whole number" in response.content


@pytest.mark.parametrize(
    "field",
    ["soak_minutes", "session_wait_minutes", "logoff_delay_minutes", "start_below_sessions"],
)
def test_no_integer_field_lets_a_huge_number_reach_the_database(operator_client, plannable, field):
    response = operator_client.post("/rollouts/new/plan/", {**plannable, field: "9" * 30})
    assert response.status_code == 400


@pytest.mark.parametrize("field", ["canary", "wave_size", "failure_budget"])
def test_huge_wave_amounts_never_end_in_a_500(operator_client, plannable, field):
    response = operator_client.post("/rollouts/new/plan/", {**plannable, field: "99999999"})
    assert response.status_code in {302, 400}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("101%", "A percentage goes from 0% to 100% of the servers."),
        ("-5", "Give a whole number of servers, 0 or more."),
        ("2.5", "Give a whole number of servers, 0 or more."),
        ("five", "Give a number of servers (5) or a percentage (10%)."),
    ],
)
def test_a_wrong_amount_is_named_for_what_is_wrong_with_it(
    operator_client, plannable, value, message
):
    response = operator_client.post(
        "/rollouts/new/plan/", {**plannable, "preset": "custom", "failure_budget": value}
    )
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Rollout.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "/audit/?rollout=100000000000000000000",
        "/servers/?page=100000000000000000000",
        "/audit/?page=99999999999999999999999",
        "/rollouts/?page=-99999999999999999999",
        "/rollouts/99999999999999999999/",
        "/rollouts/99999999999999999999/export.csv",
    ],
)
def test_huge_numbers_in_addresses_are_not_a_500(viewer_client, url):
    response = viewer_client.get(url)
    assert response.status_code < 500


# "²" is a digit to str.isdigit() and no number to int(): once a 500 wherever an id was read.
SUPERSCRIPT = "\u00b2"


@pytest.fixture
def a_rollout() -> Rollout:
    return Rollout.objects.create(created_by="otto", reason="r", state="running")


@pytest.mark.parametrize(
    "query",
    ["after", "before", "wave"],
)
def test_superscript_digits_on_the_rollout_page_are_not_a_500(viewer_client, a_rollout, query):
    response = viewer_client.get(f"/rollouts/{a_rollout.pk}/", {query: SUPERSCRIPT})
    assert response.status_code < 500


@pytest.mark.parametrize("query", ["event", "rows", "matched"])
def test_superscript_digits_in_a_poll_are_not_a_500(viewer_client, a_rollout, query):
    response = viewer_client.get(f"/rollouts/{a_rollout.pk}/poll/", {query: SUPERSCRIPT})
    assert response.status_code < 500


def test_superscript_digits_in_the_selection_are_not_a_500(operator_client):
    assert operator_client.get("/rollouts/new/", {"selection": SUPERSCRIPT}).status_code < 500
    for field in ("retry_of", "selection"):
        response = operator_client.post(
            "/rollouts/new/plan/", {field: SUPERSCRIPT, "target_image": "x", "reason": "r"}
        )
        assert response.status_code < 500, field
    response = operator_client.post(
        "/rollouts/selection/", {"matching": SUPERSCRIPT, "clear": "1"}, headers=HTMX
    )
    assert response.status_code < 500


# --- Headers on every response ------------------------------------------------------------


def test_refusal_pages_carry_the_security_headers(client, settings, sso_client):
    settings.TRUSTED_PROXY_CIDRS = [PROXY_CIDR]
    spoofed = client.get("/", REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_USER="x")
    csrf = sso_client("otto", ["dashboard-operators"], enforce_csrf_checks=True).post(SYNC)
    anonymous = client.get("/")
    bad = client.get("/servers/%00/")
    viewer = sso_client("vera", ["dashboard-viewers"])
    missing = viewer.get("/no/such/page/")
    for response in (spoofed, csrf, anonymous, bad, missing):
        assert response.status_code in {400, 403, 404}
        assert response["X-Frame-Options"] == "DENY", response.status_code
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"
        assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
        assert response["Cache-Control"] == "no-store"


def test_pages_and_downloads_are_not_stored_but_static_files_are(viewer_client):
    assert viewer_client.get("/")["Cache-Control"] == "no-store"
    assert viewer_client.get("/audit/export.csv")["Cache-Control"] == "no-store"
    rollout = Rollout.objects.create(created_by="otto")
    for fmt in ("csv", "json"):
        export = viewer_client.get(f"/rollouts/{rollout.pk}/export.{fmt}")
        assert export.status_code == 200
        assert export["Content-Disposition"].startswith("attachment")
        assert export["Cache-Control"] == "no-store"
    static = viewer_client.get("/static/app.css")
    assert "no-store" not in static.get("Cache-Control", "")


# --- Text that reads other than it is -----------------------------------------------------
RLO = "\u202e"  # right-to-left override: "CHG-1234" typed backwards reads forwards


def test_a_reason_with_a_direction_override_is_refused_with_a_message(operator_client, plannable):
    response = operator_client.post(
        "/rollouts/new/plan/", {**plannable, "reason": f"CHG-{RLO}4321"}
    )
    assert response.status_code == 400
    assert "invisible direction characters" in response.content.decode()
    assert not Rollout.objects.exists()


def test_a_rejection_with_a_direction_isolate_is_refused(approver_client):
    rollout = Rollout.objects.create(created_by="otto", reason="r", state="awaiting_approval")
    response = approver_client.post(
        f"/rollouts/{rollout.pk}/reject/", {"reason": "no \u2067way\u2069"}, follow=True
    )
    assert response.status_code == 200
    assert "invisible direction characters" in response.content.decode()
    assert Rollout.objects.get(pk=rollout.pk).state == "awaiting_approval"
