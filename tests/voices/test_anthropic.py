"""Wire-format tests for AnthropicVoice on payloads shaped as the Messages API documents them
(message object, streaming event sequence, error envelope)."""

from __future__ import annotations

import pytest
from _wire import FAKE_KEY, Recorder, json_response, sse, sse_response

from ai_orchestration.context import Message, ToolCall
from ai_orchestration.errors import MalformedResponseError, ProviderUnavailableError
from ai_orchestration.voices import ToolSpec, VoiceRequest, VoiceSettings
from ai_orchestration.voices.anthropic import AnthropicVoice


def message(*content: dict[str, object], stop: str = "end_turn") -> dict[str, object]:
    return {
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-20250514",
        "content": list(content) or [{"type": "text", "text": "Hi! My name is Claude."}],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 2095, "output_tokens": 503},
    }


def voice(rec: Recorder, **kwargs: object) -> AnthropicVoice:
    return AnthropicVoice(
        "claude-sonnet-4-20250514",
        api_key=FAKE_KEY,
        transport=rec.transport,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_request_body_and_headers() -> None:
    rec = Recorder(json_response(message()))
    req = VoiceRequest(
        messages=(Message("system", "Use French."), Message("user", "Hello")),
        instructions="Be brief.",
        settings=VoiceSettings(temperature=0.5, seed=3, stop=("END",)),
    )
    await voice(rec).respond(req)
    assert str(rec.last.url) == "https://api.anthropic.com/v1/messages"
    assert rec.last.headers["x-api-key"] == FAKE_KEY
    assert rec.last.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in rec.last.headers
    assert rec.body() == {
        "model": "claude-sonnet-4-20250514",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hello"}],
        "system": "Be brief.\n\nUse French.",
        "temperature": 0.5,
        "stop_sequences": ["END"],
    }


async def test_response_parsed_with_usage_and_cost() -> None:
    rec = Recorder(json_response(message()))
    resp = await voice(rec).respond(VoiceRequest.from_prompt("Hello"))
    assert resp.text == "Hi! My name is Claude."
    assert resp.finish_reason == "end_turn"
    assert resp.model == "claude-sonnet-4-20250514"
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (2095, 503)
    # Claude Sonnet 4: $3 / $15 per million tokens
    assert resp.usage.cost_usd == pytest.approx(2095 * 3e-6 + 503 * 15e-6)


async def test_structured_output_via_forced_tool() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    tool_use = {
        "type": "tool_use",
        "id": "toolu_01A09q90qw90lq917835lq9",
        "name": "structured_answer",
        "input": {"city": "Paris"},
    }
    rec = Recorder(json_response(message(tool_use, stop="tool_use")))
    resp = await voice(rec).respond(VoiceRequest.from_prompt("Capital?", response_schema=schema))
    body = rec.body()
    assert body["tools"] == [
        {
            "name": "structured_answer",
            "description": "Give the final answer in the required structure.",
            "input_schema": schema,
        }
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "structured_answer"}
    assert resp.parsed == {"city": "Paris"}
    assert resp.text == '{"city":"Paris"}'
    assert resp.tool_calls == ()


async def test_non_object_schema_is_wrapped_and_unwrapped() -> None:
    tool_use = {"type": "tool_use", "id": "t", "name": "structured_answer", "input": {"value": 42}}
    rec = Recorder(json_response(message(tool_use, stop="tool_use")))
    req = VoiceRequest.from_prompt("6*7?", response_schema={"type": "integer"})
    resp = await voice(rec).respond(req)
    assert rec.body()["tools"][0]["input_schema"] == {
        "type": "object",
        "properties": {"value": {"type": "integer"}},
        "required": ["value"],
    }
    assert resp.parsed == 42


async def test_choices_via_forced_tool_enum() -> None:
    tool_use = {
        "type": "tool_use",
        "id": "t",
        "name": "structured_answer",
        "input": {"answer": "B"},
    }
    rec = Recorder(json_response(message(tool_use, stop="tool_use")))
    resp = await voice(rec).respond(VoiceRequest.from_prompt("?", choices=("A", "B")))
    schema = rec.body()["tools"][0]["input_schema"]
    assert schema["properties"]["answer"]["enum"] == ["A", "B"]
    assert resp.text == "B"


async def test_user_tools_and_tool_history() -> None:
    params = {"type": "object", "properties": {"location": {"type": "string"}}}
    tool_use = {
        "type": "tool_use",
        "id": "toolu_01",
        "name": "get_weather",
        "input": {"location": "San Francisco, CA"},
    }
    rec = Recorder(
        json_response(message({"type": "text", "text": "Let me check."}, tool_use, stop="tool_use"))
    )
    history = (
        Message("user", "Weather?"),
        Message("assistant", "Checking.", tool_calls=(ToolCall("toolu_00", "get_time", "{}"),)),
        Message("tool", "12:00", tool_call_id="toolu_00"),
    )
    req = VoiceRequest(messages=history, tools=(ToolSpec("get_weather", "Weather", params),))
    resp = await voice(rec).respond(req)
    body = rec.body()
    assert body["tools"] == [
        {"name": "get_weather", "description": "Weather", "input_schema": params}
    ]
    assert "tool_choice" not in body
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_00", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_00", "content": "12:00"}],
        },
    ]
    assert resp.text == "Let me check."
    assert resp.tool_calls == (
        ToolCall("toolu_01", "get_weather", '{"location":"San Francisco, CA"}'),
    )


STREAM = [
    (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "claude-sonnet-4-20250514",
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 25, "output_tokens": 1},
            },
        },
    ),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ),
    ("ping", {"type": "ping"}),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Hello"},
        },
    ),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}},
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 15},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
]


async def test_streaming_events() -> None:
    rec = Recorder(sse_response(sse(STREAM, named=True)))
    deltas = [d async for d in voice(rec).stream(VoiceRequest.from_prompt("Hello"))]
    assert rec.body()["stream"] is True
    assert [d.text for d in deltas] == ["Hello", "!", ""]
    assert deltas[-1].finish_reason == "end_turn"
    assert deltas[-1].usage is not None
    assert (deltas[-1].usage.input_tokens, deltas[-1].usage.output_tokens) == (25, 15)


async def test_stream_error_event_is_typed() -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    rec = Recorder(sse_response(sse([*STREAM[:4], ("error", error)], named=True)))
    with pytest.raises(ProviderUnavailableError, match="Overloaded"):
        [d async for d in voice(rec).stream(VoiceRequest.from_prompt("Hello"))]


async def test_stream_without_message_stop_is_malformed() -> None:
    rec = Recorder(sse_response(sse(STREAM[:5], named=True)))
    with pytest.raises(MalformedResponseError, match="message_stop"):
        [d async for d in voice(rec).stream(VoiceRequest.from_prompt("Hello"))]


def test_repr_has_no_key() -> None:
    v = AnthropicVoice("claude-sonnet-4", api_key=FAKE_KEY)
    assert repr(v) == (
        "AnthropicVoice(name='claude-sonnet-4', model='claude-sonnet-4', "
        "base_url='https://api.anthropic.com/v1')"
    )
