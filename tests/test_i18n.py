"""Languages: Accept-Language, the switcher that remembers a choice, the time zone shown."""

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db


def test_the_page_follows_accept_language(viewer_client):
    html = viewer_client.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).content.decode()
    assert '<html lang="zh-hans">' in html


def test_an_unknown_language_falls_back_to_english(viewer_client):
    html = viewer_client.get("/", headers={"Accept-Language": "tlh"}).content.decode()
    assert '<html lang="en">' in html


def test_the_switcher_offers_the_other_language(viewer_client):
    html = viewer_client.get("/").content.decode()
    assert 'name="language" value="zh-hans"' in html
    assert 'name="language" value="en"' not in html


def test_the_switcher_remembers_the_choice_over_accept_language(viewer_client):
    answer = viewer_client.post("/language/", {"language": "zh-hans", "next": "/servers/"})
    assert answer.status_code == 302 and answer["Location"] == "/servers/"
    assert viewer_client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"
    html = viewer_client.get("/", headers={"Accept-Language": "en"}).content.decode()
    assert '<html lang="zh-hans">' in html


def test_the_switcher_refuses_a_language_it_does_not_offer(viewer_client):
    answer = viewer_client.post("/language/", {"language": "fr", "next": "/"})
    assert answer.status_code == 400
    assert settings.LANGUAGE_COOKIE_NAME not in viewer_client.cookies


def test_the_switcher_never_sends_the_browser_off_site(viewer_client):
    answer = viewer_client.post(
        "/language/", {"language": "zh-hans", "next": "https://evil.example/"}
    )
    assert answer.status_code == 302 and answer["Location"] == "/"


def test_the_switcher_takes_posts_only(viewer_client):
    assert viewer_client.get("/language/?language=zh-hans").status_code == 405


def test_the_configured_time_zone_is_shown(viewer_client, settings):
    settings.TIME_ZONE = "Asia/Shanghai"
    html = viewer_client.get("/").content.decode()
    assert "Times in Asia/Shanghai" in html
