"""ListServers pages are decoded straight into typed fields (wire.servers_page); whatever the
page holds, the records must be those the standard decoder and wire.server() make of it."""

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.cloud import wire

# What the cloud puts in a field, documented or not: text, its "null", numbers and booleans
# as themselves or as text, nulls, and the odd list or object.
odd_scalar = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["null", "true", "false", "80", " 3 ", "3.0", "", "x86_64", "AARCH64"]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.sampled_from(["2023-05-09T10:28:38Z", "2023-05-09T10:28:38.755+08:00", "2023-05-09"]),
)
odd_value = st.one_of(
    odd_scalar,
    st.lists(odd_scalar, max_size=2),
    st.dictionaries(st.sampled_from(["addr", "architecture", "x"]), odd_scalar, max_size=2),
)
FIELDS = [
    "id",
    "name",
    "machine_name",
    "server_group_id",
    "server_group_name",
    "image_id",
    "os_type",
    "os_version",
    "status",
    "vm_status",
    "task_status",
    "maintain_status",
    "session_count",
    "freeze",
    "availability_zone",
    "job_id",
    "job_type",
    "job_status",
    "job_time",
    "create_time",
    "unrelated_field",
]
product = st.fixed_dictionaries(
    {},
    optional={"architecture": odd_scalar, "system_disk_size": odd_scalar, "flavor_id": odd_scalar},
)
addresses = st.lists(
    st.one_of(st.fixed_dictionaries({}, optional={"addr": odd_scalar}), odd_scalar), max_size=3
)
server = st.fixed_dictionaries(
    {},
    optional={
        **dict.fromkeys(FIELDS, odd_value),
        "product_info": st.one_of(product, odd_scalar),
        "host_address": st.one_of(addresses, odd_scalar),
    },
)
# Mostly well-typed servers, so that both ways of decoding are exercised.
documented = st.fixed_dictionaries(
    {},
    optional={
        **dict.fromkeys(FIELDS[:11] + FIELDS[14:20], st.one_of(st.text(max_size=8), st.none())),
        "maintain_status": st.one_of(st.booleans(), st.sampled_from(["true", "False"])),
        "session_count": st.one_of(st.integers(0, 99), st.sampled_from(["3", "null"])),
        "freeze": st.lists(st.dictionaries(st.text(max_size=3), st.integers()), max_size=1),
        "product_info": product.filter(lambda p: all(isinstance(v, str) for v in p.values())),
        "host_address": st.lists(st.fixed_dictionaries({"addr": st.text(max_size=8)}), max_size=2),
    },
)
page = st.fixed_dictionaries(
    {},
    optional={
        "count": odd_scalar,
        "items": st.one_of(st.lists(st.one_of(documented, server, odd_scalar), max_size=4)),
    },
)


def read_as_dicts(body: bytes) -> tuple[int, list]:
    """The reference: the standard decoder, then wire.server() item by item."""
    data = json.loads(body)
    data = data if isinstance(data, dict) else {}
    items = data.get("items")
    items = items if isinstance(items, list) else []
    count = wire._int(data.get("count"), 0) or 0
    return count, [wire.server(item) for item in items if isinstance(item, dict)]


@settings(max_examples=400, deadline=None)
@given(page)
def test_any_page_gives_the_records_the_dict_reading_gives(data: dict[str, Any]) -> None:
    body = json.dumps(data).encode()
    assert wire.servers_page(body) == read_as_dicts(body)


@settings(max_examples=100, deadline=None)
@given(st.lists(documented, max_size=5))
def test_a_documented_page_is_read_field_for_field(items: list[dict]) -> None:
    body = json.dumps({"count": len(items), "items": items}).encode()
    assert wire.servers_page(body) == read_as_dicts(body)


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"{}",
        b'{"items": null}',
        json.dumps({"count": 1, "items": [{"id": "s-1"}]}).encode("utf-16"),
        '{"count": 1, "items": [{"id": "s-\u00e9", "name": "caf\u00e9"}]}'.encode(),
    ],
)
def test_other_shapes_and_encodings_are_read_as_the_standard_decoder_reads_them(
    body: bytes,
) -> None:
    assert wire.servers_page(body) == read_as_dicts(body)


def test_a_body_that_is_not_json_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        wire.servers_page(b"<html>login</html>")
