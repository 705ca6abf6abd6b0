"""OpenAICompatVoice against a real llama.cpp server (llama-cpp-python) serving Gemma 3 270M.

The module starts ``python -m llama_cpp.server`` on a free loopback port and stops it at the
end. Gemma 3 270M is a base model without a chat template in its metadata, so the server gets
``--chat_format gemma``; ``--interrupt_requests False`` keeps a waiting request from cutting a
running stream short. Tests assert outcomes (text, JSON per schema, usage), never wording.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from ai_orchestration.voices import VoiceDelta, VoiceRequest, VoiceSettings
from ai_orchestration.voices._http import aclose_http_clients
from ai_orchestration.voices.local import gemma_model_path
from ai_orchestration.voices.openai_compat import OpenAICompatOptions, OpenAICompatVoice

pytestmark = pytest.mark.llm

MODEL = "gemma-3-270m"
READY_TIMEOUT_S = 90.0
SETTINGS = VoiceSettings(temperature=0.0, max_tokens=16, seed=1)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            pytest.fail(f"llama.cpp server exited with {proc.returncode}:\n{tail}")
        try:
            if httpx.get(f"{url}/models", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    pytest.fail(f"llama.cpp server not ready after {READY_TIMEOUT_S:.0f}s; log: {log}")


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (``.../v1``) of a llama.cpp server running the packaged Gemma GGUF."""
    port = _free_port()
    log = tmp_path_factory.mktemp("llama_server") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", gemma_model_path(),
        "--model_alias", MODEL,
        "--chat_format", "gemma",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", "2048",
        "--interrupt_requests", "False",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        _wait_ready(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
async def voice(server_url: str) -> AsyncIterator[OpenAICompatVoice]:
    options = OpenAICompatOptions(structured_output="json_object", provider="llama-cpp")
    yield OpenAICompatVoice(
        MODEL, base_url=server_url, name="gemma-server", timeout=60.0, options=options
    )
    await aclose_http_clients()


def _ask(prompt: str, **kw: object) -> VoiceRequest:
    return VoiceRequest.from_prompt(prompt, settings=SETTINGS, **kw)


async def test_non_streaming_answer(voice: OpenAICompatVoice) -> None:
    response = await voice.respond(_ask("Write one sentence about the sea."))
    assert response.text.strip()
    assert response.finish_reason in {"stop", "length"}
    assert response.usage.input_tokens > 0 and 0 < response.usage.output_tokens <= 16
    assert response.usage.cost_usd == 0.0
    assert response.model == MODEL


async def test_streaming_answer(voice: OpenAICompatVoice) -> None:
    deltas: list[VoiceDelta] = [d async for d in voice.stream(_ask("Tell me about the moon."))]
    pieces = [d.text for d in deltas[:-1] if d.text]
    assert "".join(pieces).strip()
    # llama-cpp-python streams one token per chunk, so max_tokens bounds the pieces.
    assert 2 <= len(pieces) <= SETTINGS.max_tokens
    final = deltas[-1]
    assert final.text == "" and final.finish_reason in {"stop", "length"}
    # llama-cpp-python's server ignores stream_options.include_usage: no token counts here.
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (0, 0)


async def test_structured_output_follows_the_json_schema(voice: OpenAICompatVoice) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
    }
    request = VoiceRequest.from_prompt(
        "Name a large city and its population as JSON.",
        settings=VoiceSettings(temperature=0.0, max_tokens=64, seed=1),
        response_schema=schema,
    )
    response = await voice.respond(request)
    assert isinstance(response.parsed, dict)
    assert set(response.parsed) == {"city", "population"}
    assert isinstance(response.parsed["city"], str)
    assert isinstance(response.parsed["population"], int)


async def test_choices_come_back_as_one_of_the_options(voice: OpenAICompatVoice) -> None:
    options = ("Paris", "London", "Rome")
    request = VoiceRequest.from_prompt(
        "What is the capital of France?",
        settings=VoiceSettings(temperature=0.0, max_tokens=32, seed=1),
        choices=options,
    )
    response = await voice.respond(request)
    assert response.text in options


async def test_eight_concurrent_requests(voice: OpenAICompatVoice) -> None:
    topics = ["rain", "bread", "music", "stars", "trees", "cats", "trains", "snow"]
    requests = [
        VoiceRequest.from_prompt(
            f"One word about {topic}:",
            settings=VoiceSettings(temperature=0.0, max_tokens=8, seed=i),
        )
        for i, topic in enumerate(topics)
    ]
    responses = await asyncio.gather(*(voice.respond(r) for r in requests))
    assert len(responses) == 8
    assert all(r.usage.input_tokens > 0 and r.usage.output_tokens > 0 for r in responses)
    assert all(r.finish_reason in {"stop", "length"} for r in responses)
