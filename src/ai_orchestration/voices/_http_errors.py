"""Provider failures as typed errors: HTTP statuses, error envelopes, transport errors, bodies.

Every adapter maps a failure the same way: the provider's own message (keys scrubbed) in one
``VoiceError`` subclass the reliability layer can act on — rate limited (with Retry-After),
unavailable, authentication, bad request, timeout, malformed response. Envelopes of OpenAI,
Anthropic, Gemini, llama.cpp, Ollama and FastAPI are recognised.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from ai_orchestration.errors import (
    AuthenticationError,
    BadRequestError,
    MalformedResponseError,
    ProviderUnavailableError,
    RateLimitedError,
    VoiceError,
    VoiceTimeoutError,
)
from ai_orchestration.tracing._redact import redact_text
from ai_orchestration.voices._structured import shorten

__all__ = [
    "decode_json",
    "error_fields",
    "error_for_payload",
    "error_for_status",
    "is_error_envelope",
    "parse_retry_after",
    "transport_error",
]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Error "type"/"code"/"status"/"reason" words of OpenAI, Anthropic, Gemini and llama.cpp.
_AUTH_KINDS = _words(
    "authentication_error permission_error invalid_api_key unauthenticated permission_denied "
    "api_key_invalid"
)
_RATE_KINDS = _words("rate_limit_error rate_limit_exceeded resource_exhausted")
_BUSY_KINDS = _words(
    "overloaded_error api_error server_error unavailable internal service_unavailable"
)
_BAD_KINDS = _words(
    "invalid_request_error not_found_error request_too_large invalid_argument not_found "
    "model_not_found failed_precondition"
)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")


def _looks_html(body: bytes) -> bool:
    head = body[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


def _html_summary(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    title = _TITLE.search(text)
    shown = title.group(1) if title else _TAGS.sub(" ", text)
    return f"an HTML page ({shorten(shown)})"


def error_fields(payload: Any) -> tuple[str, list[str]]:
    """The provider's message and its error-kind words, from any known error envelope.

    OpenAI/llama.cpp ``{"error": {"message", "type", "code"}}``, Anthropic ``{"type": "error",
    "error": {"type", "message"}}``, Gemini ``{"error": {"code", "message", "status",
    "details": [{"reason"}]}}``, Ollama ``{"error": "..."}``, FastAPI ``{"detail": ...}``.
    """
    if isinstance(payload, list) and payload:  # Gemini streams may wrap errors in a list
        payload = payload[0]
    if not isinstance(payload, dict):
        return "", []
    err = payload.get("error", payload.get("detail"))
    if isinstance(err, str):
        return err, []
    if not isinstance(err, dict):
        return (str(err) if err else ""), []
    kinds = [str(err[k]) for k in ("type", "code", "status") if isinstance(err.get(k), str)]
    for detail in err.get("details") or ():
        if isinstance(detail, dict) and isinstance(detail.get("reason"), str):
            kinds.append(detail["reason"])
    return str(err.get("message", "")), kinds


def _error_class(status: int | None, kinds: list[str]) -> type[VoiceError]:
    lowered = {k.lower() for k in kinds}
    if status == 429 or lowered & _RATE_KINDS:
        return RateLimitedError
    if status in (401, 403) or lowered & _AUTH_KINDS:
        return AuthenticationError
    if status == 408:
        return VoiceTimeoutError
    if (status is not None and status >= 500) or lowered & _BUSY_KINDS:
        return ProviderUnavailableError
    if status is not None or lowered & _BAD_KINDS:
        return BadRequestError
    return ProviderUnavailableError


def _make_error(
    cls: type[VoiceError],
    message: str,
    *,
    voice: str,
    status: int | None,
    retry_after: float | None = None,
) -> VoiceError:
    if cls is RateLimitedError:
        return RateLimitedError(message, voice=voice, status=status, retry_after=retry_after)
    return cls(message, voice=voice, status=status)


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, or ``Retry-After`` (seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_for_status(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    voice: str,
    provider: str,
    secrets: tuple[str, ...] = (),
) -> VoiceError:
    """The typed error for an HTTP error response, carrying the provider's own message."""
    kinds: list[str] = []
    try:
        message, kinds = error_fields(orjson.loads(body))
        message = message or shorten(body.decode("utf-8", "replace"))
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace")
        message = _html_summary(body) if _looks_html(body) else text or "(empty body)"
    message = redact_text(shorten(f"HTTP {status} from {provider}: {message}"), secrets)
    cls = _error_class(status, kinds)
    retry = parse_retry_after(headers) if cls is RateLimitedError else None
    return _make_error(cls, message, voice=voice, status=status, retry_after=retry)


def error_for_payload(
    payload: Any, *, voice: str, provider: str, secrets: tuple[str, ...] = ()
) -> VoiceError:
    """The typed error for an error object found inside a 200 body or a stream event."""
    message, kinds = error_fields(payload)
    message = redact_text(shorten(f"{provider} error: {message or payload!r}"), secrets)
    status = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        code = payload["error"].get("code")
        status = code if isinstance(code, int) else None
    return _make_error(_error_class(status, kinds), message, voice=voice, status=status)


def transport_error(
    exc: Exception, *, voice: str, where: str, secrets: tuple[str, ...]
) -> VoiceError:
    """The typed error for an httpx failure or a timeout while talking to ``where``."""
    detail = redact_text(shorten(f"{type(exc).__name__}: {exc}"), secrets)
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return VoiceTimeoutError(f"no answer from {where} in time ({detail})", voice=voice)
    if isinstance(exc, httpx.DecodingError):
        return MalformedResponseError(f"undecodable body from {where} ({detail})", voice=voice)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return BadRequestError(f"bad URL for {where} ({detail})", voice=voice)
    if isinstance(exc, httpx.ConnectError):
        return ProviderUnavailableError(f"cannot connect to {where} ({detail})", voice=voice)
    return ProviderUnavailableError(f"connection to {where} failed ({detail})", voice=voice)


def decode_json(body: bytes, *, voice: str, provider: str, secrets: tuple[str, ...]) -> Any:
    """The JSON in ``body``, else ``MalformedResponseError`` saying what came instead."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if _looks_html(body):
            what = _html_summary(body)
        elif not body.strip():
            what = "an empty body"
        else:
            snippet = shorten(body[:120].decode("utf-8", "replace"))
            what = f"invalid JSON ({exc.msg} at {exc.pos}: {snippet})"
        message = redact_text(f"{provider} answered {what}", secrets)
        raise MalformedResponseError(message, voice=voice) from None


def is_error_envelope(payload: Any) -> bool:
    """An error object where an answer was expected (a 200 body or a stream event)."""
    if isinstance(payload, list) and payload:  # Gemini streams may wrap errors in a list
        payload = payload[0]
    return isinstance(payload, dict) and ("error" in payload or payload.get("type") == "error")
