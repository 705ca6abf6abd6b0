"""Bad input from providers: every failure becomes one typed error carrying the provider's
message, for every adapter. Error bodies are shaped as each provider documents them."""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from _wire import FAKE_KEY, PROVIDERS, Recorder, json_response, sse, sse_response

from ai_orchestration.errors import (
    AuthenticationError,
    BadRequestError,
    MalformedResponseError,
    ProviderUnavailableError,
    RateLimitedError,
    VoiceError,
    VoiceTimeoutError,
)
from ai_orchestration.voices import VoiceRequest
from ai_orchestration.voices._http import SseDecoder, SseEvent
from ai_orchestration.voices._http_errors import parse_retry_after
from ai_orchestration.voices.openai_compat import OpenAICompatVoice


def openai_error(message: str, type_: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def anthropic_error(type_: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": type_, "message": message}}


def gemini_error(code: int, status: str, message: str, reason: str | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message, "status": status}
    if reason:
        err["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}]
    return {"error": err}


# (provider, status, body, headers, expected class, expected text in the message)
CASES = [
    (
        "openai",
        401,
        openai_error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
        {},
        AuthenticationError,
        "Incorrect API key",
    ),
    (
        "openai",
        404,
        openai_error(
            "The model `gpt-9` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
        ),
        {},
        BadRequestError,
        "does not exist",
    ),
    (
        "openai",
        400,
        openai_error("Invalid value for 'temperature'.", "invalid_request_error"),
        {},
        BadRequestError,
        "temperature",
    ),
    (
        "openai",
        422,
        {"detail": [{"loc": ["body", "messages"], "msg": "field required"}]},
        {},
        BadRequestError,
        "field required",
    ),
    (
        "openai",
        429,
        openai_error("Rate limit reached for gpt-4o-mini.", "requests", "rate_limit_exceeded"),
        {"retry-after": "7"},
        RateLimitedError,
        "Rate limit reached",
    ),
    (
        "openai",
        500,
        openai_error("The server had an error.", "server_error"),
        {},
        ProviderUnavailableError,
        "server had an error",
    ),
    (
        "openai",
        503,
        openai_error("The engine is currently overloaded.", "server_error"),
        {},
        ProviderUnavailableError,
        "overloaded",
    ),
    (
        "openai",
        404,
        {"error": "model 'llama9' not found, try pulling it first"},
        {},
        BadRequestError,
        "llama9",
    ),  # Ollama's envelope
    (
        "anthropic",
        401,
        anthropic_error("authentication_error", "invalid x-api-key"),
        {},
        AuthenticationError,
        "invalid x-api-key",
    ),
    (
        "anthropic",
        403,
        anthropic_error("permission_error", "Your API key lacks permission."),
        {},
        AuthenticationError,
        "lacks permission",
    ),
    (
        "anthropic",
        404,
        anthropic_error("not_found_error", "model: claude-9"),
        {},
        BadRequestError,
        "claude-9",
    ),
    (
        "anthropic",
        413,
        anthropic_error("request_too_large", "Request exceeds the maximum size"),
        {},
        BadRequestError,
        "maximum size",
    ),
    (
        "anthropic",
        429,
        anthropic_error("rate_limit_error", "Number of requests exceeded."),
        {},
        RateLimitedError,
        "requests exceeded",
    ),
    (
        "anthropic",
        529,
        anthropic_error("overloaded_error", "Overloaded"),
        {},
        ProviderUnavailableError,
        "Overloaded",
    ),
    (
        "gemini",
        400,
        gemini_error(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            "API_KEY_INVALID",
        ),
        {},
        AuthenticationError,
        "API key not valid",
    ),
    (
        "gemini",
        404,
        gemini_error(404, "NOT_FOUND", "models/gemini-9 is not found."),
        {},
        BadRequestError,
        "gemini-9",
    ),
    (
        "gemini",
        429,
        gemini_error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted."),
        {},
        RateLimitedError,
        "exhausted",
    ),
    (
        "gemini",
        503,
        gemini_error(503, "UNAVAILABLE", "The model is overloaded."),
        {},
        ProviderUnavailableError,
        "overloaded",
    ),
]


@pytest.mark.parametrize(("provider", "status", "body", "headers", "cls", "text"), CASES)
async def test_status_maps_to_typed_error(
    provider: str, status: int, body: Any, headers: dict[str, str], cls: type, text: str
) -> None:
    rec = Recorder(httpx.Response(status, json=body, headers=headers))
    with pytest.raises(VoiceError) as info:
        await PROVIDERS[provider](rec.transport).respond(VoiceRequest.from_prompt("hi"))
    err = info.value
    assert type(err) is cls
    assert err.status == status
    assert text in str(err)
    assert f"HTTP {status}" in str(err)


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
async def test_429_retry_after_seconds(provider: str) -> None:
    rec = Recorder(json_response({"error": {"message": "slow down"}}, 429, **{"retry-after": "12"}))
    with pytest.raises(RateLimitedError) as info:
        await PROVIDERS[provider](rec.transport).respond(VoiceRequest.from_prompt("hi"))
    assert info.value.retry_after == 12.0
    assert info.value.retryable


async def test_429_without_retry_after() -> None:
    rec = Recorder(json_response(openai_error("Rate limit", "requests"), 429))
    with pytest.raises(RateLimitedError) as info:
        await PROVIDERS["openai"](rec.transport).respond(VoiceRequest.from_prompt("hi"))
    assert info.value.retry_after is None


def test_retry_after_forms() -> None:
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now) == 30.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "not a date"}) is None
    assert parse_retry_after({"retry-after": email.utils.formatdate(now - 60)}, now=now) == 0.0
    assert parse_retry_after({}) is None


