"""Times on a page read one way, 24-hour, in both languages: no "1:58 p.m." beside "14:28"."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from dashboard.models import Rollout
from tests.test_rollout_pages_paging import planned

pytestmark = pytest.mark.django_db

TWELVE_HOUR = re.compile(r"\b[ap]\.m\.|\b[AP]M\b|上午|下午")


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_plan_page_shows_every_time_in_24_hours(operator_client, language):
    plan = planned(8)
    at = timezone.localtime().replace(hour=13, minute=58, second=0, microsecond=0)
    Rollout.objects.filter(pk=plan.pk).update(created_at=at, scheduled_at=at + timedelta(days=1))
    operator_client.cookies["django_language"] = language
    html = operator_client.get(f"/rollouts/new/{plan.pk}/").content.decode()
    main = html[html.index("<main") :]
    assert not TWELVE_HOUR.search(main), TWELVE_HOUR.search(main)
    assert f"{at:%Y-%m-%d} 13:58" in main  # planned at
    assert f"{at + timedelta(days=1):%Y-%m-%d} 13:58" in main  # starts at
