"""SDK-HMAC-SHA256 signing: published vectors, agreement with the official SDK, sign→verify."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard.cloud import signing
from dashboard.cloud.signing import SignatureError, canonical_query, sign_request, verify

AK = "AKTESTEXAMPLE0000001"
SK = "SKtestExampleSecretKey000000000000000001"
PROJECT = "0123456789abcdef0123456789abcdef"
DATE = "20250101T000000Z"
NOW = datetime(2025, 1, 1, tzinfo=UTC)

# The three published vectors, as literals so the suite does not depend on files outside it.
VECTORS = [
    {
        "name": "list-servers-get",
        "method": "GET",
        "host": "appstream.cn-north-4.myhuaweicloud.com",
        "path": f"/v1/{PROJECT}/app-servers",
        "query": [("limit", "100"), ("offset", "0"), ("server_group_id", "sg-1")],
        "headers": {
            "Content-Type": "application/json",
            "X-Project-Id": PROJECT,
            "X-Sdk-Date": DATE,
        },
        "body": b"",
        "target": f"/v1/{PROJECT}/app-servers?limit=100&offset=0&server_group_id=sg-1",
        "canonical": (
            f"GET\n/v1/{PROJECT}/app-servers/\nlimit=100&offset=0&server_group_id=sg-1\n"
            "content-type:application/json\nhost:appstream.cn-north-4.myhuaweicloud.com\n"
            f"x-project-id:{PROJECT}\nx-sdk-date:{DATE}\n\n"
            "content-type;host;x-project-id;x-sdk-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        ),
        "authorization": (
            f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=content-type;host;x-project-id;"
            "x-sdk-date, Signature=0777083f3fa67d7ce71db5ae53c5998a13dcd51030df07cc573274486ae9e113"
        ),
    },
    {
        "name": "batch-change-image-post",
        "method": "POST",
        "host": "appstream.cn-north-4.myhuaweicloud.com",
        "path": f"/v1/{PROJECT}/app-servers/actions/batch-change-image",
        "query": [],
        "headers": {
            "Content-Type": "application/json;charset=UTF-8",
            "X-Project-Id": PROJECT,
            "X-Sdk-Date": DATE,
        },
        "body": (
            b'{"server_ids": ["s-1", "s-2"], "image_id": "img-2", "image_type": "private", '
            b'"os_type": "Windows"}'
        ),
        "target": f"/v1/{PROJECT}/app-servers/actions/batch-change-image",
        "canonical": (
            f"POST\n/v1/{PROJECT}/app-servers/actions/batch-change-image/\n\n"
            "content-type:application/json;charset=UTF-8\n"
            "host:appstream.cn-north-4.myhuaweicloud.com\n"
            f"x-project-id:{PROJECT}\nx-sdk-date:{DATE}\n\n"
            "content-type;host;x-project-id;x-sdk-date\n"
            "58ac9a82c48a4de6853315772f784c59009409da76edca1b1efd3524aaede694"
        ),
        "authorization": (
            f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=content-type;host;x-project-id;"
            "x-sdk-date, Signature=3e301d3c67906b21417e5503b91da5e204bce9bb26e7fb7d8f4d6e21436669d3"
        ),
    },
    {
        "name": "ims-list-encoding-and-port",
        "method": "GET",
        "host": "127.0.0.1:8443",
        "path": "/v2/cloudimages",
        "query": [
            ("name", "Win 2019, gold"),
            ("__imagetype", "private"),
            ("limit", "10"),
            ("marker", ""),
        ],
        "headers": {
            "Content-Type": "application/json",
            "User-Agent": "huaweicloud-usdk-python/3.0",
            "X-Project-Id": PROJECT,
            "X-Sdk-Date": DATE,
            "X_Custom_Ignored": "x",
        },
        "body": b"",
        "target": "/v2/cloudimages?__imagetype=private&limit=10&marker=&name=Win%202019%2C%20gold",
        "canonical": (
            "GET\n/v2/cloudimages/\n__imagetype=private&limit=10&marker=&name=Win%202019%2C%20gold\n"
            "content-type:application/json\nhost:127.0.0.1:8443\n"
            f"user-agent:huaweicloud-usdk-python/3.0\nx-project-id:{PROJECT}\nx-sdk-date:{DATE}\n\n"
            "content-type;host;user-agent;x-project-id;x-sdk-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        ),
        "authorization": (
            f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=content-type;host;user-agent;"
            "x-project-id;x-sdk-date, "
            "Signature=a20c6e60f5ccd1e78f3127cc72e7ffe1f7006217e36f4d7cfd0364caa90ef477"
        ),
    },
]
IDS = [v["name"] for v in VECTORS]


def _url(host: str, path: str, query: list[tuple[str, str]]) -> str:
    rendered = canonical_query(query)
    return f"http://{host}{path}" + (f"?{rendered}" if rendered else "")


def _secrets(ak: str) -> str | None:
    return SK if ak == AK else None


def _as_received(sent: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in sent.items()}


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_it_renders_the_published_query_string(vector: dict) -> None:
    assert (
        vector["path"] + ("?" + canonical_query(vector["query"]) if vector["query"] else "")
        == (vector["target"])
    )


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_it_builds_the_published_canonical_request(vector: dict) -> None:
    headers = {**vector["headers"], "Host": vector["host"]}
    names = sorted(k.lower() for k in headers if "_" not in k)
    built = signing.canonical_request(
        vector["method"], vector["path"], vector["query"], headers, names, vector["body"]
    )
    assert built == vector["canonical"]


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_it_produces_the_published_authorization(vector: dict) -> None:
    url = _url(vector["host"], vector["path"], vector["query"])
    sent = sign_request(vector["method"], url, dict(vector["headers"]), vector["body"], AK, SK)
    assert sent["Authorization"] == vector["authorization"]
    assert sent["Host"] == vector["host"]


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_a_published_request_verifies(vector: dict) -> None:
    url = _url(vector["host"], vector["path"], vector["query"])
    sent = sign_request(vector["method"], url, dict(vector["headers"]), vector["body"], AK, SK)
    ak = verify(
        vector["method"],
        vector["path"],
        vector["query"],
        _as_received(sent),
        vector["body"],
        _secrets,
        NOW,
    )
    assert ak == AK


def test_it_adds_date_and_host_when_absent() -> None:
    sent = sign_request("GET", "http://127.0.0.1:8000/v1/x?b=2&a=1", {}, b"", AK, SK)
    assert sent["Host"] == "127.0.0.1:8000"
    datetime.strptime(sent["X-Sdk-Date"], signing.SDK_DATE_FORMAT)
    assert "SignedHeaders=host;x-sdk-date," in sent["Authorization"]


def test_it_uses_the_given_date() -> None:
    sent = sign_request("GET", "http://h/p", {}, b"", AK, SK, sdk_date=DATE)
    assert sent["X-Sdk-Date"] == DATE


def test_it_marks_a_non_json_payload_unsigned() -> None:
    sent = sign_request("PUT", "http://h/p", {"Content-Type": "text/plain"}, b"x", AK, SK)
    assert sent["X-Sdk-Content-Sha256"] == "UNSIGNED-PAYLOAD"
    assert "x-sdk-content-sha256" in sent["Authorization"]


def test_it_does_not_sign_twice() -> None:
    headers = {"Authorization": "already"}
    assert sign_request("GET", "http://h/p", headers, b"", AK, SK) == headers


def test_it_refuses_to_sign_without_a_secret() -> None:
    with pytest.raises(ValueError):
        sign_request("GET", "http://h/p", {}, b"", AK, "")


# --- agreement with the official SDK over generated requests -----------------------------

_segment = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8
)
_query_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=10)
_header_name = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_-]{0,12}\Z").filter(
    lambda n: (
        n.lower() not in {"host", "x-sdk-date", "authorization", "content-type"}
        and not n.lower().startswith("x-sdk-content")
    )
)
_header_value = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=16)


@st.composite
def requests_(draw: st.DrawFn) -> dict:
    segments = draw(st.lists(_segment, min_size=1, max_size=5))
    path = "/" + "/".join(quote(s, safe="") for s in segments)
    port = draw(st.one_of(st.none(), st.integers(1, 65535)))
    host = "127.0.0.1" + (f":{port}" if port else "")
    extra = draw(
        st.dictionaries(_header_name, _header_value, max_size=4, dict_class=dict).filter(
            lambda d: len({k.lower() for k in d}) == len(d)
        )
    )
    content_type = draw(
        st.sampled_from([None, "application/json", "application/json;charset=UTF-8", "text/csv"])
    )
    headers = {"X-Project-Id": PROJECT, "X-Sdk-Date": DATE, **extra}
    if content_type:
        headers["Content-Type"] = content_type
    return {
        "method": draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"])),
        "host": host,
        "path": path,
        "query": draw(st.lists(st.tuples(_query_text, _query_text), max_size=5)),
        "headers": headers,
        "body": draw(st.one_of(st.just(b""), st.binary(max_size=64))),
    }


def _sdk_sign(req: dict) -> dict[str, str]:
    sdk_request = SdkRequest(
        method=req["method"],
        schema="http",
        host=req["host"],
        resource_path=req["path"],
        query_params=list(req["query"]),
        header_params=dict(req["headers"]),
        body=req["body"],
    )
    Signer(SimpleNamespace(ak=AK, sk=SK)).sign(sdk_request)
    return sdk_request.header_params


def _ours(req: dict) -> dict[str, str]:
    url = _url(req["host"], req["path"], req["query"])
    return sign_request(req["method"], url, dict(req["headers"]), req["body"], AK, SK)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests_())
def test_it_signs_exactly_as_the_official_sdk(req: dict) -> None:
    assert _ours(req) == _sdk_sign(req)


@settings(max_examples=200, deadline=None)
@given(requests_())
def test_the_query_string_sent_decodes_to_the_pairs_signed(req: dict) -> None:
    url = _url(req["host"], req["path"], req["query"])
    received = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    assert sorted(received) == sorted(req["query"])


@settings(max_examples=200, deadline=None)
@given(requests_())
def test_every_signed_request_verifies(req: dict) -> None:
    sent = _ours(req)
    got = verify(
        req["method"], req["path"], req["query"], _as_received(sent), req["body"], _secrets, NOW
    )
    assert got == AK


# --- rejection ---------------------------------------------------------------------------


def _signed_vector() -> tuple[dict, dict[str, str]]:
    vector = VECTORS[1]
    url = _url(vector["host"], vector["path"], vector["query"])
    sent = sign_request("POST", url, dict(vector["headers"]), vector["body"], AK, SK)
    return vector, _as_received(sent)


def _verify_with(**changes: object) -> str:
    vector, headers = _signed_vector()
    args = {
        "method": "POST",
        "path": vector["path"],
        "query": [],
        "headers": headers,
        "body": vector["body"],
        "secret_for_ak": _secrets,
        "now": NOW,
    }
    args.update(changes)
    return verify(**args)  # type: ignore[arg-type]


def test_the_untampered_request_verifies() -> None:
    assert _verify_with() == AK


@pytest.mark.parametrize(
    "changes",
    [
        {"method": "PUT"},
        {"path": f"/v1/{PROJECT}/app-servers/actions/batch-change-imagE"},
        {"query": [("force", "true")]},
        {"body": b'{"server_ids": ["s-1", "s-3"]}'},
    ],
    ids=["method", "path", "query", "body"],
)
def test_a_tampered_request_is_rejected(changes: dict) -> None:
    with pytest.raises(SignatureError, match="signature mismatch"):
        _verify_with(**changes)


def test_a_tampered_signed_header_is_rejected() -> None:
    _, headers = _signed_vector()
    headers["x-project-id"] = "another-project"
    with pytest.raises(SignatureError, match="mismatch"):
        _verify_with(headers=headers)


def test_a_wrong_secret_is_rejected() -> None:
    with pytest.raises(SignatureError, match="mismatch"):
        _verify_with(secret_for_ak=lambda ak: "not-the-secret")


def test_an_unknown_access_key_is_rejected() -> None:
    with pytest.raises(SignatureError, match="unknown access key"):
        _verify_with(secret_for_ak=lambda ak: None)


def test_a_missing_date_is_rejected() -> None:
    _, headers = _signed_vector()
    del headers["x-sdk-date"]
    with pytest.raises(SignatureError, match="missing X-Sdk-Date"):
        _verify_with(headers=headers)


def test_a_malformed_date_is_rejected() -> None:
    _, headers = _signed_vector()
    headers["x-sdk-date"] = "2025-01-01T00:00:00Z"
    with pytest.raises(SignatureError, match="malformed X-Sdk-Date"):
        _verify_with(headers=headers)


@pytest.mark.parametrize("offset", [timedelta(minutes=16), -timedelta(minutes=16)])
def test_a_date_more_than_fifteen_minutes_off_is_rejected(offset: timedelta) -> None:
    with pytest.raises(SignatureError, match="expired"):
        _verify_with(now=NOW + offset)


def test_a_date_within_the_skew_verifies() -> None:
    assert _verify_with(now=NOW + timedelta(minutes=14)) == AK


def test_a_listed_header_that_was_not_sent_is_rejected() -> None:
    _, headers = _signed_vector()
    del headers["x-project-id"]
    with pytest.raises(SignatureError, match="signed header absent"):
        _verify_with(headers=headers)


@pytest.mark.parametrize(
    "authorization",
    [
        "",
        "SDK-HMAC-SM3 Access=a, SignedHeaders=host, Signature=00",
        "SDK-HMAC-SHA256 garbage",
        "SDK-HMAC-SHA256 Access=a, Signature=00",
        "SDK-HMAC-SHA256 Access=, SignedHeaders=host, Signature=00",
    ],
    ids=["empty", "other-algorithm", "no-fields", "no-signed-headers", "empty-access"],
)
def test_a_malformed_authorization_header_is_rejected(authorization: str) -> None:
    _, headers = _signed_vector()
    headers["authorization"] = authorization
    with pytest.raises(SignatureError):
        _verify_with(headers=headers)


def test_the_rejection_reason_never_contains_the_secret() -> None:
    with pytest.raises(SignatureError) as caught:
        _verify_with(body=b"{}")
    assert SK not in str(caught.value)
