"""The compatibility rules: a table of cases, one per rule, plus properties."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashboard import compat
from dashboard.compat import ImageFacts, ServerFacts, verdict

CURRENT = ImageFacts(id="img-old", os_type="Windows", architecture="x86", min_disk=40)
TARGET = ImageFacts(id="img-new", os_type="Windows", architecture="x86", min_disk=40)
SERVER = ServerFacts(
    id="s1",
    image_id="img-old",
    os_type="Windows",
    architecture="x86",
    system_disk_size=80,
    maintain_status=True,
)
PAID = dict(paid=True, image_type="marketplace", product_code="prod-A")


def replace(obj, **changes):
    from dataclasses import replace as dc_replace

    return dc_replace(obj, **changes)


CASES = [
    # (description, server, target, current, in_other_rollout, action, code)
    ("equivalent free images", SERVER, TARGET, CURRENT, False, "change", None),
    (
        "already on the target",
        replace(SERVER, image_id="img-new"),
        TARGET,
        TARGET,
        False,
        "skip",
        compat.SAME_IMAGE,
    ),
    (
        "target of another OS",
        SERVER,
        replace(TARGET, os_type="Linux"),
        CURRENT,
        False,
        "blocked",
        compat.OS_MISMATCH,
    ),
    (
        "Linux servers are not supported",
        replace(SERVER, os_type="Linux"),
        replace(TARGET, os_type="Linux"),
        replace(CURRENT, os_type="Linux"),
        False,
        "blocked",
        compat.OS_UNSUPPORTED,
    ),
    (
        "another architecture",
        SERVER,
        replace(TARGET, architecture="arm"),
        CURRENT,
        False,
        "blocked",
        compat.ARCH_MISMATCH,
    ),
    (
        "free to paid",
        SERVER,
        replace(TARGET, **PAID),
        CURRENT,
        False,
        "blocked",
        compat.FREE_PAID_MISMATCH,
    ),
    (
        "paid to free",
        SERVER,
        TARGET,
        replace(CURRENT, **PAID),
        False,
        "blocked",
        compat.FREE_PAID_MISMATCH,
    ),
    (
        "paid to paid, same product",
        SERVER,
        replace(TARGET, **PAID),
        replace(CURRENT, **PAID),
        False,
        "change",
        None,
    ),
    (
        "paid to paid, another product or price",
        SERVER,
        replace(TARGET, **{**PAID, "product_code": "prod-B"}),
        replace(CURRENT, **PAID),
        False,
        "blocked",
        compat.PAID_PRODUCT_MISMATCH,
    ),
    (
        "marketplace target without product id",
        SERVER,
        replace(TARGET, image_type="marketplace", product_code=""),
        CURRENT,
        False,
        "blocked",
        compat.MARKET_PRODUCT_MISSING,
    ),
    (
        "image not active",
        SERVER,
        replace(TARGET, status="queued"),
        CURRENT,
        False,
        "blocked",
        compat.IMAGE_NOT_ACTIVE,
    ),
    (
        "min disk above the server's disk",
        SERVER,
        replace(TARGET, min_disk=100),
        CURRENT,
        False,
        "blocked",
        compat.DISK_TOO_SMALL,
    ),
    (
        "frozen server",
        replace(SERVER, frozen=True),
        TARGET,
        CURRENT,
        False,
        "blocked",
        compat.SERVER_FROZEN,
    ),
    (
        "gone server",
        replace(SERVER, gone=True),
        TARGET,
        CURRENT,
        False,
        "blocked",
        compat.SERVER_GONE,
    ),
    (
        "job waiting",
        replace(SERVER, job_status="WAITING"),
        TARGET,
        CURRENT,
        False,
        "blocked",
        compat.SERVER_BUSY,
    ),
    (
        "job running",
        replace(SERVER, job_status="RUNNING"),
        TARGET,
        CURRENT,
        False,
        "blocked",
        compat.SERVER_BUSY,
    ),
    (
        "in another active rollout",
        SERVER,
        TARGET,
        CURRENT,
        True,
        "blocked",
        compat.IN_OTHER_ROLLOUT,
    ),
    ("current image unknown", SERVER, TARGET, None, False, "blocked", compat.CURRENT_IMAGE_UNKNOWN),
    ("target unknown", SERVER, None, CURRENT, False, "blocked", compat.IMAGE_UNKNOWN),
]


@pytest.mark.parametrize(
    ("server", "target", "current", "busy", "action", "code"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_each_rule_gives_its_verdict_and_stable_code(server, target, current, busy, action, code):
    result = verdict(server, target, current, in_other_rollout=busy)
    assert result.action == action
    if code is None:
        assert result.reasons == ()
    else:
        assert code in [r.code for r in result.reasons]
        assert result.reason.message  # every reason carries a human message


def test_a_previous_failed_job_does_not_block():
    assert verdict(replace(SERVER, job_status="FAILED"), TARGET, CURRENT).ok


def test_it_lists_every_blocking_reason_not_just_the_first():
    server = replace(SERVER, frozen=True, job_status="RUNNING")
    result = verdict(server, replace(TARGET, architecture="arm"), CURRENT)
    codes = {r.code for r in result.reasons}
    assert codes == {compat.SERVER_FROZEN, compat.SERVER_BUSY, compat.ARCH_MISMATCH}


def test_sessions_and_missing_maintenance_warn_but_do_not_block():
    server = replace(SERVER, session_count=3, maintain_status=False)
    result = verdict(server, TARGET, CURRENT)
    assert result.ok
    assert [w.code for w in result.warnings] == [compat.ACTIVE_SESSIONS, compat.NOT_IN_MAINTENANCE]
    assert "3 active" in result.warnings[0].message


def test_an_unknown_disk_size_does_not_block():
    server = replace(SERVER, system_disk_size=None)
    assert verdict(server, replace(TARGET, min_disk=500), CURRENT).ok


def test_every_reason_code_has_a_message():
    codes = [
        v
        for k, v in vars(compat).items()
        if k.isupper() and isinstance(v, str) and v in compat.MESSAGES
    ]
    assert len(codes) == len(compat.MESSAGES)


images = st.builds(
    ImageFacts,
    id=st.sampled_from(["a", "b", "c"]),
    os_type=st.sampled_from(["Windows", "Linux"]),
    architecture=st.sampled_from(["x86", "arm", ""]),
    image_type=st.sampled_from(["private", "shared", "public", "marketplace"]),
    status=st.sampled_from(["active", "queued"]),
    min_disk=st.integers(0, 200),
    paid=st.booleans(),
    product_code=st.sampled_from(["", "p1", "p2"]),
)
servers = st.builds(
    ServerFacts,
    id=st.just("s"),
    image_id=st.sampled_from(["a", "b", "c"]),
    os_type=st.sampled_from(["Windows", "Linux"]),
    architecture=st.sampled_from(["x86", "arm", ""]),
    system_disk_size=st.one_of(st.none(), st.integers(40, 200)),
    frozen=st.booleans(),
    gone=st.booleans(),
    job_status=st.sampled_from(["", "WAITING", "RUNNING", "SUCCESS", "FAILED"]),
    session_count=st.integers(0, 5),
    maintain_status=st.booleans(),
)


@given(servers, images, images, st.booleans())
def test_a_change_is_allowed_only_between_equivalent_images(server, target, current, busy):
    current = replace(current, id=server.image_id)
    result = verdict(server, target, current, in_other_rollout=busy)
    if result.ok:
        assert target.id != server.image_id
        assert target.os_type == server.os_type == "Windows"
        assert current.paid == target.paid
        assert not current.paid or current.product_code == target.product_code
        assert target.status == "active"
        assert not (server.frozen or server.gone or busy)
        assert server.job_status not in ("WAITING", "RUNNING")
    else:
        assert result.reasons  # a refusal always says why


@given(servers, images, images)
def test_warnings_never_change_the_action(server, target, current):
    current = replace(current, id=server.image_id)
    quiet = replace(server, session_count=0, maintain_status=True)
    assert verdict(server, target, current).action == verdict(quiet, target, current).action
