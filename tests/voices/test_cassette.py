"""Record/replay cassettes and the network guard (ai_orchestration.testing)."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest
from _wire import FAKE_KEY, Recorder, json_response

from ai_orchestration.errors import UserError
from ai_orchestration.testing import (
    Cassette,
    CassetteMissError,
    CassetteVoice,
    FunctionVoice,
    NetworkBlockedError,
    network_guard,
    request_fingerprint,
)
from ai_orchestration.voices import Usage, VoiceRequest, VoiceResponse, VoiceSettings
from ai_orchestration.voices.openai_compat import OpenAICompatVoice


def counting_voice(name: str = "v") -> FunctionVoice:
    def answer(request: VoiceRequest) -> VoiceResponse:
        return VoiceResponse(
            text=f"answer {voice.calls} to {request.prompt}",
            usage=Usage(3, 4, 0.001, 1),
            model="m",
            finish_reason="stop",
        )

    voice = FunctionVoice(name, answer)
    return voice


async def test_record_then_replay_offline(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    inner = counting_voice()
    recorder = Cassette(path).wrap(inner)
    first = await recorder.respond(VoiceRequest.from_prompt("q"))
    again = await recorder.respond(VoiceRequest.from_prompt("q"))  # auto mode: a hit now
    assert inner.calls == 1
    assert again.text == first.text == "answer 1 to q"

    replay = Cassette(path, mode="replay").wrap(None, name="v")
    got = await replay.respond(VoiceRequest.from_prompt("q"))
    assert got.text == "answer 1 to q"
    assert (got.usage.input_tokens, got.usage.output_tokens, got.usage.cost_usd) == (3, 4, 0.001)
    assert got.finish_reason == "stop"
    assert inner.calls == 1


async def test_missing_request_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    await Cassette(path).wrap(counting_voice()).respond(VoiceRequest.from_prompt("known"))
    replay = CassetteVoice(counting_voice(), Cassette(path, mode="replay"))
    request = VoiceRequest.from_prompt("unknown question")
    with pytest.raises(CassetteMissError) as info:
        await replay.respond(request)
    msg = str(info.value)
    assert str(path) in msg and "'v'" in msg and "unknown question" in msg
    assert info.value.fingerprint == request_fingerprint(request)
    assert isinstance(info.value, UserError)  # not a VoiceError: fallbacks must not hide it


async def test_identical_requests_replay_in_recorded_order(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    rec = Cassette(path, mode="record").wrap(counting_voice())
    for _ in range(3):
        await rec.respond(VoiceRequest.from_prompt("q"))
    replay = Cassette(path, mode="replay").wrap(None, name="v")
    texts = [(await replay.respond(VoiceRequest.from_prompt("q"))).text for _ in range(4)]
    assert texts == ["answer 1 to q", "answer 2 to q", "answer 3 to q", "answer 3 to q"]


async def test_record_mode_replaces_earlier_recordings(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    await Cassette(path).wrap(counting_voice()).respond(VoiceRequest.from_prompt("q"))
    await Cassette(path).wrap(counting_voice()).respond(VoiceRequest.from_prompt("other"))
    fresh = counting_voice()
    fresh.calls = 40
    await Cassette(path, mode="record").wrap(fresh).respond(VoiceRequest.from_prompt("q"))
    lines = [orjson.loads(x) for x in path.read_bytes().splitlines()]
    assert sorted(e["response"]["text"] for e in lines) == ["answer 1 to other", "answer 41 to q"]


def test_fingerprint_covers_what_shapes_the_answer() -> None:
    base = VoiceRequest.from_prompt("q", settings=VoiceSettings(temperature=0.0))
    same = VoiceRequest.from_prompt(
        "q", settings=VoiceSettings(temperature=0.0, timeout=9), metadata={"run": "x"}
    )
    assert request_fingerprint(base) == request_fingerprint(same)
    for other in (
        VoiceRequest.from_prompt("q", settings=VoiceSettings(temperature=0.5)),
        VoiceRequest.from_prompt("q2", settings=VoiceSettings(temperature=0.0)),
        VoiceRequest.from_prompt("q", settings=VoiceSettings(temperature=0.0), choices=("a",)),
        VoiceRequest.from_prompt("q", settings=VoiceSettings(temperature=0.0), instructions="i"),
    ):
        assert request_fingerprint(other) != request_fingerprint(base)


async def test_secrets_are_stripped_from_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOME_PROVIDER_API_KEY", "literal-secret-value-42")
    path = tmp_path / "c.jsonl"

    def leaky(request: VoiceRequest) -> str:
        return "your key is literal-secret-value-42 and sk-proj-abcdefghijklmnop"

    voice = Cassette(path).wrap(FunctionVoice("leaky", leaky))
    await voice.respond(VoiceRequest.from_prompt(f"use {FAKE_KEY}"))
    text = path.read_text()
    assert "literal-secret-value-42" not in text
    assert "sk-proj-abcdefghijklmnop" not in text
    assert FAKE_KEY not in text
    assert "[REDACTED]" in text


async def test_streaming_through_a_cassette(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    recorded = Cassette(path).wrap(counting_voice())
    deltas = [d async for d in recorded.stream(VoiceRequest.from_prompt("s"))]
    assert [d.text for d in deltas] == ["answer 1 to s", ""]
    replay = Cassette(path, mode="replay").wrap(None, name="v")
    deltas = [d async for d in replay.stream(VoiceRequest.from_prompt("s"))]
    assert deltas[0].text == "answer 1 to s"
    assert deltas[-1].finish_reason == "stop"


async def test_provider_voice_recorded_and_replayed_without_network(tmp_path: Path) -> None:
    payload = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Paris"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
    }
    rec = Recorder(json_response(payload))
    live = OpenAICompatVoice("gpt-4o-mini", api_key=FAKE_KEY, transport=rec.transport)
    path = tmp_path / "openai.jsonl"
    await Cassette(path, keep_raw=True).wrap(live).respond(VoiceRequest.from_prompt("Capital?"))
    assert FAKE_KEY not in path.read_text()

    # auto mode calls the voice on a miss, which the guard would refuse: a hit proves that
    # nothing went over the network
    offline = OpenAICompatVoice("gpt-4o-mini", api_key=FAKE_KEY)  # would need the internet
    with network_guard():
        got = await Cassette(path).wrap(offline).respond(VoiceRequest.from_prompt("Capital?"))
    assert got.text == "Paris"
    assert got.raw["id"] == "chatcmpl-1"
    assert len(rec.requests) == 1


def test_corrupt_cassette_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"voice": "v", "fingerprint": "x", "response": {"text": "a"}}\nnot json\n')
    with pytest.raises(UserError, match=r"bad\.jsonl:2"):
        Cassette(path)


# --- network guard -------------------------------------------------------------------------


class _LocalTransport(httpx.AsyncBaseTransport):
    """Stands in for a real transport (not a MockTransport), answering without a network."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = {
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok"},
                    "finish_reason": "stop",
                }
            ]
        }
        return httpx.Response(200, json=body)


