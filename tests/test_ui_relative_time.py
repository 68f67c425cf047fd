"""Relative times: the wording people read, the exact instant and zone machines and hovers read."""

from datetime import UTC, datetime, timedelta

import pytest
from django.template import Context, Template
from django.utils import timezone

from dashboard.templatetags.relative_time import describe, render

NOW = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ago", "words"),
    [
        (timedelta(seconds=0), "just now"),
        (timedelta(seconds=30), "just now"),
        (timedelta(seconds=50), "1 min ago"),
        (timedelta(minutes=3, seconds=40), "3 min ago"),
        (timedelta(minutes=59), "59 min ago"),
        (timedelta(hours=2, minutes=5), "2 h ago"),
        (timedelta(hours=23, minutes=59), "23 h ago"),
        (timedelta(hours=26), "yesterday"),
        (timedelta(days=2, hours=1), "2 days ago"),
        (timedelta(days=6), "6 days ago"),
        (timedelta(days=40), "22 Oct 2026"),
        (-timedelta(seconds=20), "just now"),
        (-timedelta(minutes=5), "in 5 min"),
        (-timedelta(hours=3), "in 3 h"),
        (-timedelta(days=2), "in 2 days"),
    ],
)
def test_wording(ago, words):
    assert describe(NOW - ago, NOW) == words


def test_days_follow_the_display_zone_calendar():
    # At 08:00 in Tokyo (23:00 UTC the day before), 40 h ago is two calendar days back there
    # although in UTC it was only yesterday.
    with timezone.override("Asia/Tokyo"):
        now = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.get_current_timezone())
        assert describe(now - timedelta(hours=20), now) == "20 h ago"
        assert describe(now - timedelta(hours=30), now) == "yesterday"
        assert describe(now - timedelta(hours=40), now) == "2 days ago"
    utc_now = now.astimezone(UTC)
    with timezone.override("UTC"):
        assert describe(utc_now - timedelta(hours=40), utc_now) == "yesterday"


def test_time_element_carries_the_exact_instant_and_zone():
    moment = NOW - timedelta(minutes=3)
    with timezone.override("Europe/Berlin"):
        html = render(moment, now=NOW)
    assert html == (
        '<time datetime="2026-12-01T10:57:00+01:00" title="2026-12-01 10:57:00 CET">'
        "3 min ago</time>"
    )


def test_nothing_for_a_missing_time():
    assert render(None) == ""
    assert render("2026-12-01") == ""


def test_the_filter_is_available_in_every_template_and_not_escaped_twice():
    moment = timezone.now() - timedelta(hours=5)
    out = Template("{{ t|relative_time }}|{{ missing|relative_time|default:'—' }}").render(
        Context({"t": moment, "missing": None})
    )
    assert out.startswith("<time datetime=")
    assert ">5 h ago</time>|—" in out
