"""Logging helpers that keep secrets and control characters out of log lines.

Two layers, because one pattern list can never foresee every way a secret is printed:

1. Patterns: anything that looks like an Authorization / token / cookie / AK-SK / password
   field, a bearer token or a JWT is replaced by "[redacted]", whatever surrounds it (a header
   line, a dict repr of request.META, a query string, JSON).
2. Values: the secrets this process actually holds (SECRET_KEY, the cloud AK/SK, security
   token and IAM password, the database URL's password) are replaced wherever they appear.

`OneLineFormatter` applies both to the fully formatted record, traceback included, and escapes
control characters so a hostile server or user name cannot forge a second log line.
"""

import logging
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.core.exceptions import PermissionDenied
from django.views.debug import SafeExceptionReporterFilter

REDACTED = "[redacted]"

# Field names whose values are secret. Matched as a key (HTTP header, META key, JSON/dict key,
# query parameter), with optional quotes around key and value.
_SECRET_KEYS = (
    r"(?:http_)?(?:proxy_)?authorization",
    r"(?:http_)?(?:set_)?cookie",
    r"(?:http_)?set-cookie",
    r"(?:http_)?x[-_](?:auth|subject|security)[-_]token",
    r"(?:http_)?x[-_]csrftoken",
    r"(?:http_)?cf[-_]access[-_]jwt[-_]assertion",
    r"(?:http_)?x[-_]pomerium[-_]jwt[-_]assertion",
    r"(?:http_)?x[-_]goog[-_]iap[-_]jwt[-_]assertion",
    r"(?:http_)?x[-_]forwarded[-_]access[-_]token",
    r"(?:http_)?x[-_]auth[-_]request[-_]access[-_]token",
    r"(?:__host-)?sessionid",
    r"(?:__host-)?csrftoken",
    r"csrfmiddlewaretoken",
    r"(?:huaweicloud_sdk_)?(?:ak|sk)",
    r"(?:huaweicloud_sdk_)?security_token",
    r"(?:huaweicloud_)?iam_password",
    r"access[-_]?key(?:[-_]?id)?",
    r"secret(?:[-_]?access)?(?:[-_]?key)?",
    r"client[-_]?secret",
    r"api[-_]?key",
    r"private[-_]?key",
    r"(?:access|refresh|id|auth|session)?[-_]?token",
    r"passw(?:or)?d",
    r"pwd",
    r"signature",
)
_KEY = "(?:" + "|".join(_SECRET_KEYS) + ")"
# key, optional closing quote, separator; then a quoted value or a run up to a delimiter.
# Authorization-like values keep going over ", Key=value" pairs (SDK-HMAC-SHA256 Access=…,
# SignedHeaders=…, Signature=…) and spaces ("Bearer xyz").
_SECRET_NAME = re.compile(r"(?i)^[-_]?(?:" + _KEY + r")$")
_KEY_VALUE = re.compile(
    r"(?i)(?<![a-z0-9])(['\"]?" + _KEY + r"['\"]?\s*(?:[:=]|=>)\s*)"
    r"(\[redacted\]|\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^\s,;&'\"}\]\)]+)"
)
_AUTH_LINE = re.compile(
    r"(?i)((?:http_)?(?:proxy[-_])?authorization['\"]?\s*[:=]\s*['\"]?)([^'\"\r\n]+)"
)
_COOKIE_LINE = re.compile(r"(?i)((?:http_)?(?:set[-_])?cookie['\"]?\s*[:=]\s*['\"]?)([^'\"\r\n]+)")
_BEARER = re.compile(
    r"(?i)\b(bearer|basic|sdk-hmac-sha256)(\s+)([^\s'\",;]+(?:,\s*\w+=[^\s'\",;]+)*)"
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
# Huawei Cloud AK: 20 upper-case letters/digits; SK: 40 letters/digits. Only inside an
# SDK-HMAC "Access=" field is an AK recognised by shape (elsewhere it would hit ordinary ids).
_ACCESS_FIELD = re.compile(r"(?i)(\baccess=)([A-Z0-9]{16,64})")
# user:password@ inside any URL (a webhook, a database URL, a proxy): the whole user info goes.
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@'\"]+@")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]")
# Every pattern above needs one of these to match: a separator (":" or "="), the space after
# "Bearer", or a JWT's "eyJ". Text with none of them (an id, a name, a count) skips the
# patterns; only the secrets this process holds are looked for in it.
_ANY_PATTERN = re.compile(r"[:=\s]|eyJ")

_MIN_SECRET_LENGTH = 6


def known_secrets() -> list[str]:
    """The secret values this process holds, longest first (so no secret is half-replaced),
    as settings hold them now: read once and pass to `scrub` to scrub many values at once
    (an audit event's details)."""
    try:
        from django.conf import settings

        if not settings.configured:
            return []
        cloud = getattr(settings, "HUAWEICLOUD", {}) or {}
        values = [
            getattr(settings, "SECRET_KEY", ""),
            cloud.get("AK", ""),
            cloud.get("SK", ""),
            cloud.get("SECURITY_TOKEN", ""),
            cloud.get("IAM_PASSWORD", ""),
            getattr(settings, "NOTIFY_WEBHOOK_SECRET", ""),
            getattr(settings, "NOTIFY_WEBHOOK_URL", ""),  # chat webhooks carry a token
            *_url_password(getattr(settings, "NOTIFY_WEBHOOK_URL", "")),
        ]
        for mailer in (getattr(settings, "MAILERS", {}) or {}).values():
            values.append(str((mailer.get("OPTIONS") or {}).get("password", "") or ""))
        for database in getattr(settings, "DATABASES", {}).values():
            values.append(str(database.get("PASSWORD", "") or ""))
        values += [_variable(name) for name in project_secret_names()]
    except Exception:
        return []
    found = {str(value) for value in values if value and len(str(value)) >= _MIN_SECRET_LENGTH}
    return sorted(found, key=len, reverse=True)


_PROJECT_SECRETS = ("ak_env", "sk_env", "security_token_env", "iam_password_env")
# A variable named for a key pair's half, as a projects file may name them ("BEIJING_SK").
_KEY_HALF_NAME = re.compile(r"(?i)[-_](?:ak|sk)$")


def project_secret_names() -> set[str]:
    """The variables the configured projects read their secrets from (CLOUD_PROJECTS_FILE
    names them freely: "BEIJING_SK", "PROD_KEY")."""
    from django.conf import settings

    projects = getattr(settings, "CLOUD_PROJECTS", ()) or ()
    return {
        name
        for project in projects
        for attribute in _PROJECT_SECRETS
        if (name := getattr(project, attribute, ""))
    }


def _variable(name: str) -> str:
    """A secret variable's value, or its NAME_FILE's content (as env.env_secret reads it)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except (OSError, UnicodeDecodeError):  # not readable: the other secrets still count
            return ""
    return os.environ.get(name, "")


def _url_password(url: str) -> list[str]:
    """A URL's password, as written and decoded: it may be printed apart from its URL."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    return [password, unquote(password)] if password else []


def scrub(text: str, secrets: list[str] | None = None) -> str:
    """`text` with every recognisable secret replaced by "[redacted]". `secrets`: the values
    of known_secrets(), when the caller read them already."""
    for secret in known_secrets() if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if _ANY_PATTERN.search(text) is None:
        return text
    text = _AUTH_LINE.sub(lambda m: m.group(1) + REDACTED, text)
    text = _COOKIE_LINE.sub(lambda m: m.group(1) + REDACTED, text)
    text = _BEARER.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    text = _JWT.sub(REDACTED, text)
    text = _URL_CREDENTIALS.sub(lambda m: m.group(1) + REDACTED + "@", text)
    text = _ACCESS_FIELD.sub(lambda m: m.group(1) + REDACTED, text)
    text = _KEY_VALUE.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def is_secret_name(name: str) -> bool:
    """Whether a field called `name` (header, setting, JSON key) holds a secret."""
    return bool(_SECRET_NAME.match(name.strip()))


def one_line(text: str) -> str:
    """Escape control characters so a hostile name cannot forge extra log lines."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class ScrubSecretsFilter(logging.Filter):
    """Scrubs the message (with its arguments merged in) before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record, or leak its args
            message = f"{record.msg!s} [unformattable arguments dropped]"
        record.msg = scrub(message)
        record.args = None
        return True


class RefusalWithoutTraceback(logging.Filter):
    """django.request logs a 403 at WARNING with the PermissionDenied's traceback. A refusal
    is an answer, not a fault: its line stays (with the audit's own `outcome=refused` line,
    what the operator reads), the traceback goes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], PermissionDenied):
            record.exc_info = None
            record.exc_text = None
        return True


class OneLineFormatter(logging.Formatter):
    """Formats, then scrubs everything (traceback too) and keeps the record on one line."""

    def format(self, record: logging.LogRecord) -> str:
        return one_line(scrub(super().format(record)))


class ExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django's filter for error reports and DEBUG pages, which also hides every setting and
    environment variable (at any depth) whose name this module counts as a secret: Django's
    own pattern misses the cloud's `AK` and `SK`, "BEIJING_SK", and whatever names a projects
    file gives its secrets' variables."""

    def cleanse_setting(self, key, value):
        if isinstance(key, str) and (
            is_secret_name(key) or _KEY_HALF_NAME.search(key) or key in project_secret_names()
        ):
            return self.cleansed_substitute
        return super().cleanse_setting(key, value)
