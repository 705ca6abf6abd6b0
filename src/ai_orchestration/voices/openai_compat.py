"""OpenAI-compatible chat completions: OpenAI itself, llama.cpp server, Ollama, vLLM, LM Studio.

>>> voice = OpenAICompatVoice("gemma", base_url="http://127.0.0.1:8080/v1")
>>> voice.name, voice.model
('gemma', 'gemma')

Structured output uses ``response_format`` with a JSON schema; ``request.choices`` asks for
``{"answer": <one of the choices>}`` through a schema enum. llama-cpp-python's server only
accepts ``{"type": "json_object", "schema": ...}``: pass
``options=OpenAICompatOptions(structured_output="json_object")`` (the ``llama-cpp`` registry
provider does).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

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
    is_loopback,
)
from ai_orchestration.voices._structured import (
    check_structured,
    choices_schema,
    merge_settings,
    parse_json_output,
    pick_choice,
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

__all__ = ["OPENAI_BASE_URL", "OpenAICompatOptions", "OpenAICompatVoice"]

OPENAI_BASE_URL = "https://api.openai.com/v1"
_OPENAI_ENV = "OPENAI_API_KEY"
_SCHEMA_NAME = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class OpenAICompatOptions:
    """Wire-format choices that differ between OpenAI-compatible servers.

    ``structured_output``: ``json_schema`` (OpenAI, vLLM, Ollama, LM Studio, llama.cpp's C++
    server) or ``json_object`` with an inline ``schema`` (llama-cpp-python's server).
    ``strict_schema`` sets OpenAI's ``strict`` flag for user schemas (choices are always
    strict). ``max_tokens_param``: ``max_tokens`` or ``max_completion_tokens`` (OpenAI
    reasoning models). ``provider`` labels errors and price lookups. ``local`` prices calls at
    $0 (default: the base URL is loopback).
    """

    structured_output: Literal["json_schema", "json_object"] = "json_schema"
    strict_schema: bool = False
    max_tokens_param: str = "max_tokens"
    stream_usage: bool = True
    provider: str = "openai"
    headers: Mapping[str, str] = field(default_factory=dict)
    local: bool | None = None


class OpenAICompatVoice(HttpVoice):
    """A voice served by an OpenAI-compatible ``/chat/completions`` endpoint.

    The key comes from ``api_key`` or the ``api_key_env`` variable. The default variable,
    ``OPENAI_API_KEY``, is only read (and required) when ``base_url`` is OpenAI's own, so an
    OpenAI key is never sent to a local or third-party server by accident.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str = OPENAI_BASE_URL,
        api_key: str | Secret | None = None,
        api_key_env: str | None = _OPENAI_ENV,
        name: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        settings: VoiceSettings | None = None,
        options: OpenAICompatOptions | None = None,
        prices: PriceTable | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.model = model
        self._name = name or model
        self.options = opts = options or OpenAICompatOptions()
        self.settings = settings or VoiceSettings()
        self.prices = prices or DEFAULT_TABLE
        host = urlsplit(base_url).hostname or ""
        if api_key_env == _OPENAI_ENV and host != "api.openai.com":
            api_key_env = None
        key = ApiKey.given(
            "authorization",
            api_key,
            api_key_env,
            prefix="Bearer ",
            required=api_key_env is not None,
        )
        self._local = opts.local if opts.local is not None else is_loopback(host)
        self._http = HttpSession(
            voice=self._name,
            provider=opts.provider,
            base_url=base_url,
            key=key,
            headers=opts.headers,
            timeout=timeout,
            transport=transport,
        )

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def _respond_path(self) -> str:
        return "/chat/completions"

    async def stream(self, request: VoiceRequest) -> AsyncIterator[VoiceDelta]:
        """Yield text deltas, then one final delta with ``finish_reason`` and ``usage``."""
        body, limit = self._body(request, stream=True)
        finish: str | None = None
        usage: Usage | None = None
        done = False
        provider = self.options.provider
        chunks = self._http.stream_json("/chat/completions", body, limit_s=limit)
        async with aclosing(chunks):
            async for _, chunk in chunks:
                if chunk == "[DONE]":
                    done = True
                    continue
                if not isinstance(chunk, dict):
                    raise MalformedResponseError(f"{provider} sent {chunk!r}", voice=self._name)
                if chunk.get("usage"):
                    usage = self._usage(chunk["usage"])
                for choice in chunk.get("choices") or ():
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        yield VoiceDelta(text=text)
                    finish = choice.get("finish_reason") or finish
        if not done and finish is None:
            raise MalformedResponseError(
                f"{provider} stream ended before the answer was complete", voice=self._name
            )
        yield VoiceDelta(finish_reason=finish, usage=usage or self._usage({}))

    # --- request ---------------------------------------------------------------------------

    def _body(self, request: VoiceRequest, *, stream: bool) -> tuple[dict[str, Any], float | None]:
        s = merge_settings(self.settings, request.settings)
        messages = [_message(m) for m in request.messages]
        if request.instructions:
            messages.insert(0, {"role": "system", "content": request.instructions})
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        if s.temperature is not None:
            body["temperature"] = s.temperature
        if s.max_tokens is not None:
            body[self.options.max_tokens_param] = s.max_tokens
        if s.seed is not None:
            body["seed"] = s.seed
        if s.stop:
            body["stop"] = list(s.stop)
        response_format = self._response_format(request)
        if response_format is not None:
            body["response_format"] = response_format
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": tool_parameters(t),
                    },
                }
                for t in request.tools
            ]
        if stream:
            body["stream"] = True
            if self.options.stream_usage:
                body["stream_options"] = {"include_usage": True}
        return body, s.timeout

    def _response_format(self, request: VoiceRequest) -> dict[str, Any] | None:
        check_structured(request, voice=self._name)
        if request.choices is not None:
            schema, name, strict = choices_schema(request.choices), "choice", True
        elif request.response_schema is not None:
            schema = dict(request.response_schema)
            title = _SCHEMA_NAME.sub("_", str(schema.get("title", "")))[:64]
            name, strict = title or "response", self.options.strict_schema
        else:
            return None
        if self.options.structured_output == "json_object":
            return {"type": "json_object", "schema": schema}
        return {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": schema, "strict": strict},
        }

    # --- response --------------------------------------------------------------------------

    def _parse(self, payload: Any, request: VoiceRequest, latency: float) -> VoiceResponse:
        provider = self.options.provider
        choices = payload["choices"]
        if not choices:
            raise MalformedResponseError(
                f"{provider} answered an empty choice list", voice=self._name
            )
        choice = choices[0]
        message = choice["message"]
        text = message.get("content") or ""
        finish = choice.get("finish_reason")
        tool_calls = tuple(
            ToolCall(c["id"], c["function"]["name"], c["function"].get("arguments") or "{}")
            for c in message.get("tool_calls") or ()
        )
        parsed: Any = None
        if message.get("refusal"):
            text, finish = message["refusal"], "refusal"
        elif request.choices is not None and not tool_calls:
            value = _maybe_json(text)
            text = pick_choice(value, text, request.choices, voice=self._name)
        elif request.response_schema is not None and not tool_calls:
            parsed = parse_json_output(text, voice=self._name)
        return VoiceResponse(
            text=text,
            usage=self._usage(payload.get("usage") or {}),
            model=payload.get("model") or self.model,
            finish_reason=finish,
            latency_s=latency,
            parsed=parsed,
            tool_calls=tool_calls,
            raw=payload,
        )

    def _usage(self, usage: Mapping[str, Any]) -> Usage:
        return self._priced(
            int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        )

    def _priced(self, input_tokens: int, output_tokens: int) -> Usage:
        return self.prices.usage(
            self.model,
            input_tokens,
            output_tokens,
            provider=self.options.provider,
            local=self._local,
        )


def _message(m: Message) -> dict[str, Any]:
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.content}
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
    return out


def _maybe_json(text: str) -> Any:
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            return orjson.loads(stripped)
        except orjson.JSONDecodeError:
            return None
    return None
