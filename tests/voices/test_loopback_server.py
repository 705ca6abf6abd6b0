"""OpenAICompatVoice over real sockets: a tiny HTTP/1.1 server on a free loopback port, so the
default transport, the connection pool, chunked SSE and dropped connections are exercised."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from ai_orchestration.errors import (
    MalformedResponseError,
    ProviderUnavailableError,
    RateLimitedError,
)
from ai_orchestration.testing import network_guard
from ai_orchestration.voices import VoiceRequest
from ai_orchestration.voices._http import aclose_http_clients
from ai_orchestration.voices.openai_compat import OpenAICompatVoice

Reply = Callable[[dict[str, object], asyncio.StreamWriter], Awaitable[None]]
Serve = Callable[[Reply], Awaitable[tuple["Server", str]]]

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gemma",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Paris"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}


def _head(status: str, ctype: str, extra: str = "") -> bytes:
    return f"HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\n{extra}".encode()


async def _json(
    writer: asyncio.StreamWriter, payload: object, status: str = "200 OK", extra: str = ""
) -> None:
    body = json.dumps(payload).encode()
    writer.write(
        _head(status, "application/json", extra)
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()


async def _chunked(
    writer: asyncio.StreamWriter, parts: list[bytes], *, finish: bool = True
) -> None:
    writer.write(_head("200 OK", "text/event-stream", "transfer-encoding: chunked\r\n") + b"\r\n")
    for part in parts:
        writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        await writer.drain()
    if finish:
        writer.write(b"0\r\n\r\n")
        await writer.drain()


class Server:
    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.connections = 0
        self.requests: list[dict[str, object]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = json.loads(await reader.readexactly(length))
                self.requests.append(body)
                await self.reply(body, writer)
        except (asyncio.IncompleteReadError, ConnectionError, _Drop):
            pass
        finally:
            writer.close()

    async def wait_handlers(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)


class _Drop(Exception):
    """Raised by a reply to close the connection."""


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[tuple[Server, asyncio.Server]] = []

    async def start(reply: Reply) -> tuple[Server, str]:
        srv = Server(reply)
        server = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
        servers.append((srv, server))
        port = server.sockets[0].getsockname()[1]
        return srv, f"http://127.0.0.1:{port}/v1"

    yield start
    await aclose_http_clients()
    for srv, server in servers:
        server.close()
        await server.wait_closed()
        async with asyncio.timeout(5):
            await srv.wait_handlers()


async def test_pooled_keep_alive_and_concurrency(serve: Serve) -> None:
    async def reply(body: dict[str, object], writer: asyncio.StreamWriter) -> None:
        await _json(writer, COMPLETION)

    server, url = await serve(reply)
    a = OpenAICompatVoice("gemma", base_url=url, name="a")
    b = OpenAICompatVoice("gemma", base_url=url, name="b")
    with network_guard():  # loopback is allowed
        for _ in range(3):
            assert (await a.respond(VoiceRequest.from_prompt("Capital?"))).text == "Paris"
        assert server.connections == 1  # one kept-alive connection, shared by voices
        results = await asyncio.gather(
            *(v.respond(VoiceRequest.from_prompt(f"q{i}")) for i, v in enumerate([a, b] * 4))
        )
    assert [r.text for r in results] == ["Paris"] * 8
    assert results[0].usage.cost_usd == 0.0  # loopback server: local, free


async def test_streaming_over_chunked_transfer(serve: Serve) -> None:
    def event(content: str | None, finish: str | None = None) -> bytes:
        delta = {"content": content} if content is not None else {}
        chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return f"data: {json.dumps(chunk)}\n\n".encode()

    async def reply(body: dict[str, object], writer: asyncio.StreamWriter) -> None:
        # an event split across chunk boundaries, CRLF line endings in one event
        whole = event("Hel") + event("lo").replace(b"\n", b"\r\n") + event(None, "stop")
        await _chunked(writer, [whole[:10], whole[10:77], whole[77:], b"data: [DONE]\n\n"])

    _, url = await serve(reply)
    voice = OpenAICompatVoice("gemma", base_url=url)
    deltas = [d async for d in voice.stream(VoiceRequest.from_prompt("Hi"))]
    assert "".join(d.text for d in deltas) == "Hello"
    assert deltas[-1].finish_reason == "stop"


async def test_connection_dropped_mid_stream(serve: Serve) -> None:
    async def reply(body: dict[str, object], writer: asyncio.StreamWriter) -> None:
        await _chunked(
            writer, [b'data: {"choices": [{"index": 0, "delta": {"content": "Hi'], finish=False
        )
        raise _Drop

    _, url = await serve(reply)
    voice = OpenAICompatVoice("gemma", base_url=url)
    with pytest.raises((ProviderUnavailableError, MalformedResponseError)):
        [d async for d in voice.stream(VoiceRequest.from_prompt("Hi"))]


async def test_server_gone_is_provider_unavailable() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    voice = OpenAICompatVoice("gemma", base_url=f"http://127.0.0.1:{port}/v1")
    with pytest.raises(ProviderUnavailableError, match="cannot connect"):
        await voice.respond(VoiceRequest.from_prompt("Hi"))
    await aclose_http_clients()


async def test_rate_limit_over_the_wire(serve: Serve) -> None:
    async def reply(body: dict[str, object], writer: asyncio.StreamWriter) -> None:
        err = {"error": {"message": "slow down", "type": "rate_limit_error"}}
        await _json(writer, err, "429 Too Many Requests", "retry-after: 3\r\n")

    _, url = await serve(reply)
    with pytest.raises(RateLimitedError) as info:
        await OpenAICompatVoice("gemma", base_url=url).respond(VoiceRequest.from_prompt("Hi"))
    assert info.value.retry_after == 3.0