HTML_502 = b"""<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>
<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"""


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
async def test_html_error_page(provider: str) -> None:
    rec = Recorder(httpx.Response(502, content=HTML_502, headers={"content-type": "text/html"}))
    with pytest.raises(ProviderUnavailableError, match="HTML page \\(502 Bad Gateway\\)"):
        await PROVIDERS[provider](rec.transport).respond(VoiceRequest.from_prompt("hi"))


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
async def test_html_page_with_200_is_malformed(provider: str) -> None:
    rec = Recorder(httpx.Response(200, content=HTML_502.replace(b"502 Bad Gateway", b"Login")))
    with pytest.raises(MalformedResponseError, match="HTML page \\(Login\\)"):
        await PROVIDERS[provider](rec.transport).respond(VoiceRequest.from_prompt("hi"))


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
async def test_truncated_json(provider: str) -> None:
    rec = Recorder(httpx.Response(200, content=b'{"id": "x", "choices": [{"index": 0, "mess'))
    with pytest.raises(MalformedResponseError, match="invalid JSON"):
        await PROVIDERS[provider](rec.transport).respond(VoiceRequest.from_prompt("hi"))


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
async def test_empty_body(provider: str) -> None:
    rec = Recorder(httpx.Response(200, content=b""))
    with pytest.raises(MalformedResponseError, match="empty body"):
        await PROVIDERS[provider](rec.transport).respond(VoiceRequest.from_prompt("hi"))


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
async def test_unexpected_shape(provider: str) -> None:
    rec = Recorder(json_response({"unexpected": True}))
    with pytest.raises(MalformedResponseError):
        await PROVIDERS[provider](rec.transport).respond(VoiceRequest.from_prompt("hi"))


async def test_empty_choice_list() -> None:
    rec = Recorder(json_response({"id": "x", "object": "chat.completion", "choices": []}))
    with pytest.raises(MalformedResponseError, match="empty choice list"):
        await PROVIDERS["openai"](rec.transport).respond(VoiceRequest.from_prompt("hi"))


async def test_error_object_inside_200() -> None:
    rec = Recorder(json_response(openai_error("Context length exceeded", "invalid_request_error")))
    with pytest.raises(BadRequestError, match="Context length"):
        await PROVIDERS["openai"](rec.transport).respond(VoiceRequest.from_prompt("hi"))


@pytest.mark.parametrize(
    ("exc", "cls", "text"),
    [
        (
            httpx.ConnectError("[Errno 111] Connection refused"),
            ProviderUnavailableError,
            "cannot connect",
        ),
        (httpx.ConnectTimeout("timed out"), VoiceTimeoutError, "in time"),
        (httpx.ReadTimeout("timed out"), VoiceTimeoutError, "in time"),
        (
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            ProviderUnavailableError,
            "disconnected",
        ),
        (httpx.ReadError("connection reset"), ProviderUnavailableError, "reset"),
    ],
)
@pytest.mark.parametrize("provider", sorted(PROVIDERS))
async def test_transport_errors(provider: str, exc: Exception, cls: type, text: str) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(VoiceError) as info:
        await PROVIDERS[provider](Recorder(fail).transport).respond(VoiceRequest.from_prompt("hi"))
    assert type(info.value) is cls
    assert text in str(info.value)


