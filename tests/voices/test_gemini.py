"""Wire-format tests for GeminiVoice on payloads shaped as the Gemini API documents them
(GenerateContentResponse, SSE stream of responses, google.rpc error envelope)."""

from __future__ import annotations

import pytest
from _wire import Recorder, json_response, sse, sse_response

from ai_orchestration.context import Message, ToolCall
from ai_orchestration.errors import BadRequestError, MalformedResponseError
from ai_orchestration.voices import ToolSpec, VoiceRequest, VoiceSettings
from ai_orchestration.voices.gemini import GeminiVoice, to_gemini_schema

GOOGLE_KEY = "AIzaSyFAKE-fake_FAKE-fake_FAKE12345"


def generated(*parts: dict[str, object], finish: str = "STOP") -> dict[str, object]:
    return {
        "candidates": [
            {
                "content": {"parts": list(parts) or [{"text": "Hello there"}], "role": "model"},
                "finishReason": finish,
                "index": 0,
                "safetyRatings": [
                    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}
                ],
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 1000,
            "candidatesTokenCount": 2000,
            "totalTokenCount": 3000,
        },
        "modelVersion": "gemini-2.0-flash",
    }


def voice(rec: Recorder) -> GeminiVoice:
    return GeminiVoice("gemini-2.0-flash", api_key=GOOGLE_KEY, transport=rec.transport)


async def test_request_body_headers_and_url() -> None:
    rec = Recorder(json_response(generated()))
    req = VoiceRequest(
        messages=(Message("user", "Hi"), Message("assistant", "Hello"), Message("user", "Why?")),
        instructions="Be brief.",
        settings=VoiceSettings(temperature=0.1, max_tokens=64, seed=5, stop=("\n",)),
    )
    await voice(rec).respond(req)
    url = str(rec.last.url)
    assert url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent"
    )
    assert GOOGLE_KEY not in url
    assert rec.last.headers["x-goog-api-key"] == GOOGLE_KEY
    assert rec.body() == {
        "contents": [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Hello"}]},
            {"role": "user", "parts": [{"text": "Why?"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {
            "temperature": 0.1,
            "maxOutputTokens": 64,
            "seed": 5,
            "stopSequences": ["\n"],
        },
    }


async def test_response_parsed_with_usage_and_cost() -> None:
    rec = Recorder(json_response(generated()))
    resp = await voice(rec).respond(VoiceRequest.from_prompt("Hi"))
    assert resp.text == "Hello there"
    assert resp.finish_reason == "STOP"
    assert resp.model == "gemini-2.0-flash"
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (1000, 2000)
    # gemini-2.0-flash: $0.10 / $0.40 per million tokens
    assert resp.usage.cost_usd == pytest.approx(1000 * 0.10e-6 + 2000 * 0.40e-6)


async def test_structured_output_response_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name"],
        "additionalProperties": False,
    }
    rec = Recorder(json_response(generated({"text": '{"name": "x", "tags": ["a"]}'})))
    resp = await voice(rec).respond(VoiceRequest.from_prompt("?", response_schema=schema))
    assert rec.body()["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseSchema": {
            "type": "OBJECT",
            "properties": {
                "name": {"type": "STRING"},
                "tags": {"type": "ARRAY", "items": {"type": "STRING"}},
            },
            "required": ["name"],
        },
    }
    assert resp.parsed == {"name": "x", "tags": ["a"]}


async def test_choices_use_enum_mime_type() -> None:
    rec = Recorder(json_response(generated({"text": "Lyon"})))
    resp = await voice(rec).respond(VoiceRequest.from_prompt("?", choices=("Paris", "Lyon")))
    assert rec.body()["generationConfig"] == {
        "responseMimeType": "text/x.enum",
        "responseSchema": {"type": "STRING", "enum": ["Paris", "Lyon"]},
    }
    assert resp.text == "Lyon"


async def test_function_calls() -> None:
    params = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    rec = Recorder(json_response(generated(call)))
    history = (
        Message("user", "Weather?"),
        Message("assistant", "", tool_calls=(ToolCall("c0", "get_time", '{"tz": "UTC"}'),)),
        Message("tool", "12:00", tool_call_id="c0"),
    )
    req = VoiceRequest(messages=history, tools=(ToolSpec("get_weather", "Weather", params),))
    resp = await voice(rec).respond(req)
    body = rec.body()
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {"city": {"type": "STRING"}},
                        "required": ["city"],
                    },
                }
            ]
        }
    ]
    assert body["contents"][1:] == [
        {"role": "model", "parts": [{"functionCall": {"name": "get_time", "args": {"tz": "UTC"}}}]},
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "get_time", "response": {"content": "12:00"}}}],
        },
    ]
    assert resp.tool_calls == (ToolCall("call_0", "get_weather", '{"city":"Paris"}'),)


async def test_blocked_prompt_is_bad_request() -> None:
    rec = Recorder(json_response({"promptFeedback": {"blockReason": "SAFETY"}}))
    with pytest.raises(BadRequestError, match="SAFETY"):
        await voice(rec).respond(VoiceRequest.from_prompt("x"))


async def test_no_candidates_is_malformed() -> None:
    rec = Recorder(json_response({"candidates": [], "usageMetadata": {}}))
    with pytest.raises(MalformedResponseError, match="no candidates"):
        await voice(rec).respond(VoiceRequest.from_prompt("x"))


def _chunk(text: str, finish: str | None = None, usage: bool = False) -> dict[str, object]:
    out: dict[str, object] = {
        "candidates": [
            {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
            | ({"finishReason": finish} if finish else {})
        ],
        "modelVersion": "gemini-2.0-flash",
    }
    if usage:
        out["usageMetadata"] = {
            "promptTokenCount": 8,
            "candidatesTokenCount": 3,
            "totalTokenCount": 11,
        }
    return out


async def test_streaming() -> None:
    rec = Recorder(
        sse_response(sse([_chunk("The"), _chunk(" sky"), _chunk(" is blue", "STOP", True)]))
    )
    deltas = [d async for d in voice(rec).stream(VoiceRequest.from_prompt("Sky?"))]
    assert str(rec.last.url).endswith("/models/gemini-2.0-flash:streamGenerateContent?alt=sse")
    assert [d.text for d in deltas] == ["The", " sky", " is blue", ""]
    assert deltas[-1].finish_reason == "STOP"
    assert deltas[-1].usage is not None
    assert (deltas[-1].usage.input_tokens, deltas[-1].usage.output_tokens) == (8, 3)


async def test_stream_without_finish_reason_is_malformed() -> None:
    rec = Recorder(sse_response(sse([_chunk("The"), _chunk(" sky")])))
    with pytest.raises(MalformedResponseError, match="finishReason"):
        [d async for d in voice(rec).stream(VoiceRequest.from_prompt("Sky?"))]


def test_schema_conversion_keeps_supported_keywords() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": 0, "description": "count"},
            "kind": {"type": "string", "enum": ["a", "b"]},
            "maybe": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "additionalProperties": False,
    }
    assert to_gemini_schema(schema) == {
        "type": "OBJECT",
        "properties": {
            "n": {"type": "INTEGER", "minimum": 0, "description": "count"},
            "kind": {"type": "STRING", "enum": ["a", "b"]},
            "maybe": {"nullable": True, "type": "STRING"},
        },
    }
    assert to_gemini_schema({"type": "null"}) == {"type": "NULL"}
