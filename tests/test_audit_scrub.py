"""Scrubbing an audit event's details: the same result however the work is saved.

An event of a sent chunk carries fifty server ids and fifty job ids. scrub() skips its
patterns for text none of them could match, and record() reads the process's secret values
once per event instead of once per value: neither may let a secret through.
"""

import random
import re

import pytest

from dashboard import audit, logscrub
from dashboard.models import Rollout

SECRET_SK = "Zk3mYw9QpLr7Tx2Vb8Nc4Hd6Jf1Gs5Ka0WeRtYu"
PIECES = [
    "srv-0a1b2c",
    "job-77",
    "token",
    "Token",
    "password",
    "sk",
    "Authorization",
    "Cookie",
    "Bearer",
    "basic",
    "SDK-HMAC-SHA256",
    "Access",
    "eyJhbGciOi",
    "eyJzdWIiOi",
    ".",
    "=",
    ":",
    "=>",
    "://",
    "@",
    " ",
    "\t",
    "\n",
    "\u00a0",
    "\u2003",
    '"',
    "'",
    ",",
    ";",
    "&",
    "abcdef123456",
    "ABCDEFGHIJKLMNOPQRST",
    SECRET_SK,
    "user",
    "https",
]


def random_texts(count: int) -> list[str]:
    draw = random.Random(20261202)
    return ["".join(draw.choices(PIECES, k=draw.randint(1, 9))) for _ in range(count)]


@pytest.fixture
def sk_is_a_secret(settings):
    settings.HUAWEICLOUD = {**settings.HUAWEICLOUD, "SK": SECRET_SK}


def test_text_that_skips_the_patterns_is_scrubbed_as_if_every_pattern_ran(
    sk_is_a_secret, monkeypatch
) -> None:
    texts = [
        *random_texts(5000),
        "Authorization: SDK-HMAC-SHA256 Access=ABCDEFGHIJKLMNOPQRST, Signature=abc",
        "Bearer\u00a0abcdef123456",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc",
        f"srv-{SECRET_SK}",
        "https://user:pw@example.org/hook",
    ]
    skipped = [t for t in texts if logscrub._ANY_PATTERN.search(t) is None]
    assert len(skipped) > 100  # the comparison covers text that skips the patterns
    fast = [logscrub.scrub(text) for text in texts]
    monkeypatch.setattr(logscrub, "_ANY_PATTERN", re.compile(""))  # every pattern runs
    assert fast == [logscrub.scrub(text) for text in texts]


def test_an_id_holding_a_secret_value_is_still_scrubbed(sk_is_a_secret) -> None:
    assert logscrub.scrub(f"srv-{SECRET_SK}-1") == "srv-[redacted]-1"


@pytest.mark.django_db
def test_an_events_ids_are_scrubbed_with_the_secrets_read_once(sk_is_a_secret, monkeypatch):
    reads = []
    known = logscrub.known_secrets
    for module in (logscrub, audit):  # scrub's own reads and the event's
        monkeypatch.setattr(module, "known_secrets", lambda: reads.append(1) or known())
    monkeypatch.setattr(audit.log, "disabled", True)  # its log line is scrubbed on its own
    rollout = Rollout.objects.create(created_by="otto")
    ids = [f"srv-{n:04d}" for n in range(49)] + [f"srv-{SECRET_SK}"]

    event = audit.record_for_rollout(
        rollout, "api.batch_change_image.intent", server_ids=ids, note=f"sk={SECRET_SK}"
    )

    event.refresh_from_db()
    assert len(reads) == 1
    assert event.details["server_ids"] == [*ids[:49], "srv-[redacted]"]
    assert event.details["note"] == "sk=[redacted]"
    assert SECRET_SK not in str(event.details)
