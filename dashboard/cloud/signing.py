"""AK/SK request signing (SDK-HMAC-SHA256), byte-for-byte as the official Python SDK does it.

Pure functions: the client signs with `sign_request`, the simulator checks with `verify`.
"""

import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote, unquote, urlsplit

SDK_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
ALGORITHM = "SDK-HMAC-SHA256"
EMPTY_HASH = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_CONTENT_HASH_HEADER = "X-Sdk-Content-Sha256"
_DATE_HEADER = "X-Sdk-Date"


class SignatureError(Exception):
    """A request's signature cannot be accepted; `reason` says why (never echoes the secret)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _encode(value: str) -> str:
    # Only unreserved characters survive; space becomes %20, not +.
    return quote(value, safe="~")


def canonical_uri(path: str) -> str:
    """The path decoded, each segment re-encoded, always ending in '/'."""
    encoded = "/".join(_encode(segment) for segment in unquote(path).split("/"))
    return encoded if encoded.endswith("/") else encoded + "/"


def canonical_query(pairs: Sequence[tuple[str, str]]) -> str:
    """Pairs sorted by key then value, both encoded; this is also the query string sent."""
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(pairs))


def _payload_hash(headers: Mapping[str, str], body: bytes) -> str:
    if not body:
        return EMPTY_HASH
    preset = _get(headers, _CONTENT_HASH_HEADER)
    return preset or hashlib.sha256(body).hexdigest()


def _get(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def canonical_request(
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    body: bytes,
) -> str:
    """The six-line canonical form whose hash is signed. Raises KeyError for an absent header."""
    values = {key.lower(): str(value).strip() for key, value in headers.items()}
    lines = "".join(f"{name}:{values[name]}\n" for name in signed_headers)
    return "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            canonical_query(query),
            lines,
            ";".join(signed_headers),
            _payload_hash(headers, body),
        ]
    )


def string_to_sign(canonical: str, sdk_date: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{sdk_date}\n{digest}"


def signature(canonical: str, sdk_date: str, sk: str) -> str:
    message = string_to_sign(canonical, sdk_date).encode()
    return hmac.new(sk.encode(), message, hashlib.sha256).hexdigest()


def _signed_header_names(headers: Mapping[str, str]) -> list[str]:
    # Names with '_' are sent but never signed (proxies may drop them).
    return sorted(key.lower() for key in headers if "_" not in key)


def _normalise_date(value: str) -> str:
    # The SDK parses a preset date and formats it again for the string to sign.
    return datetime.strptime(value, SDK_DATE_FORMAT).strftime(SDK_DATE_FORMAT)


def sign_request(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    ak: str,
    sk: str,
    *,
    sdk_date: str | None = None,
) -> dict[str, str]:
    """Return the headers to send: the given ones plus X-Sdk-Date, Host and Authorization.

    `url` includes the query string; send it with the query as `canonical_query` renders it.
    """
    if not ak or not sk:
        raise ValueError("both an access key and a secret key are needed to sign")
    out = dict(headers)
    if _get(out, "Authorization") is not None:
        return out  # already signed or token-authenticated: the SDK does not sign twice
    content_type = _get(out, "Content-Type")
    if content_type and not content_type.startswith(("application/json", "application/bson")):
        out[_CONTENT_HASH_HEADER] = UNSIGNED_PAYLOAD
    date = _get(out, _DATE_HEADER)
    if date is None:
        date = sdk_date or datetime.now(UTC).strftime(SDK_DATE_FORMAT)
        out[_DATE_HEADER] = date
    parts = urlsplit(url)
    if _get(out, "Host") is None:
        out["Host"] = parts.netloc
    names = _signed_header_names(out)
    query = parse_qsl(parts.query, keep_blank_values=True)
    canonical = canonical_request(method, parts.path or "/", query, out, names, body)
    sig = signature(canonical, _normalise_date(date), sk)
    # Values go out trimmed; non-ASCII text travels as UTF-8 bytes, as the SDK sends it.
    out = {k: str(v).strip().encode().decode("iso-8859-1") for k, v in out.items()}
    out["Authorization"] = (
        f"{ALGORITHM} Access={ak}, SignedHeaders={';'.join(names)}, Signature={sig}"
    )
    return out


def authorization_value(ak: str, signed_headers: Sequence[str], sig: str) -> str:
    return f"{ALGORITHM} Access={ak}, SignedHeaders={';'.join(signed_headers)}, Signature={sig}"


def parse_authorization(value: str) -> tuple[str, list[str], str]:
    """Split an Authorization header into (access key, signed header names, signature)."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SignatureError("unsupported signing algorithm")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, val = part.strip().partition("=")
        if not sep:
            raise SignatureError("malformed Authorization header")
        fields[key] = val
    try:
        ak, names, sig = fields["Access"], fields["SignedHeaders"], fields["Signature"]
    except KeyError:
        raise SignatureError("malformed Authorization header") from None
    if not ak or not names or not sig:
        raise SignatureError("malformed Authorization header")
    return ak, names.split(";"), sig


def _wire_text(value: str) -> str:
    # WSGI hands header values over as ISO-8859-1 text; the signer hashed their UTF-8 reading.
    try:
        return value.encode("iso-8859-1").decode()
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _check_date(headers: Mapping[str, str], now: datetime, max_skew_seconds: int) -> str:
    raw = headers.get("x-sdk-date")
    if not raw:
        raise SignatureError("missing X-Sdk-Date")
    try:
        when = datetime.strptime(raw, SDK_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError("malformed X-Sdk-Date") from None
    if abs(now - when) > timedelta(seconds=max_skew_seconds):
        raise SignatureError("signature expired")
    return when.strftime(SDK_DATE_FORMAT)


def verify(
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    secret_for_ak: Callable[[str], str | None],
    now: datetime,
    max_skew_seconds: int = 900,
) -> str:
    """Return the access key of a correctly signed request; raise SignatureError otherwise.

    `headers` must have lower-cased names; `path` is the request path as sent and `query`
    the decoded query pairs. `now` must be timezone-aware.
    """
    authorization = headers.get("authorization")
    if not authorization:
        raise SignatureError("missing Authorization header")
    ak, names, sig = parse_authorization(authorization)
    date = _check_date(headers, now, max_skew_seconds)
    missing = [name for name in names if name not in headers]
    if missing:
        raise SignatureError(f"signed header absent: {missing[0]}")
    sk = secret_for_ak(ak)
    if not sk:
        raise SignatureError("unknown access key")
    text_headers = {name: _wire_text(value) for name, value in headers.items()}
    canonical = canonical_request(method, path, query, text_headers, names, body)
    if not hmac.compare_digest(signature(canonical, date, sk), sig):
        raise SignatureError("signature mismatch")
    return ak
