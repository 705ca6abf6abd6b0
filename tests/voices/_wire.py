"""Helpers for wire-format tests: a recording mock transport and SSE bodies."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpx

# Shaped like a real key so the generic redaction patterns would also catch it.
FAKE_KEY = "sk-test-DO-NOT-LEAK-7f3a9c2e51b84d06"

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