async def test_network_guard_blocks_non_loopback_hosts() -> None:
    remote = OpenAICompatVoice("gpt-4o-mini", api_key=FAKE_KEY, transport=_LocalTransport())
    with network_guard(), pytest.raises(NetworkBlockedError, match=r"api\.openai\.com"):
        await remote.respond(VoiceRequest.from_prompt("hi"))
    # outside the guard the same voice goes through
    assert (await remote.respond(VoiceRequest.from_prompt("hi"))).text == "ok"


@pytest.mark.parametrize(
    "base_url",
    ["http://127.0.0.1:8080/v1", "http://localhost:11434/v1", "http://[::1]:8000/v1"],
)
async def test_network_guard_allows_loopback(base_url: str) -> None:
    local = OpenAICompatVoice("gemma", base_url=base_url, transport=_LocalTransport())
    with network_guard(), network_guard():  # nestable
        assert (await local.respond(VoiceRequest.from_prompt("hi"))).text == "ok"


async def test_network_guard_blocks_streams_too() -> None:
    remote = OpenAICompatVoice("m", base_url="https://example.com/v1", transport=_LocalTransport())
    with network_guard(), pytest.raises(NetworkBlockedError):
        [d async for d in remote.stream(VoiceRequest.from_prompt("hi"))]


@pytest.fixture
def guarded() -> object:
    with network_guard():
        yield


@pytest.mark.usefixtures("guarded")
async def test_network_guard_as_a_fixture() -> None:
    remote = OpenAICompatVoice("m", api_key=FAKE_KEY, transport=_LocalTransport())
    with pytest.raises(NetworkBlockedError):
        await remote.respond(VoiceRequest.from_prompt("hi"))
