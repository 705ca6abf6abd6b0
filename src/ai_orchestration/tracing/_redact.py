"""Secret redaction applied wherever data leaves the process (audit files, exports, errors)."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["SECRET_KEYS", "may_hold_secrets", "redact_secrets", "redact_text"]

# Keys whose values are always secret, whatever they contain.
SECRET_KEYS = frozenset(
    {
        "api_key",
        "apikey",
        "authorization",
        "x-api-key",
        "x-goog-api-key",
        "password",
        "secret",
        "token",
        "access_token",
        "refresh_token",
        "key",
    }
)
_SECRET_PATTERNS = re.compile(
    r"(sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{8,}"  # OpenAI / Anthropic style keys
    r"|AIza[0-9A-Za-z_\-]{20,}"  # Google API keys
    r"|(?i:bearer)\s+[A-Za-z0-9._\-]{8,}"  # bearer tokens
    r"|(?i:(?:api[_-]?key|key|token)=)[A-Za-z0-9._\-]{8,})"  # key=... in URLs
)
REDACTED = "[REDACTED]"
# Literals at least one of which occurs in anything the two rules above can change: every
# secret pattern starts with one, and every secret key contains one. ASCII JSON containing none
# of them has nothing to redact. (Non-ASCII text always takes the full path: Unicode case
# folding can turn e.g. a Kelvin sign into "k".)
_NEEDLES = (b"sk-", b"aiza", b"bearer", b"key", b"token", b"authorization", b"password", b"secret")


def may_hold_secrets(json_text: bytes) -> bool:
    """False only if serialised JSON certainly holds nothing ``redact_secrets`` would change."""
    if not json_text.isascii():
        return True
    low = json_text.lower()
    return any(needle in low for needle in _NEEDLES)


def redact_text(text: str, extra: tuple[str, ...] = ()) -> str:
    """Replace anything that looks like key material (and the given literal secrets)."""
    for secret in extra:
        if secret:
            text = text.replace(secret, REDACTED)
    return _SECRET_PATTERNS.sub(REDACTED, text)


def redact_secrets(value: Any, extra: tuple[str, ...] = ()) -> Any:
    """Recursively redact secrets in JSON-like data (dict keys and string contents)."""
    if isinstance(value, str):
        return redact_text(value, extra)
    if isinstance(value, dict):
        return {
            k: REDACTED
            if isinstance(k, str) and k.lower() in SECRET_KEYS
            else redact_secrets(v, extra)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_secrets(v, extra) for v in value]
    return value
