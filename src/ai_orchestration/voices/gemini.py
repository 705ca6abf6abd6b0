"""Google Gemini API: ``models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``.

>>> GeminiVoice("gemini-2.0-flash").name
'gemini-2.0-flash'

The key travels in the ``x-goog-api-key`` header, never in the URL. Structured output sets
``responseMimeType: application/json`` with a ``responseSchema`` (the API's OpenAPI subset:
keywords it does not know, such as ``additionalProperties``, are dropped and type names
upper-cased); ``choices`` use the ``text/x.enum`` MIME type with a string enum.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from typing import Any

import httpx
import orjson

from ai_orchestration.context import Message, ToolCall
from ai_orchestration.errors import BadRequestError, MalformedResponseError
from ai_orchestration.voices._http import (
    DEFAULT_TIMEOUT,
    ApiKey,
    HttpSession,
    HttpVoice,
    Secret,
)
from ai_orchestration.voices._structured import (
    check_structured,
    merge_settings,
    parse_json_output,
    pick_choice,
    system_texts,
)
from ai_orchestration.voices._types import (
    Usage,
    VoiceDelta,
    VoiceRequest,
    VoiceResponse,
    VoiceSettings,
)
from ai_orchestration.voices.pricing import DEFAULT_TABLE, PriceTable

__all__ = ["GEMINI_BASE_URL", "GeminiVoice", "to_gemini_schema"]

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"
_SCHEMA_KEYS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "propertyOrdering",
        "items",
        "anyOf",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
    }
)


def to_gemini_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON schema reduced to the Gemini ``Schema`` subset.

    >>> to_gemini_schema({"type": ["string", "null"], "additionalProperties": False})
    {'nullable': True, 'type': 'STRING'}
    """
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in _SCHEMA_KEYS:
            continue
        if key == "type":
            types = [value] if isinstance(value, str) else list(value)
            if "null" in types and len(types) > 1:
                out["nullable"] = True
                types.remove("null")
            out["type"] = str(types[0]).upper() if types else "NULL"
        elif key == "properties":
            out[key] = {k: to_gemini_schema(v) for k, v in value.items()}
        elif key == "items":
            out[key] = to_gemini_schema(value)
        elif key == "anyOf":
            branches = [to_gemini_schema(v) for v in value if v.get("type") != "null"]
            if len(branches) < len(value):
                out["nullable"] = True
            if len(branches) == 1:
                out.update(branches[0])
            else:
                out[key] = branches
        else:
            out[key] = value
    return out


