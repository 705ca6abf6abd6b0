from __future__ import annotations

import asyncio

import pytest

from ai_orchestration.errors import ProviderUnavailableError, RateLimitedError, VoiceError
from ai_orchestration.testing import (
    GARBAGE_TEXTS,
    FakeClock,
    Faults,
    FaultyVoice,
    Latency,
    SeededVoice,
)
from ai_orchestration.voices import VoiceRequest

REQ = VoiceRequest.from_prompt("q")
FAULTS = Faults(
    errors={ProviderUnavailableError: 0.2, RateLimitedError: 0.1}, garbage_rate=0.1, retry_after=2.0
)


async def outcomes(seed: int, n: int = 400) -> list[str]:
    voice = FaultyVoice(SeededVoice("v"), FAULTS, seed=seed)
    out = []
    for _ in range(n):
        try:
            r = await voice.respond(REQ)
            out.append("garbage" if r.text in GARBAGE_TEXTS else "ok")
        except VoiceError as exc:
            out.append(type(exc).__name__)
    return out


async def test_faults_are_seeded_and_close_to_their_rates() -> None:
    a, b, c = await outcomes(1), await outcomes(1), await outcomes(2)
    assert a == b and a != c
    share = {k: a.count(k) / len(a) for k in set(a)}
    assert share["ProviderUnavailableError"] == pytest.approx(0.2, abs=0.05)
    assert share["RateLimitedError"] == pytest.approx(0.1, abs=0.04)
    assert share["garbage"] == pytest.approx(0.1, abs=0.04)


async def test_hang_never_answers_until_cancelled() -> None:
    voice = FaultyVoice(SeededVoice("v"), Faults(hang_rate=1.0))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.002):
            await voice.respond(REQ)
    assert voice.injected["hang"] == 1


async def test_latency_uses_injected_sleep_and_outage_switch() -> None:
    clock = FakeClock()
    voice = FaultyVoice(SeededVoice("v"), Faults(latency=Latency(0.25)), sleep=clock.sleep)
    await voice.respond(REQ)
    assert clock.sleeps == [0.25]
    voice.down = True
    with pytest.raises(ProviderUnavailableError):
        await voice.respond(REQ)
    assert voice.injected == {"ok": 1, "down": 1}


def test_rates_must_make_sense() -> None:
    with pytest.raises(ValueError):
        Faults(errors={ProviderUnavailableError: 0.8}, hang_rate=0.3)
