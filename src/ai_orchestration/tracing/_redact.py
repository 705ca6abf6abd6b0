"""Secret redaction applied wherever data leaves the process (audit files, exports, errors)."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["SECRET_KEYS", "redact_secrets", "redact_text"]

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