class GeminiVoice(HttpVoice):
    """A Gemini model; the key comes from ``GEMINI_API_KEY``."""

    provider = "gemini"

    def __init__(
        self,
        model: str,
        *,
        base_url: str = GEMINI_BASE_URL,
        api_key: str | Secret | None = None,
        api_key_env: str | None = "GEMINI_API_KEY",
        name: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        settings: VoiceSettings | None = None,
        prices: PriceTable | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.model = model.removeprefix("models/")
        self._name = name or self.model
        self.settings = settings or VoiceSettings()
        self.prices = prices or DEFAULT_TABLE
        self._http = HttpSession(
            voice=self._name,
            provider=self.provider,
            base_url=base_url,
            key=ApiKey.given("x-goog-api-key", api_key, api_key_env),
            timeout=timeout,
            transport=transport,
        )

    def _respond_path(self) -> str:
        return f"/models/{self.model}:generateContent"

    async def stream(self, request: VoiceRequest) -> AsyncIterator[VoiceDelta]:
        """Yield text deltas, then a final delta with ``finish_reason`` and ``usage``."""
        body, limit = self._body(request, stream=True)
        path = f"/models/{self.model}:streamGenerateContent?alt=sse"
        finish: str | None = None
        usage: Usage | None = None
        chunks = self._http.stream_json(path, body, limit_s=limit)
        async with aclosing(chunks):
            async for _, chunk in chunks:
                if not isinstance(chunk, dict):
                    raise MalformedResponseError(f"gemini sent {chunk!r}", voice=self._name)
                self._check_blocked(chunk)
                for candidate in chunk.get("candidates") or ():
                    text = _text((candidate.get("content") or {}).get("parts") or ())
                    if text:
                        yield VoiceDelta(text=text)
                    finish = candidate.get("finishReason") or finish
                if chunk.get("usageMetadata"):
                    usage = self._usage(chunk["usageMetadata"])
        if finish is None:
            raise MalformedResponseError(
                "gemini stream ended before a finishReason", voice=self._name
            )
        yield VoiceDelta(finish_reason=finish, usage=usage or self._usage({}))

    # --- request ---------------------------------------------------------------------------

    def _body(self, request: VoiceRequest, *, stream: bool) -> tuple[dict[str, Any], float | None]:
        # streaming or not, Gemini takes the same body (the endpoint differs)
        s = merge_settings(self.settings, request.settings)
        body: dict[str, Any] = {"contents": _contents(request.messages)}
        system = system_texts(request)
        if system:
            body["systemInstruction"] = {"parts": [{"text": t} for t in system]}
        config: dict[str, Any] = {}
        if s.temperature is not None:
            config["temperature"] = s.temperature
        if s.max_tokens is not None:
            config["maxOutputTokens"] = s.max_tokens
        if s.seed is not None:
            config["seed"] = s.seed
        if s.stop:
            config["stopSequences"] = list(s.stop)
        config.update(self._output_config(request))
        if config:
            body["generationConfig"] = config
        if request.tools:
            declarations = [
                {"name": t.name, "description": t.description}
                | ({"parameters": to_gemini_schema(t.parameters)} if t.parameters else {})
                for t in request.tools
            ]
            body["tools"] = [{"functionDeclarations": declarations}]
        return body, s.timeout

    def _output_config(self, request: VoiceRequest) -> dict[str, Any]:
        check_structured(request, voice=self._name)
        if request.choices is not None:
            return {
                "responseMimeType": "text/x.enum",
                "responseSchema": {"type": "STRING", "enum": list(request.choices)},
            }
        if request.response_schema is not None:
            return {
                "responseMimeType": "application/json",
                "responseSchema": to_gemini_schema(request.response_schema),
            }
        return {}

    # --- response --------------------------------------------------------------------------

    def _check_blocked(self, payload: Mapping[str, Any]) -> None:
        reason = (payload.get("promptFeedback") or {}).get("blockReason")
        if reason and not payload.get("candidates"):
            raise BadRequestError(f"gemini blocked the prompt ({reason})", voice=self._name)

    def _parse(self, payload: Any, request: VoiceRequest, latency: float) -> VoiceResponse:
        self._check_blocked(payload)
        candidates = payload.get("candidates")
        if not candidates:
            raise MalformedResponseError("gemini answered no candidates", voice=self._name)
        candidate = candidates[0]
        parts = (candidate.get("content") or {}).get("parts") or ()
        text = _text(parts)
        calls = tuple(
            ToolCall(
                p["functionCall"].get("id") or f"call_{i}",
                p["functionCall"]["name"],
                orjson.dumps(p["functionCall"].get("args") or {}).decode(),
            )
            for i, p in enumerate(parts)
            if "functionCall" in p
        )
        parsed: Any = None
        if request.choices is not None and not calls:
            text = pick_choice(text, text, request.choices, voice=self._name)
        elif request.response_schema is not None and not calls:
            parsed = parse_json_output(text, voice=self._name)
        return VoiceResponse(
            text=text,
            usage=self._usage(payload.get("usageMetadata") or {}),
            model=payload.get("modelVersion") or self.model,
            finish_reason=candidate.get("finishReason"),
            latency_s=latency,
            parsed=parsed,
            tool_calls=calls,
            raw=payload,
        )

    def _usage(self, meta: Mapping[str, Any]) -> Usage:
        # Thinking tokens are billed as output.
        output = int(meta.get("candidatesTokenCount") or 0) + int(
            meta.get("thoughtsTokenCount") or 0
        )
        return self.prices.usage(
            self.model, int(meta.get("promptTokenCount") or 0), output, provider=self.provider
        )


def _text(parts: Any) -> str:
    return "".join(p["text"] for p in parts if "text" in p and not p.get("thought"))


def _contents(messages: Sequence[Message]) -> list[dict[str, Any]]:
    names = {c.id: c.name for m in messages for c in m.tool_calls}
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            name = names.get(m.tool_call_id or "", m.name or "tool")
            response = {"name": name, "response": {"content": m.content}}
            out.append({"role": "user", "parts": [{"functionResponse": response}]})
        elif m.role == "assistant":
            parts: list[dict[str, Any]] = [{"text": m.content}] if m.content else []
            parts += [
                {"functionCall": {"name": c.name, "args": orjson.loads(c.arguments)}}
                for c in m.tool_calls
            ]
            out.append({"role": "model", "parts": parts})
        else:
            out.append({"role": "user", "parts": [{"text": m.content}]})
    return out
