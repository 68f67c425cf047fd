"""The relative-time filter's HTML, pinned byte for byte across zones, seasons and languages,
so a cheaper way of building it cannot change what the pages show."""

from datetime import UTC, datetime, timedelta

import pytest
from django.template import Context, Template
from django.utils import timezone, translation

from dashboard.templatetags.relative_time import render

NOW = datetime(2026, 7, 1, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "language", "ago", "html"),
    [
        (
            "UTC",
            "en",
            timedelta(minutes=3),
            '<time datetime="2026-07-01T09:57:00+00:00" title="2026-07-01 09:57:00 UTC">'
            "3 min ago</time>",
        ),
        (
            "Europe/Berlin",
            "en",
            timedelta(hours=2),
            '<time datetime="2026-07-01T10:00:00+02:00" title="2026-07-01 10:00:00 CEST">'
            "2 h ago</time>",
        ),
        (
            "America/New_York",
            "en",
            timedelta(days=200),
            '<time datetime="2025-12-13T05:00:00-05:00" title="2025-12-13 05:00:00 EST">'
            "13 Dec 2025</time>",
        ),
        (
            "Asia/Kolkata",
            "en",
            -timedelta(minutes=30),
            '<time datetime="2026-07-01T16:00:00+05:30" title="2026-07-01 16:00:00 IST">'
            "in 30 min</time>",
        ),
        (
            "Asia/Shanghai",
            "zh-hans",
            timedelta(days=40),
            '<time datetime="2026-05-22T18:00:00+08:00" title="2026-05-22 18:00:00 CST">'
            "22 五月 2026</time>",
        ),
    ],
)
def test_the_html_is_exactly_as_before(zone, language, ago, html):
    with timezone.override(zone), translation.override(language):
        assert render(NOW - ago, now=NOW) == html


def test_a_naive_time_is_read_in_the_current_zone():
    with timezone.override("Europe/Berlin"):
        html = render(datetime(2026, 7, 1, 9, 59, 50), now=NOW)
    assert html == (
        '<time datetime="2026-07-01T09:59:50+02:00" title="2026-07-01 09:59:50 CEST">2 h ago</time>'
    )


def test_the_time_words_are_escaped_once_in_a_page():
    moment = timezone.now() - timedelta(minutes=10)
    out = Template("<p>{{ t|relative_time }}</p>").render(Context({"t": moment}))
    assert out.startswith('<p><time datetime="') and out.endswith(">10 min ago</time></p>")
