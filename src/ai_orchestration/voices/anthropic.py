"""Anthropic Messages API (``POST /v1/messages``), plain and streaming.

>>> AnthropicVoice("claude-sonnet-4-20250514").name
'claude-sonnet-4-20250514'

Structured output (``response_schema``) and multiple choice (``choices``) force the model to
call one tool whose ``input_schema`` is the schema; its input is the answer. The API has no
``seed``; it is ignored. ``max_tokens`` is required by the API: the voice sends 1024 unless the
request or the voice's settings say otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from typing import Any

import httpx
import orjson

from ai_orchestration.context import Message, ToolCall
from ai_orchestration.errors import MalformedResponseError
from ai_orchestration.voices._http import (
    DEFAULT_TIMEOUT,
    ApiKey,
    HttpSession,
    HttpVoice,
    Secret,
)
from ai_orchestration.voices._structured import (
    check_structured,
    choices_schema,
    merge_settings,
    parse_json_output,
    pick_choice,
    system_texts,
    tool_parameters,
)
from ai_orchestration.voices._types import (
    Usage,
    VoiceDelta,
    VoiceRequest,
    VoiceResponse,
    VoiceSettings,
)
from ai_orchestration.voices.pricing import DEFAULT_TABLE, PriceTable

__all__ = ["ANTHROPIC_BASE_URL", "ANTHROPIC_VERSION", "AnthropicVoice"]

ANTHROPIC_BASE_URL = "https://api.anthropic.com/v1"
ANTHROPIC_VERSION = "2023-06-01"
_ANSWER_TOOL = "structured_answer"
_DEFAULT_MAX_TOKENS = 1024


class AnthropicVoice(HttpVoice):
    """A Claude model through the Messages API; the key comes from ``ANTHROPIC_API_KEY``."""

    provider = "anthropic"

    def __init__(
        self,
        model: str,
        *,
        base_url: str = ANTHROPIC_BASE_URL,
        api_key: str | Secret | None = None,
        api_key_env: str | None = "ANTHROPIC_API_KEY",
        name: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        settings: VoiceSettings | None = None,
        prices: PriceTable | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.model = model
        self._name = name or model
        self.settings = settings or VoiceSettings()
        self.prices = prices or DEFAULT_TABLE
        self._http = HttpSession(
            voice=self._name,
            provider=self.provider,
            base_url=base_url,
            key=ApiKey.given("x-api-key", api_key, api_key_env),
            headers={"anthropic-version": ANTHROPIC_VERSION, **(headers or {})},
            timeout=timeout,
            transport=transport,
        )

    def _respond_path(self) -> str:
        return "/messages"

    async def stream(self, request: VoiceRequest) -> AsyncIterator[VoiceDelta]:
        """Yield text deltas (or the forced tool's JSON as it arrives), then a final delta."""
        body, limit = self._body(request, stream=True)
        input_tokens = output_tokens = 0
        finish: str | None = None
        stopped = False
        evs = self._http.stream_json("/messages", body, limit_s=limit)
        async with aclosing(evs):
            async for _, ev in evs:
                kind = ev.get("type") if isinstance(ev, dict) else None
                if kind == "message_start":
                    usage = ev["message"].get("usage") or {}
                    input_tokens = _input_tokens(usage)
                    output_tokens = int(usage.get("output_tokens") or 0)
                elif kind == "content_block_delta":
                    delta = ev.get("delta") or {}
                    text = delta.get("text") or delta.get("partial_json")
                    if text:
                        yield VoiceDelta(text=text)
                elif kind == "message_delta":
                    finish = (ev.get("delta") or {}).get("stop_reason") or finish
                    output_tokens = int((ev.get("usage") or {}).get("output_tokens") or 0)
                elif kind == "message_stop":
                    stopped = True
        if not stopped:
            raise MalformedResponseError(
                "anthropic stream ended before message_stop", voice=self._name
            )
        yield VoiceDelta(finish_reason=finish, usage=self._usage(input_tokens, output_tokens))

    # --- request ---------------------------------------------------------------------------

    def _body(self, request: VoiceRequest, *, stream: bool) -> tuple[dict[str, Any], float | None]:
        s = merge_settings(self.settings, request.settings)
        system = system_texts(request)
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": s.max_tokens or _DEFAULT_MAX_TOKENS,
            "messages": _messages(request.messages),
        }
        if system:
            body["system"] = "\n\n".join(system)
        if s.temperature is not None:
            body["temperature"] = s.temperature
        if s.stop:
            body["stop_sequences"] = list(s.stop)
        tools = [
            {"name": t.name, "description": t.description, "input_schema": tool_parameters(t)}
            for t in request.tools
        ]
        forced = self._answer_schema(request)
        if forced is not None:
            tools.append(
                {
                    "name": _ANSWER_TOOL,
                    "description": "Give the final answer in the required structure.",
                    "input_schema": forced,
                }
            )
            body["tool_choice"] = {"type": "tool", "name": _ANSWER_TOOL}
        if tools:
            body["tools"] = tools
        if stream:
            body["stream"] = True
        return body, s.timeout

    def _answer_schema(self, request: VoiceRequest) -> dict[str, Any] | None:
        check_structured(request, voice=self._name)
        if request.choices is not None:
            return choices_schema(request.choices)
        if request.response_schema is None:
            return None
        schema = dict(request.response_schema)
        if schema.get("type") == "object":
            return schema
        # Tool inputs must be objects: wrap anything else and unwrap the answer.
        return {"type": "object", "properties": {"value": schema}, "required": ["value"]}

    # --- response --------------------------------------------------------------------------

    def _parse(self, payload: Any, request: VoiceRequest, latency: float) -> VoiceResponse:
        texts: list[str] = []
        calls: list[ToolCall] = []
        answer: Any = None
        answered = False
        for block in payload["content"]:
            if block["type"] == "text":
                texts.append(block["text"])
            elif block["type"] == "tool_use" and block["name"] == _ANSWER_TOOL:
                answer, answered = block.get("input"), True
            elif block["type"] == "tool_use":
                calls.append(
                    ToolCall(block["id"], block["name"], orjson.dumps(block["input"]).decode())
                )
        text, parsed = "".join(texts), None
        if request.choices is not None or request.response_schema is not None:
            text, parsed = self._structured(request, answer, answered, text)
        usage = payload.get("usage") or {}
        return VoiceResponse(
            text=text,
            usage=self._usage(_input_tokens(usage), int(usage.get("output_tokens") or 0)),
            model=payload.get("model") or self.model,
            finish_reason=payload.get("stop_reason"),
            latency_s=latency,
            parsed=parsed,
            tool_calls=tuple(calls),
            raw=payload,
        )

    def _structured(
        self, request: VoiceRequest, answer: Any, answered: bool, text: str
    ) -> tuple[str, Any]:
        if not answered:  # the model wrote text instead of calling the forced tool
            answer = parse_json_output(text, voice=self._name)
        if request.choices is not None:
            return pick_choice(answer, text, request.choices, voice=self._name), None
        assert request.response_schema is not None
        if request.response_schema.get("type") != "object" and isinstance(answer, dict):
            answer = answer.get("value")
        return orjson.dumps(answer).decode(), answer

    def _usage(self, input_tokens: int, output_tokens: int) -> Usage:
        return self.prices.usage(self.model, input_tokens, output_tokens, provider=self.provider)


def _input_tokens(usage: Mapping[str, Any]) -> int:
    # Cache writes/reads are input too; they are priced here at the base input rate.
    keys = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    return sum(int(usage.get(k) or 0) for k in keys)


def _messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": m.tool_call_id or "",
                "content": m.content,
            }
            out.append({"role": "user", "content": [block]})
        elif m.tool_calls:
            blocks: list[dict[str, Any]] = (
                [{"type": "text", "text": m.content}] if m.content else []
            )
            blocks += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": orjson.loads(c.arguments)}
                for c in m.tool_calls
            ]
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append({"role": m.role, "content": m.content})
    return out
