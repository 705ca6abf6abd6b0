"""Wire-format tests for OpenAICompatVoice on payloads shaped as the chat completions API
reference documents them (response object, chunk object, error envelope)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from _wire import FAKE_KEY, Recorder, json_response, sse, sse_response

from ai_orchestration.context import Message, ToolCall
from ai_orchestration.errors import BadRequestError, MalformedResponseError
from ai_orchestration.voices import ToolSpec, VoiceRequest, VoiceSettings
from ai_orchestration.voices.openai_compat import OpenAICompatOptions, OpenAICompatVoice


def completion(content: str | None = "Hello there!", **extra: object) -> dict[str, object]:
    message: dict[str, object] = {"role": "assistant", "content": content, "refusal": None}
    message.update(extra)
    return {
        "id": "chatcmpl-123",
        "object": "chat.completion",
        "created": 1677652288,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_44709d6fcb",
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if "tool_calls" in extra else "stop",
            }
        ],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500},
    }


def chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
    return {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1694268190,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_44709d6fcb",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def voice(rec: Recorder, **kwargs: object) -> OpenAICompatVoice:
    return OpenAICompatVoice("gpt-4o-mini", api_key=FAKE_KEY, transport=rec.transport, **kwargs)  # type: ignore[arg-type]


async def test_request_body_and_headers() -> None:
    rec = Recorder(json_response(completion()))
    request = VoiceRequest(
        messages=(Message("user", "Hi"), Message("assistant", "Hello"), Message("user", "Again")),
        instructions="Be brief.",
        settings=VoiceSettings(temperature=0.2, max_tokens=50, seed=7, stop=("\n",)),
    )
    await voice(rec).respond(request)
    req = rec.last
    assert str(req.url) == "https://api.openai.com/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {FAKE_KEY}"
    assert req.headers["content-type"] == "application/json"
    assert rec.body() == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Again"},
        ],
        "temperature": 0.2,
        "max_tokens": 50,
        "seed": 7,
        "stop": ["\n"],
    }


async def test_voice_defaults_fill_unset_request_settings() -> None:
    rec = Recorder(json_response(completion()))
    v = voice(rec, settings=VoiceSettings(temperature=0.9, max_tokens=10))
    await v.respond(VoiceRequest.from_prompt("x", settings=VoiceSettings(temperature=0.0)))
    assert rec.body()["temperature"] == 0.0
    assert rec.body()["max_tokens"] == 10


async def test_response_parsed_with_usage_and_cost() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.02)
        return json_response(completion())

    rec = Recorder(slow)
    resp = await voice(rec).respond(VoiceRequest.from_prompt("Hi"))
    assert resp.text == "Hello there!"
    assert resp.model == "gpt-4o-mini-2024-07-18"
    assert resp.finish_reason == "stop"
    assert (resp.usage.input_tokens, resp.usage.output_tokens, resp.usage.calls) == (1000, 500, 1)
    # gpt-4o-mini: $0.15 / $0.60 per million tokens
    assert resp.usage.cost_usd == pytest.approx(1000 * 0.15e-6 + 500 * 0.60e-6)
    assert resp.raw["id"] == "chatcmpl-123"
    assert 0.015 <= resp.latency_s < 5  # the 20 ms the server took is in it


async def test_structured_output_json_schema() -> None:
    schema = {
        "title": "City info",
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
    }
    rec = Recorder(json_response(completion('{"city": "Paris", "population": 2102650}')))
    resp = await voice(rec).respond(VoiceRequest.from_prompt("Paris?", response_schema=schema))
    assert rec.body()["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "City_info", "schema": schema, "strict": False},
    }
    assert resp.parsed == {"city": "Paris", "population": 2102650}


async def test_structured_output_json_object_mode_for_llama_cpp_python() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    rec = Recorder(json_response(completion('{"a": 1}')))
    v = voice(rec, options=OpenAICompatOptions(structured_output="json_object"))
    resp = await v.respond(VoiceRequest.from_prompt("x", response_schema=schema))
    assert rec.body()["response_format"] == {"type": "json_object", "schema": schema}
    assert resp.parsed == {"a": 1}


async def test_structured_output_not_json_is_malformed() -> None:
    rec = Recorder(json_response(completion("Sure! Here it is: {city")))
    with pytest.raises(MalformedResponseError, match="not valid JSON"):
        await voice(rec).respond(VoiceRequest.from_prompt("x", response_schema={"type": "object"}))


async def test_choices_ask_for_an_enum_and_return_the_choice() -> None:
    rec = Recorder(json_response(completion('{"answer": "Lyon"}')))
    resp = await voice(rec).respond(VoiceRequest.from_prompt("?", choices=("Paris", "Lyon")))
    assert rec.body()["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "choice",
            "schema": {
                "type": "object",
                "properties": {"answer": {"type": "string", "enum": ["Paris", "Lyon"]}},
                "required": ["answer"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    }
    assert resp.text == "Lyon"
    assert resp.parsed is None


async def test_choices_accept_plain_text_answer_case_insensitively() -> None:
    rec = Recorder(json_response(completion(" paris ")))
    resp = await voice(rec).respond(VoiceRequest.from_prompt("?", choices=("Paris", "Lyon")))
    assert resp.text == "Paris"


async def test_choice_outside_the_list_is_malformed() -> None:
    rec = Recorder(json_response(completion('{"answer": "Berlin"}')))
    with pytest.raises(MalformedResponseError, match="not one of the choices"):
        await voice(rec).respond(VoiceRequest.from_prompt("?", choices=("Paris", "Lyon")))


async def test_choices_and_schema_together_are_rejected() -> None:
    rec = Recorder(json_response(completion()))
    req = VoiceRequest.from_prompt("?", choices=("a",), response_schema={"type": "object"})
    with pytest.raises(BadRequestError, match="not both"):
        await voice(rec).respond(req)
    assert rec.requests == []


async def test_tools_sent_and_tool_calls_parsed() -> None:
    params = {"type": "object", "properties": {"location": {"type": "string"}}}
    tool_calls = [
        {
            "id": "call_abc123",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"location": "Boston"}'},
        }
    ]
    rec = Recorder(json_response(completion(None, tool_calls=tool_calls)))
    history = (
        Message("user", "Weather?"),
        Message("assistant", "", tool_calls=(ToolCall("call_0", "get_time", "{}"),)),
        Message("tool", "12:00", tool_call_id="call_0"),
    )
    req = VoiceRequest(
        messages=history, tools=(ToolSpec("get_weather", "Weather for a city", params),)
    )
    resp = await voice(rec).respond(req)
    body = rec.body()
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": params,
            },
        }
    ]
    assert body["messages"][1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_0",
                "type": "function",
                "function": {"name": "get_time", "arguments": "{}"},
            }
        ],
    }
    assert body["messages"][2] == {"role": "tool", "tool_call_id": "call_0", "content": "12:00"}
    assert resp.text == ""
    assert resp.finish_reason == "tool_calls"
    assert resp.tool_calls == (ToolCall("call_abc123", "get_weather", '{"location": "Boston"}'),)


async def test_refusal_is_reported_as_text() -> None:
    rec = Recorder(json_response(completion(None, refusal="I can't help with that.")))
    resp = await voice(rec).respond(
        VoiceRequest.from_prompt("x", response_schema={"type": "object"})
    )
    assert (resp.text, resp.finish_reason, resp.parsed) == (
        "I can't help with that.",
        "refusal",
        None,
    )


async def test_streaming_deltas_then_usage() -> None:
    body = sse(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}),
            chunk({}, "stop"),
            {**chunk({}), "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}},
            "[DONE]",
        ]
    )
    rec = Recorder(sse_response(body))
    deltas = [d async for d in voice(rec).stream(VoiceRequest.from_prompt("Hi"))]
    assert rec.body()["stream"] is True
    assert rec.body()["stream_options"] == {"include_usage": True}
    assert [d.text for d in deltas] == ["Hel", "lo", ""]
    final = deltas[-1]
    assert final.finish_reason == "stop"
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (9, 2)


async def test_streaming_without_usage_still_finishes() -> None:
    rec = Recorder(sse_response(sse([chunk({"content": "Hi"}, "stop"), "[DONE]"])))
    v = voice(rec, options=OpenAICompatOptions(stream_usage=False))
    deltas = [d async for d in v.stream(VoiceRequest.from_prompt("Hi"))]
    assert "stream_options" not in rec.body()
    assert [d.text for d in deltas] == ["Hi", ""]
    assert deltas[-1].usage is not None and deltas[-1].usage.calls == 1


async def test_local_server_needs_no_key_and_is_free(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    rec = Recorder(json_response(completion()))
    v = OpenAICompatVoice("gemma", base_url="http://127.0.0.1:8080/v1", transport=rec.transport)
    resp = await v.respond(VoiceRequest.from_prompt("Hi"))
    assert str(rec.last.url) == "http://127.0.0.1:8080/v1/chat/completions"
    assert "authorization" not in rec.last.headers  # the OpenAI key never goes elsewhere
    assert resp.usage.cost_usd == 0.0


async def test_explicit_key_env_for_other_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_KEY", "token-abc123")
    rec = Recorder(json_response(completion()))
    v = OpenAICompatVoice(
        "m", base_url="http://10.0.0.5:8000/v1", api_key_env="VLLM_KEY", transport=rec.transport
    )
    await v.respond(VoiceRequest.from_prompt("Hi"))
    assert rec.last.headers["authorization"] == "Bearer token-abc123"


async def test_key_read_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    rec = Recorder(json_response(completion()))
    await OpenAICompatVoice("gpt-4o-mini", transport=rec.transport).respond(
        VoiceRequest.from_prompt("Hi")
    )
    assert rec.last.headers["authorization"] == f"Bearer {FAKE_KEY}"


async def test_extra_headers_and_max_completion_tokens() -> None:
    rec = Recorder(json_response(completion()))
    opts = OpenAICompatOptions(
        max_tokens_param="max_completion_tokens", headers={"OpenAI-Organization": "org-1"}
    )
    await voice(rec, options=opts).respond(
        VoiceRequest.from_prompt("Hi", settings=VoiceSettings(max_tokens=5))
    )
    assert rec.body()["max_completion_tokens"] == 5
    assert rec.last.headers["openai-organization"] == "org-1"


def test_repr_and_name() -> None:
    v = OpenAICompatVoice("gpt-4o-mini", api_key=FAKE_KEY, name="judge")
    assert v.name == "judge"
    assert repr(v) == (
        "OpenAICompatVoice(name='judge', model='gpt-4o-mini', base_url='https://api.openai.com/v1')"
    )
