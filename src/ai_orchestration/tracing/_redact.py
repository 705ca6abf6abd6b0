"""Secret redaction applied wherever data leaves the process (audit files, stores, exports,
errors, the answers voices give).

What is redacted is decided by a field's role, not by words in its name:

* identities and measurements (span ids, kinds, statuses, times, step and voice names, usage
  counts such as ``input_tokens``, weights) are never scanned;
* content (inputs, prompts, outputs, answers, votes, explanations, errors, attributes) is
  scanned for key material (provider key shapes, bearer tokens, ``key=`` parameters, URL user
  info and secret query values) in values *and* mapping keys;
* a mapping entry whose name always holds a credential (``api_key``, ``authorization``,
  ``password``…) is masked whatever its value; the ambiguous names ``key`` and ``token`` only
  when the value is credential-shaped, so ``{"key": "C major"}`` survives.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import orjson

from ai_orchestration._secret import _SECRET_NAMES, is_secret_name, scrub_urls
from ai_orchestration.voices._types import VoiceResponse

__all__ = [
    "SECRET_KEYS",
    "may_hold_secrets",
    "redact_response",
    "redact_secrets",
    "redact_text",
    "redacted_record_json",
]

# Names whose values are secret: always (``_SECRET_NAMES``), or when credential-shaped.
_AMBIGUOUS_NAMES = frozenset({"key", "token"})
SECRET_KEYS = _SECRET_NAMES | _AMBIGUOUS_NAMES
_TOKEN_CHARS = r"[A-Za-z0-9._~+/\-]"
# A bearer token has a digit or is long: "Bearer abc123def" and JWTs, not "bearer instruments".
_CREDENTIAL = rf"(?:(?={_TOKEN_CHARS}*\d){_TOKEN_CHARS}{{8,}}|{_TOKEN_CHARS}{{20,}})"
_SECRET_PATTERNS = re.compile(
    r"(sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{8,}"  # OpenAI / Anthropic style keys
    r"|AIza[0-9A-Za-z_\-]{20,}"  # Google API keys
    rf"|(?i:bearer)\s+{_CREDENTIAL}"  # bearer tokens
    r"|(?<![A-Za-z0-9])(?i:(?:api[_-]?key|key|token)=)[A-Za-z0-9._\-]{8,})"  # key=... in URLs
)
_CREDENTIAL_SHAPED = re.compile(_CREDENTIAL)
REDACTED = "[REDACTED]"
# Literals at least one of which occurs in anything the rules above can change: every secret
# pattern starts with one, every secret name contains one, and URLs have "://". ASCII JSON
# containing none of them has nothing to redact. (Non-ASCII text always takes the full path:
# Unicode case folding can turn e.g. a Kelvin sign into "k".)
_NEEDLES = (
    b"sk-", b"aiza", b"bearer", b"key", b"token", b"authorization", b"password", b"passwd",
    b"secret", b"://",
)  # fmt: skip
_TEXT_NEEDLES = tuple(n.decode() for n in _NEEDLES)
_Scanned = TypeVar("_Scanned", str, bytes)

# Span record fields that identify or measure (never content): not scanned.
_RECORD_IDENTITY = frozenset(
    ("span_id", "parent_id", "run_id", "kind", "name", "status", "start_ns", "end_ns",
     "duration_ms")
)  # fmt: skip
_DATA_IDENTITY = frozenset(
    ("workflow", "step_kind", "attempt", "voice", "usage", "method", "confidence", "source",
     "targets", "messages", "filters")
)  # fmt: skip


# Long values are scanned a chunk at a time, the GIL handed back between chunks: a 10 MB
# answer scanned in one go holds it (and so the event loop) for ~200 ms.
_CHUNK = 1 << 18
_OVERLAP = max(len(n) for n in _NEEDLES) - 1  # a needle across a chunk edge is still found


def _chunks(value: _Scanned) -> Iterator[_Scanned]:
    if len(value) <= _CHUNK:
        yield value
        return
    for start in range(0, len(value), _CHUNK):
        yield value[max(0, start - _OVERLAP) : start + _CHUNK]
        time.sleep(0)  # release the GIL: another thread (the event loop) may run


def _holds_needle(value: _Scanned, needles: tuple[_Scanned, ...]) -> bool:
    for chunk in _chunks(value):
        if not chunk.isascii():
            return True
        low = chunk.lower()
        if any(needle in low for needle in needles):
            return True
    return False


def may_hold_secrets(json_text: bytes) -> bool:
    """False only if serialised JSON certainly holds nothing ``redact_secrets`` would change."""
    return _holds_needle(json_text, _NEEDLES)


def _text_may_hold(text: str) -> bool:
    return _holds_needle(text, _TEXT_NEEDLES)


def redact_text(text: str, extra: tuple[str, ...] = ()) -> str:
    """Replace anything that looks like key material (and the given literal secrets); URLs
    lose their user info and secret query values."""
    for secret in extra:
        if secret:
            text = text.replace(secret, REDACTED)
    if not _text_may_hold(text):
        return text
    return scrub_urls(_SECRET_PATTERNS.sub(REDACTED, text))


def _masked(name: str, value: Any) -> bool:
    low = name.lower()
    if is_secret_name(low):
        return True
    return (
        low in _AMBIGUOUS_NAMES
        and isinstance(value, str)
        and _CREDENTIAL_SHAPED.fullmatch(value.strip()) is not None
    )


def redact_secrets(value: Any, extra: tuple[str, ...] = ()) -> Any:
    """Recursively redact secrets in JSON-like data: string contents, mapping keys, and the
    values of entries named like credentials."""
    if isinstance(value, str):
        return redact_text(value, extra)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if isinstance(k, str):
                out[redact_text(k, extra)] = REDACTED if _masked(k, v) else redact_secrets(v, extra)
            else:
                out[k] = redact_secrets(v, extra)
        return out
    if isinstance(value, list | tuple):
        return [redact_secrets(v, extra) for v in value]
    return value


def _redact_field(value: Any, dumps: Callable[[Any], bytes]) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact_text(value)
    raw = dumps(value)
    if not may_hold_secrets(raw):
        return orjson.Fragment(raw)  # serialised once: the record's dumps embeds these bytes
    return redact_secrets(orjson.loads(raw))


def redacted_record_json(record: dict[str, Any], dumps: Callable[[Any], bytes]) -> bytes:
    """``dumps(record)`` of a span record with its content fields redacted; identity and
    measurement fields are left alone, unscanned. Each content field is serialised once and
    embedded as those bytes when clean (``record`` is changed in place)."""
    data = record.get("data")
    for key, value in record.items():
        if key not in _RECORD_IDENTITY and key != "data":
            record[key] = _redact_field(value, dumps)
    if isinstance(data, dict):
        for key, value in data.items():
            if key not in _DATA_IDENTITY:
                data[key] = _redact_field(value, dumps)
    return dumps(record)


def redact_response(response: VoiceResponse) -> VoiceResponse:
    """A voice's response with key material taken out of its text and parsed value (the same
    object when there is nothing to take out, the common case)."""
    text, parsed = response.text, response.parsed
    clean_text = redact_text(text) if isinstance(text, str) else text
    clean_parsed = parsed
    if parsed is not None:
        raw = orjson.dumps(parsed, default=str, option=orjson.OPT_NON_STR_KEYS)
        if may_hold_secrets(raw):
            plain = orjson.loads(raw)
            redacted = redact_secrets(plain)
            clean_parsed = parsed if redacted == plain else redacted
    if clean_text == text and clean_parsed is parsed:
        return response
    # ``raw`` (the provider's payload) holds what was taken out: it goes too.
    return dataclasses.replace(response, text=clean_text, parsed=clean_parsed, raw=None)
