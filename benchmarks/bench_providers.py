"""Adapter overhead: OpenAICompatVoice vs a raw pooled httpx POST against one local server.

A tiny HTTP/1.1 server (stdlib asyncio, keep-alive) runs in a subprocess on a free loopback port
and answers every POST with the same canned chat completion. In this process, calls through
``OpenAICompatVoice.respond`` and raw ``httpx.AsyncClient.post`` calls of the same JSON body
alternate (the order flips every round), so both see the same server, connection reuse and
machine noise. Overhead = median(adapter) - median(raw): building the body, the key header, the
timeout scope, decoding and parsing into a ``VoiceResponse``, pricing.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from typing import Any

import httpx
import orjson

from ai_orchestration.context import Message
from ai_orchestration.voices import VoiceRequest, VoiceSettings
from ai_orchestration.voices._http import _LIMITS, aclose_http_clients
from ai_orchestration.voices.openai_compat import OpenAICompatVoice
from benchmarks._common import print_table, write_result

WARMUP = 200
ROUNDS = 3000
TARGET_US = 200.0

SERVER = r"""
import asyncio, sys, orjson
BODY = orjson.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000,
    "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_bench",
    "choices": [{"index": 0, "logprobs": None, "finish_reason": "stop",
                 "message": {"role": "assistant", "refusal": None,
                             "content": "The capital of France is Paris. " * 6}}],
    "usage": {"prompt_tokens": 42, "completion_tokens": 48, "total_tokens": 90},
})
HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: keep-alive\r\n"
        b"content-length: " + str(len(BODY)).encode() + b"\r\n\r\n")

async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            writer.write(HEAD + BODY)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""


def _start_server() -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, port


def _request() -> VoiceRequest:
    return VoiceRequest(
        messages=(
            Message("user", "What is the capital of France?"),
            Message("assistant", "Paris."),
            Message("user", "And what is it famous for? Answer in one sentence."),
        ),
        instructions="You are a concise geography assistant.",
        settings=VoiceSettings(temperature=0.0, max_tokens=64, seed=1),
    )


async def _measure(port: int) -> dict[str, list[float]]:
    base = f"http://127.0.0.1:{port}/v1"
    voice = OpenAICompatVoice("gpt-4o-mini", base_url=base, api_key="bench-key-not-secret")
    request = _request()
    body = orjson.dumps(voice._body(request, stream=False)[0])
    headers = {"content-type": "application/json", "authorization": "Bearer bench-key-not-secret"}
    url = base + "/chat/completions"
    times: dict[str, list[float]] = {"adapter": [], "raw": []}
    async with httpx.AsyncClient(limits=_LIMITS) as client:  # the adapters' pool settings

        async def raw() -> None:
            resp = await client.post(url, content=body, headers=headers)
            assert resp.status_code == 200 and resp.content

        async def adapter() -> None:
            out = await voice.respond(request)
            assert out.text

        calls = {"adapter": adapter, "raw": raw}
        for i in range(WARMUP + ROUNDS):
            order = ("adapter", "raw") if i % 2 else ("raw", "adapter")
            for kind in order:
                started = time.perf_counter()
                await calls[kind]()
                elapsed = time.perf_counter() - started
                if i >= WARMUP:
                    times[kind].append(elapsed * 1e6)
    await aclose_http_clients()
    return times


def _cpu_only_us(n: int = 5000) -> float:
    """Our code alone (no I/O): build the body, encode it, decode and parse a canned answer."""
    voice = OpenAICompatVoice("gpt-4o-mini", base_url="http://127.0.0.1:1/v1")
    request = _request()
    answer = orjson.dumps(
        {
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "Paris. " * 20},
                }
            ],
            "usage": {"prompt_tokens": 42, "completion_tokens": 48},
        }
    )
    started = time.perf_counter()
    for _ in range(n):
        orjson.dumps(voice._body(request, stream=False)[0])
        voice._parse(orjson.loads(answer), request, 0.0)
    return (time.perf_counter() - started) / n * 1e6


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_us": statistics.median(ordered),
        "p90_us": ordered[int(len(ordered) * 0.9)],
        "mean_us": statistics.fmean(ordered),
    }


def main() -> dict[str, Any]:
    proc, port = _start_server()
    try:
        times = asyncio.run(_measure(port))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    adapter, raw = _summary(times["adapter"]), _summary(times["raw"])
    paired = statistics.median(a - r for a, r in zip(times["adapter"], times["raw"], strict=True))
    overhead = adapter["median_us"] - raw["median_us"]
    cpu = _cpu_only_us()
    result = {
        "adapter_overhead_us": round(overhead, 1),
        "adapter_overhead_paired_median_us": round(paired, 1),
        "adapter_cpu_only_us": round(cpu, 1),
        "adapter_median_us": round(adapter["median_us"], 1),
        "adapter_p90_us": round(adapter["p90_us"], 1),
        "raw_httpx_median_us": round(raw["median_us"], 1),
        "raw_httpx_p90_us": round(raw["p90_us"], 1),
        "rounds": ROUNDS,
        "target_us": TARGET_US,
        "meets_target": overhead <= TARGET_US,
    }
    print_table(
        f"Adapter overhead, OpenAICompatVoice vs raw httpx ({ROUNDS} interleaved calls each)",
        ["path", "median µs", "p90 µs"],
        [
            ["raw pooled httpx POST", raw["median_us"], raw["p90_us"]],
            ["OpenAICompatVoice.respond", adapter["median_us"], adapter["p90_us"]],
            ["overhead (difference of medians)", overhead, "-"],
            ["overhead (median of paired differences)", paired, "-"],
            ["our code alone, no I/O (build + parse)", cpu, "-"],
        ],
    )
    verdict = "meets" if overhead <= TARGET_US else "MISSES"
    print(f"\nadapter overhead {overhead:.1f} µs {verdict} the {TARGET_US:.0f} µs target")
    write_result("providers", result)
    return result


if __name__ == "__main__":
    main()