async def test_call_never_hangs_past_its_timeout() -> None:
    async def stall(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    v = OpenAICompatVoice("m", api_key=FAKE_KEY, timeout=0.01, transport=Recorder(stall).transport)
    with pytest.raises(VoiceTimeoutError):
        await v.respond(VoiceRequest.from_prompt("hi"))


async def test_request_timeout_setting_wins() -> None:
    from ai_orchestration.voices import VoiceSettings

    async def stall(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    v = OpenAICompatVoice("m", api_key=FAKE_KEY, timeout=3600, transport=Recorder(stall).transport)
    req = VoiceRequest.from_prompt("hi", settings=VoiceSettings(timeout=0.01))
    with pytest.raises(VoiceTimeoutError):
        await v.respond(req)


# --- streams ------------------------------------------------------------------------------


async def _drain(voice: Any) -> list[Any]:
    return [d async for d in voice.stream(VoiceRequest.from_prompt("hi"))]


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
async def test_stream_cut_mid_event(provider: str) -> None:
    body = b'data: {"choices": [{"index": 0, "delta": {"content": "Hel'  # no blank line, cut
    rec = Recorder(sse_response(body))
    with pytest.raises(MalformedResponseError):
        await _drain(PROVIDERS[provider](rec.transport))


async def test_stream_cut_mid_json_event() -> None:
    rec = Recorder(sse_response(b'data: {"choices": [{"index": 0, "del\n\n'))
    with pytest.raises(MalformedResponseError, match="invalid JSON"):
        await _drain(PROVIDERS["openai"](rec.transport))


async def test_openai_stream_ending_without_finish_is_malformed() -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}
    rec = Recorder(sse_response(sse([chunk])))
    with pytest.raises(MalformedResponseError, match="before the answer was complete"):
        await _drain(PROVIDERS["openai"](rec.transport))


async def test_openai_stream_error_chunk() -> None:
    rec = Recorder(
        sse_response(sse([openai_error("Rate limit reached", "requests", "rate_limit_exceeded")]))
    )
    with pytest.raises(RateLimitedError, match="Rate limit reached"):
        await _drain(PROVIDERS["openai"](rec.transport))


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
async def test_stream_http_error_status(provider: str) -> None:
    rec = Recorder(
        json_response({"error": {"message": "bad key", "type": "authentication_error"}}, 401)
    )
    with pytest.raises(AuthenticationError, match="bad key"):
        await _drain(PROVIDERS[provider](rec.transport))


async def test_stream_answered_with_json_error_instead_of_events() -> None:
    rec = Recorder(json_response(openai_error("model overloaded", "server_error")))
    with pytest.raises(ProviderUnavailableError, match="model overloaded"):
        await _drain(PROVIDERS["openai"](rec.transport))


async def test_stream_answered_with_html() -> None:
    rec = Recorder(httpx.Response(200, content=HTML_502, headers={"content-type": "text/html"}))
    with pytest.raises(MalformedResponseError, match="HTML page"):
        await _drain(PROVIDERS["openai"](rec.transport))


class _CutStream(httpx.AsyncByteStream):
    """Sends one event, then the connection drops."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'data: {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}\n\n'
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


async def test_stream_connection_dropped() -> None:
    resp = httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=_CutStream())
    seen: list[str] = []
    with pytest.raises(ProviderUnavailableError, match="peer closed"):
        async for d in PROVIDERS["openai"](Recorder(resp).transport).stream(
            VoiceRequest.from_prompt("hi")
        ):
            seen.append(d.text)
    assert seen == ["Hi"]


async def test_stream_read_stall_times_out() -> None:
    class Stall(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b'data: {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}\n\n'
            await asyncio.sleep(3600)

    resp = httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Stall())
    v = OpenAICompatVoice("m", api_key=FAKE_KEY, timeout=0.05, transport=Recorder(resp).transport)
    with pytest.raises(VoiceTimeoutError):
        async with asyncio.timeout(5):  # a safety net for the test itself only
            await _drain(v)


# --- the SSE decoder ----------------------------------------------------------------------


def test_sse_decoder_follows_the_spec() -> None:
    d = SseDecoder()
    lines = [
        ": comment",
        "event: message_start",
        'data: {"a":',
        "data:1}",
        "id: 7",
        "",
        "",
        "data: [DONE]",
        "",
    ]
    events = [e for e in map(d.feed, lines) if e is not None]
    assert events == [SseEvent("message_start", '{"a":\n1}'), SseEvent("message", "[DONE]")]
    assert not d.pending
    d.feed("data: half")
    assert d.pending
