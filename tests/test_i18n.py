"""Languages: Accept-Language, the switcher that remembers a choice, the time zone shown."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone, translation

from dashboard import notify, translations
from dashboard.templatetags.relative_time import describe

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


# --- The catalogs ---------------------------------------------------------------------------


@pytest.fixture
def compiled(settings):
    """The .mo files built from locale/ as `make test` builds them, read afresh by Django."""
    translations.compile_all()
    settings.LOCALE_PATHS = list(settings.LOCALE_PATHS)  # the signal drops Django's cached catalogs
    return settings


def test_every_message_of_the_code_is_translated_in_every_catalog():
    messages = translations.extract()
    assert len(messages) > 100  # the scan found the templates and the code
    for path in translations.catalog_paths():
        assert translations.problems(path, messages) == []


def _write_po(path: Path, entries: str) -> Path:
    path.parent.mkdir(parents=True)
    header = (
        'msgid ""\nmsgstr ""\n"Language: zh_Hans\\n"\n"Plural-Forms: nplurals=1; plural=0;\\n"\n\n'
    )
    path.write_text(header + entries, encoding="utf-8")
    return path


def test_a_message_missing_untranslated_fuzzy_or_misplaced_is_reported(tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "dashboard").mkdir()
    (tmp_path / "templates" / "page.html").write_text(
        '{% load i18n %}<h1>{% translate "Servers" %}</h1>\n'
        "  <p>{% blocktranslate count n=k %}{{ n }} server{% plural %}{{ n }} servers"
        "{% endblocktranslate %}</p>\n"
        '<p>{% translate "Brand new words" %}</p>'
    )
    (tmp_path / "dashboard" / "words.py").write_text(
        'from django.utils.translation import gettext\nA = gettext("Half done")\n'
        'B = gettext("Wave %(n)s")\nC = gettext("%(n)s%% done")\n'
    )
    po = _write_po(
        tmp_path / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po",
        'msgid "Servers"\nmsgstr "服务器"\n\n'
        'msgid "%(n)s server"\nmsgid_plural "%(n)s servers"\nmsgstr[0] "%(n)s 台服务器"\n\n'
        '#, fuzzy\nmsgid "Half done"\nmsgstr "一半"\n\n'
        'msgid "Wave %(n)s"\nmsgstr "第 %(m)s 批"\n\n'
        'msgid "%(n)s%% done"\nmsgstr "已完成 %(n)s%"\n',
    )
    found = translations.problems(po, translations.extract(tmp_path))
    assert found == [
        "dashboard/words.py:4: a lone % in the translation (write %%): '%(n)s%% done'",
        "templates/page.html:3: not in the catalog: 'Brand new words'",
        "dashboard/words.py:2: fuzzy in the catalog: 'Half done'",
        "dashboard/words.py:3: placeholders differ: 'Wave %(n)s'",
    ]


def test_update_adds_missing_messages_untranslated_and_drops_unused_ones(tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "page.html").write_text('{% load i18n %}{% translate "Images" %}')
    po = _write_po(
        tmp_path / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po",
        'msgid "Gone"\nmsgstr "没了"\n',
    )
    messages = translations.extract(tmp_path)
    assert translations.update(po, messages) == (1, 1)
    assert translations.problems(po, messages) == ["templates/page.html:1: untranslated: 'Images'"]


def test_a_chinese_browser_gets_the_pages_in_chinese(compiled, viewer_client):
    html = viewer_client.get("/", headers={"Accept-Language": "zh-CN"}).content.decode()
    assert ">概览</a>" in html and ">Overview</a>" not in html
    assert "时区" in html


def test_plurals_come_from_the_catalog_not_from_string_arithmetic(compiled):
    now = timezone.now()
    with translation.override("zh-hans"):
        assert describe(now - timedelta(minutes=5), now) == "5 分钟前"
        assert describe(now - timedelta(days=3), now) == "3 天前"


def test_notification_emails_speak_the_dashboards_own_language(compiled):
    payload = {
        "event": "halted",
        "rollout_id": 7,
        "target_image": {"id": "img-1", "name": "WinSrv2022"},
        "state": "halted",
        "counts": {"succeeded": 3, "failed": 2},
        "total": 5,
        "created_by": "otto",
        "reason": "",
        "started_at": None,
        "finished_at": None,
        "url": "https://dash.example.org/rollouts/7/",
    }
    assert notify.email_subject(payload) == (
        "Rollout #7 halted: the error budget was crossed (WinSrv2022)"
    )
    compiled.LANGUAGE_CODE = "zh-hans"
    subject = notify.email_subject(payload)
    assert subject.startswith("发布 #7 已中止") and "WinSrv2022" in subject
    assert "成功 3、失败 2" in notify.email_body(payload)  # the Chinese list separator


# --- Texts stored as worded when they were made, shown in the reader's language --------------


def test_a_plans_stored_reasons_read_in_the_readers_language(compiled):
    from dashboard import compat

    with translation.override("en"):
        stored = "; ".join(
            [
                compat.reason(compat.SERVER_FROZEN).message,
                compat.reason(compat.SERVER_BUSY, "(waiting)").message,
                "A reason from elsewhere.",
            ]
        )
    with translation.override("zh-hans"):
        frozen, busy = (str(compat.MESSAGES[c]) for c in (compat.SERVER_FROZEN, compat.SERVER_BUSY))
        assert compat.localized(stored) == f"{frozen}; {busy} (waiting); A reason from elsewhere."
        worded_in_chinese = compat.localized(stored)
    with translation.override("en"):
        assert compat.localized(worded_in_chinese) == stored


def test_a_halted_rollout_page_words_its_stored_reason_for_the_reader(compiled, viewer_client):
    from dashboard.models import RolloutEvent
    from tests.api_helpers import running_rollout

    rollout = running_rollout(state="halted")
    rollout.failure_budget = 2
    with translation.override("en"):
        from dashboard.rollouts.engine import _budget_crossed

        rollout.halted_reason = _budget_crossed(4, 2)
    rollout.save()
    rollout.refresh_from_db()
    RolloutEvent.objects.create(
        rollout=rollout,
        action="halt",
        from_state="running",
        to_state="halted",
        actor="worker",
        reason=rollout.halted_reason,
    )
    zh = {"Accept-Language": "zh-CN"}

    page = viewer_client.get(f"/rollouts/{rollout.pk}/", headers=zh).content.decode()

    with translation.override("zh-hans"):
        assert page.count(_budget_crossed(4, 2)) == 2  # the banner and the timeline
    assert "crossed the error budget" not in page


def test_a_plan_of_each_groups_image_is_named_in_the_readers_language(compiled, viewer_client):
    from dashboard.models import Rollout

    plan = Rollout.objects.create(created_by="otto", target_image_id="", kind=Rollout.Kind.PLAN)
    Rollout.objects.filter(pk=plan.pk).update(target_image_name="each group's image")
    revert = Rollout.objects.create(created_by="otto", kind=Rollout.Kind.REVERT)
    Rollout.objects.filter(pk=revert.pk).update(target_image_name="previous images")

    page = viewer_client.get("/rollouts/", headers={"Accept-Language": "zh-CN"}).content
    with translation.override("zh-hans"):
        assert translation.gettext("each group's image").encode() in page
        assert translation.gettext("previous images").encode() in page
    assert b"each group's image" not in page and b"previous images" not in page


def test_a_rollouts_timeline_words_its_stored_reasons_for_the_reader(compiled, viewer_client):
    from dashboard.models import RolloutWave
    from dashboard.rollouts import lifecycle
    from tests.api_helpers import running_rollout

    rollout = running_rollout()
    RolloutWave.objects.create(rollout=rollout, number=1, size=1, state="running")
    signoff = "The canary wave is done; the next waves wait for sign-off."
    with translation.override("en"):  # as the worker stores them
        lifecycle.transition(rollout, "hold_for_signoff", reason=translation.gettext(signoff))
        lifecycle.transition(rollout, "resume", by="otto")  # its wave: "rollout resume"
        rollout.waves.update(state="running")  # sent again
        lifecycle.transition(rollout, "pause", by="otto")
        lifecycle.transition(rollout, "cancel", by="otto")
    zh = {"Accept-Language": "zh-CN"}

    page = viewer_client.get(f"/rollouts/{rollout.pk}/", headers=zh).content.decode()

    for english in (signoff, "rollout pause", "rollout resume", "rollout cancel"):
        assert english not in page
    with translation.override("zh-hans"):
        assert translation.gettext(signoff) in page
        for said in ("The rollout was paused.", "The rollout was resumed."):
            assert translation.gettext(said) in page
        assert translation.gettext("The rollout was cancelled.") in page


@pytest.mark.parametrize(
    ("reason", "arguments"),
    [
        ("The plan was stale.", None),
        ("Cancelled on the plan page.", None),
        ("Not confirmed within %(s)d seconds.", {"s": 900}),
    ],
)
def test_a_discarded_plan_words_why_for_the_reader(compiled, viewer_client, reason, arguments):
    from dashboard.models import Rollout
    from dashboard.rollouts import lifecycle

    plan = Rollout.objects.create(created_by="otto", target_image_id="img-new")
    with translation.override("en"):
        stored = translation.gettext(reason) % arguments if arguments else reason
        lifecycle.transition(plan, "discard", by="otto", reason=stored)

    page = viewer_client.get(f"/rollouts/new/{plan.pk}/", headers={"Accept-Language": "zh-CN"})

    html = page.content.decode()
    assert page.status_code == 200 and stored not in html
    with translation.override("zh-hans"):
        said = translation.gettext(reason) % arguments if arguments else translation.gettext(reason)
    assert said in html
