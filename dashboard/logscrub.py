"""Logging helpers that keep secrets and control characters out of log lines."""

import logging
import re

# Values that must never reach a log: AK/SK signatures, tokens, cookies, passwords.
_SECRET_PATTERNS = [
    re.compile(r"(?i)(authorization\s*[:=]\s*)([^\n,;]+(?:,\s*\w+=[^\n,;]+)*)"),
    re.compile(r"(?i)(signature=)([0-9a-f]+)"),
    re.compile(r"(?i)(x-auth-token\s*[:=]\s*)(\S+)"),
    re.compile(r"(?i)(x-subject-token\s*[:=]\s*)(\S+)"),
    re.compile(r"(?i)(x-security-token\s*[:=]\s*)(\S+)"),
    re.compile(r"(?i)(cookie\s*[:=]\s*)([^\n]+)"),
    re.compile(
        r"(?i)((?:\"|')?(?:password|secret|sk|security_token|token)(?:\"|')?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|\S+)"
    ),
]
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def scrub(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + "[redacted]", text)
    return text


def one_line(text: str) -> str:
    """Escape control characters so a hostile name cannot forge extra log lines."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class ScrubSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = scrub(message)
        record.args = None
        return True


class OneLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return one_line(scrub(super().format(record)))
