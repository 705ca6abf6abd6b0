"""Helpers for wire-format tests: the HTTP providers, a recording mock transport, SSE bodies."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from ai_orchestration.voices.anthropic import AnthropicVoice
from ai_orchestration.voices.gemini import GeminiVoice
from ai_orchestration.voices.openai_compat import OpenAICompatVoice

# Shaped like a real key so the generic redaction patterns would also catch it.
FAKE_KEY = "sk-test-DO-NOT-LEAK-7f3a9c2e51b84d06"


@dataclass(frozen=True)
class Provider:
    """One HTTP adapter: its class, a model it serves and the variable its key is read from."""

    cls: type[Any]
    model: str
    env: str

    def __call__(self, transport: httpx.AsyncBaseTransport, **options: Any) -> Any:
        """A voice of this provider with :data:`FAKE_KEY`, answering through ``transport``."""
        return self.cls(self.model, api_key=FAKE_KEY, transport=transport, **options)


PROVIDERS = {
    "openai": Provider(OpenAICompatVoice, "gpt-4o-mini", "OPENAI_API_KEY"),
    "anthropic": Provider(AnthropicVoice, "claude-sonnet-4", "ANTHROPIC_API_KEY"),
    "gemini": Provider(GeminiVoice, "gemini-2.0-flash", "GEMINI_API_KEY"),
}

Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


class Recorder:
    """A MockTransport that answers from ``handler`` and keeps every request it saw."""

    def __init__(self, handler: Handler | httpx.Response) -> None:
        self.requests: list[httpx.Request] = []
        self._handler = handler
        self.transport = httpx.MockTransport(self._handle)

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        if isinstance(self._handler, httpx.Response):
            return self._handler
        out = self._handler(request)
        return out if isinstance(out, httpx.Response) else await out

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def body(self, i: int = -1) -> Any:
        return json.loads(self.requests[i].content)


def json_response(payload: Any, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=payload, headers=headers)


def sse(events: Iterable[Any], *, named: bool = False) -> bytes:
    """An event-stream body; items are JSON values, raw strings, or (event, data) pairs."""
    out = []
    for item in events:
        event, data = item if named else (None, item)
        text = data if isinstance(data, str) else json.dumps(data)
        out.append((f"event: {event}\n" if event else "") + f"data: {text}\n\n")
    return "".join(out).encode()


def sse_response(body: bytes, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=body, headers={"content-type": "text/event-stream"})
